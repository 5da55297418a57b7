#!/usr/bin/env python3
"""Envoy throughput: no filter vs native RBAC vs the portcullis filter, by CIDR count.

One Envoy at a time (--concurrency 1, loopback only), a direct_response route, load from
wrk on 127.0.0.1. Every CIDR list is random (seeded) IPv4 networks outside 127/8 plus
127.0.0.1/32, which matches the client, so every request is allowed. For RBAC the
matching CIDR is the LAST principal (the linear engine's worst case, as when the client's
network is late in a long Istio `remoteIpBlocks` list).

Each configuration is measured --rounds times, round-robin over all of them (all Envoys
are started first), and the table shows the best round: the machine may be shared, and
interference only ever slows a run down. It also shows Envoy's CPU time per request
(user+system of the whole Envoy process over the measured rounds / requests served), which
another process' load disturbs much less than throughput does.

Usage: bench.py --wasm PATH [--duration 5s] [--rounds 3] [--connections 32]
                [--rbac 10,100,1000,10000] [--filter 10,1000,10000,100000]
"""

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

ROUTER = {
    "name": "envoy.filters.http.router",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
}


def random_cidrs(n, seed):
    """n distinct random IPv4 CIDRs (prefix 16..32) outside 127.0.0.0/8, then 127.0.0.1/32."""
    rng = random.Random(seed)
    out, seen = [], set()
    while len(out) < n - 1:
        plen = rng.randint(16, 32)
        addr = rng.getrandbits(32)
        if addr >> 24 in (0, 127) or addr >> 28 >= 14:  # 0/8, loopback, multicast/reserved
            continue
        addr &= (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF
        if (addr, plen) in seen:
            continue
        seen.add((addr, plen))
        a = ".".join(str((addr >> s) & 255) for s in (24, 16, 8, 0))
        out.append((a, plen))
    out.append(("127.0.0.1", 32))
    return out


def rbac_filter(cidrs):
    # What istiod generates for an ALLOW policy with one rule whose `from` has remoteIpBlocks.
    ids = [{"remote_ip": {"address_prefix": a, "prefix_len": p}} for a, p in cidrs]
    return {
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": {
                "action": "ALLOW",
                "policies": {
                    "ns[istio-system]-policy[partners]-rule[0]": {
                        "permissions": [{"and_rules": {"rules": [{"any": True}]}}],
                        "principals": [{"and_ids": {"ids": [{"or_ids": {"ids": ids}}]}}],
                    }
                },
            },
        },
    }


def wasm_filter(wasm, cidrs):
    # 100 CIDRs per partner; the client's CIDR is in the last partner. No CIDRs: the filter
    # with no check configured (what the Wasm call and the glue cost by themselves).
    partners = []
    for i in range(0, len(cidrs), 100):
        chunk = cidrs[i : i + 100]
        partners.append({"name": f"p{i // 100}", "cidrs": [f"{a}/{p}" for a, p in chunk]})
    plugin = {"partners": partners, "ip_allowlist": {"client_ip": {"source": "peer"}}} if cidrs else {}
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "portcullis",
                "root_id": "portcullis",
                "vm_config": {
                    "vm_id": "portcullis",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": wasm}},
                },
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": json.dumps(plugin, separators=(",", ":")),
                },
            },
        },
    }


def bootstrap(http_filters):
    sa = lambda port: {"socket_address": {"address": "127.0.0.1", "port_value": port}}  # noqa: E731
    return {
        "admin": {"address": sa(0)},
        "static_resources": {
            "listeners": [
                {
                    "name": "bench",
                    "address": sa(0),
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": {
                                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                                        "stat_prefix": "bench",
                                        "use_remote_address": True,
                                        "normalize_path": True,
                                        "route_config": {
                                            "virtual_hosts": [
                                                {
                                                    "name": "all",
                                                    "domains": ["*"],
                                                    "routes": [
                                                        {
                                                            "match": {"prefix": "/"},
                                                            "direct_response": {
                                                                "status": 200,
                                                                "body": {"inline_string": "ok"},
                                                            },
                                                        }
                                                    ],
                                                }
                                            ]
                                        },
                                        "http_filters": http_filters + [ROUTER],
                                    },
                                }
                            ]
                        }
                    ],
                }
            ]
        },
    }


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.read().decode()


class Envoy:
    def __init__(self, config, workdir, name):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir)
        cfg = os.path.join(self.dir, "bootstrap.json")
        with open(cfg, "w") as f:
            json.dump(config, f)
        self.log = os.path.join(self.dir, "envoy.log")
        admin_path = os.path.join(self.dir, "admin")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            ["envoy", "-c", cfg, "--concurrency", "1", "--disable-hot-restart", "-l", "warning",
             "--admin-address-path", admin_path],
            stdout=open(self.log, "w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        deadline = t0 + 120
        while True:
            if self.proc.poll() is not None:
                sys.exit(f"envoy ({name}) exited {self.proc.returncode}:\n{open(self.log).read()[-4000:]}")
            if time.monotonic() > deadline:
                self.stop()
                sys.exit(f"envoy ({name}) not ready in 120 s:\n{open(self.log).read()[-4000:]}")
            try:
                self.admin = "http://" + open(admin_path).read().strip()
                if get(self.admin + "/ready")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        self.startup = time.monotonic() - t0
        listeners = json.loads(get(self.admin + "/listeners?format=json")[1])
        sa = listeners["listener_statuses"][0]["local_address"]["socket_address"]
        self.url = f"http://{sa['address']}:{sa['port_value']}/"

    def stats(self, regex):
        text = get(self.admin + "/stats?filter=" + regex)[1]
        return {k: int(v) for k, v in re.findall(r"^(\S+): (\d+)$", text, re.M)}

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wrk(url, duration, connections):
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}", "--latency", url],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {
        "rps": rps,
        "requests": requests,
        "p99": p99.group(1) if p99 else "?",
        "bad": int(bad.group(1)) if bad else 0,
        "errors": errors.group(0) if errors else "",
    }


def cpu_seconds(pid):
    """User + system CPU time of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def check_counters(kind, n, envoy):
    if kind == "portcullis" and n:
        st = envoy.stats("wasmcustom")
        allowed = sum(v for k, v in st.items() if ".decision.allowed." in k)
        denied = sum(v for k, v in st.items() if "denied" in k)
        if allowed == 0 or denied:
            sys.exit(f"portcullis {n}: unexpected filter counters {st}")
    elif kind == "native RBAC":
        st = envoy.stats("rbac")
        if st.get("http.bench.rbac.allowed", 0) == 0 or st.get("http.bench.rbac.denied", 0):
            sys.exit(f"RBAC {n}: unexpected counters {st}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wasm", required=True)
    ap.add_argument("--duration", default="5s", help="wrk duration of one measurement")
    ap.add_argument("--rounds", type=int, default=3, help="measurements per configuration, interleaved")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--rbac", default="10,100,1000,10000")
    ap.add_argument("--filter", default="0,10,1000,10000,100000", help="0: no check configured")
    ap.add_argument("--noop-wasm", help="a proxy-wasm module that only returns Continue: the Wasm floor")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (configs, logs)")
    args = ap.parse_args()
    sizes = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731

    cases = [("no filter", 0, [])]
    cases += [("native RBAC", n, [rbac_filter(random_cidrs(n, n))]) for n in sizes(args.rbac)]
    wasm = os.path.abspath(args.wasm)
    if args.noop_wasm:
        cases.append(("wasm no-op", 0, [wasm_filter(os.path.abspath(args.noop_wasm), [])]))
    cases += [("portcullis", n, [wasm_filter(wasm, random_cidrs(n, n) if n else [])]) for n in sizes(args.filter)]

    load_start = f"{os.getloadavg()[0]:.2f}"
    workdir = tempfile.mkdtemp(prefix="portcullis-bench-")
    envoys = []
    try:
        # All Envoys start first (idle ones cost nothing); measurements then go round-robin so
        # that load from elsewhere on the machine spreads over every configuration.
        for i, (kind, n, filters) in enumerate(cases):
            envoy = Envoy(bootstrap(filters), workdir, f"{i}-{kind.replace(' ', '_')}-{n}")
            envoys.append(envoy)
            with open(f"/proc/{envoy.proc.pid}/comm") as f:
                if f.read().strip() != "envoy":
                    sys.exit(f"pid {envoy.proc.pid} is not envoy: cannot measure its CPU time")
            status, body = get(envoy.url)
            if status != 200:
                sys.exit(f"{kind} {n}: probe got {status} {body!r}")
            wrk(envoy.url, "1s", args.connections)  # warm-up
        runs = [[] for _ in cases]
        for r in range(args.rounds):
            for i, ((kind, n, _), envoy) in enumerate(zip(cases, envoys)):
                cpu0 = cpu_seconds(envoy.proc.pid)
                res = wrk(envoy.url, args.duration, args.connections)
                res["cpu"] = cpu_seconds(envoy.proc.pid) - cpu0
                if res["bad"]:
                    sys.exit(f"{kind} {n}: {res['bad']} non-2xx responses: the client must be allowed")
                runs[i].append(res)
                print(f"  round {r + 1}: {kind:<12} {n:>7} CIDRs: {res['rps']:>9.0f} req/s  p99 {res['p99']:>8}"
                      f"  {1e6 * res['cpu'] / res['requests']:>6.1f} us CPU/req {res['errors']}",
                      file=sys.stderr, flush=True)
        for (kind, n, _), envoy in zip(cases, envoys):
            check_counters(kind, n, envoy)
    finally:
        for e in envoys:
            e.stop()
        if args.keep:
            print(f"work directory: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    rows = []
    for (kind, n, _), envoy, rs in zip(cases, envoys, runs):
        best = max(rs, key=lambda x: x["rps"])
        us = 1e6 * sum(x["cpu"] for x in rs) / sum(x["requests"] for x in rs)
        rows.append((kind, n, best["rps"], min(x["rps"] for x in rs), best["p99"], us, envoy.startup))
    base_rps, base_us = rows[0][2], rows[0][5]
    print()
    print(f"wrk -t1 -c{args.connections} -d{args.duration}, best of {args.rounds} interleaved rounds; "
          f"Envoy 1 worker, direct_response route, loopback; {os.cpu_count()} CPUs, "
          f"load average {load_start} at the start, {os.getloadavg()[0]:.2f} at the end")
    print("| filter       |    CIDRs | req/s (best) | ratio | req/s (worst) | p99 (best) "
          "| Envoy CPU us/req | added us/req | ready in |")
    print("|--------------|---------:|-------------:|------:|--------------:|-----------:"
          "|-----------------:|-------------:|---------:|")
    for kind, n, best, worst, p99, us, startup in rows:
        label = "-" if kind in ("no filter", "wasm no-op") else "no check" if n == 0 else n
        print(f"| {kind:<12} | {label:>8} | {best:>12.0f} | {best / base_rps:>5.2f} | {worst:>13.0f} "
              f"| {p99:>10} | {us:>16.1f} | {us - base_us:>+12.1f} | {startup:>7.2f}s |")


if __name__ == "__main__":
    main()
