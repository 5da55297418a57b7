#!/usr/bin/env python3
"""Soak: a real Envoy with the release filter under wrk for millions of mixed requests.

The configuration is a realistic gateway's: 100 partners with 100 CIDRs each (10,000
CIDRs: one 10.<i>.0.0/16 network per partner that the traffic comes from, the rest random,
seeded), the client IP from `x-forwarded-for` behind one trusted hop, and 50 Istio-style
authorization policies (45 ALLOW policies, each letting two partners reach one service,
and 5 DENY policies: admin paths, DELETE, a debug header, banned partners, a legacy API).

wrk (Lua, soak.lua written into the work directory) cycles through request cases, each with
the status and denial reason it must get: allowed partner calls (200), and denials for a
client outside every partner network, a partner calling another partner's service,
partners without any ALLOW policy, each DENY policy, and requests whose client IP cannot
be determined (no, short and garbage `x-forwarded-for`). About half are denied. Every
response is checked in wrk: its case comes back in `x-request-id` (the HCM keeps the
client's id and echoes it), the status must be the case's, and a denial must carry the
case's reason in `x-portcullis-reason`. Anything else is an unexpected response.

The load runs in rounds of --interval seconds until --requests responses were checked.
After each round the script waits for the filter's counters to reach Envoy (they are
flushed every second) and records a row: requests, unexpected responses, Envoy's RSS
(`VmRSS` of /proc/<pid>/status) and the filter's `portcullis.vm.linear_memory_bytes` gauge
(the largest linear memory of the plugin's VMs). Checks, failing the run (exit status 1):

  - before the load, one request of every case gets its expected status and reason;
  - zero unexpected responses, zero wrk socket errors (connect, read, write; responses
    slower than 10 s, wrk's "timeouts", are reported only), wrk's non-2xx count equal to the
    denials checked;
  - counters: the filter's ip_allowlist decisions (one per request) equal the requests
    Envoy's listener received; the filter's allowed requests equal Envoy's 2xx responses
    and its denials Envoy's 403s; wrk's count lies between the requests wrk had sent
    and those minus the ones in flight when a round ended (at most --connections per
    round: wrk stops at the round's end without waiting for them, Envoy still decides them);
  - Envoy's RSS and the linear memory within +-5% of their value at the end of warm-up
    (the first --warmup fraction of the requests, at least one round) in every later row;
    the load goes on until there are at least --min-rows such rows.

Usage: soak.py --wasm PATH [--requests 10000000] [--interval 30] [--connections 32]
               [--threads 2] [--concurrency 2] [--warmup 0.1] [--min-rows 3] [--keep] [--json PATH]
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
import urllib.parse
import urllib.request

PARTNERS = 100
CIDRS_PER_PARTNER = 100
ALLOW_POLICIES = 45
TOLERANCE = 0.05
GAUGE = "wasmcustom.portcullis.vm.linear_memory_bytes"
# wrk counts a response slower than this as a "timeout" (it still waits for it and checks
# it); reported, never a failure: a loaded machine may stall, and speed is not what a soak
# checks.
WRK_TIMEOUT = 10
OUTSIDER = "192.0.2.7"  # TEST-NET-1: in no partner's networks


def partner_ip(i, host=5):
    return f"10.{i}.{host // 250}.{host % 250 + 1}"


def random_cidrs(n, rng, seen):
    """n distinct random IPv4 CIDRs (prefix 16..32) outside 0/8, 10/8, 127/8, 192.0.2/24
    and 224/3, so none covers the traffic's outsider or another partner's network."""
    out = []
    while len(out) < n:
        plen = rng.randint(16, 32)
        addr = rng.getrandbits(32) & ((0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF)
        if addr >> 24 in (0, 10, 127) or addr >> 29 == 7 or (addr >> 8) == 0xC00002 or (addr >> 16) == 0xC000:
            continue
        if (addr, plen) in seen:
            continue
        seen.add((addr, plen))
        out.append(".".join(str((addr >> s) & 255) for s in (24, 16, 8, 0)) + f"/{plen}")
    return out


def plugin_config(seed):
    rng = random.Random(seed)
    seen = set()
    partners = []
    for i in range(PARTNERS):
        cidrs = [f"10.{i}.0.0/16"] + random_cidrs(CIDRS_PER_PARTNER - 1, rng, seen)
        partners.append({"name": f"p{i:02}", "cidrs": cidrs})
    policies = []
    for k in range(ALLOW_POLICIES):
        policies.append({"name": f"allow-svc{k}", "namespace": "partners", "spec": {
            "action": "ALLOW",
            "rules": [{
                "from": [{"source": {"partners": [f"p{2 * k:02}", f"p{2 * k + 1:02}"]}}],
                "to": [{"operation": {"methods": ["GET", "POST", "PUT"], "paths": [f"/svc{k}/*"]}}],
            }],
        }})
    deny = lambda name, rule: {"name": name, "namespace": "istio-system",  # noqa: E731
                               "spec": {"action": "DENY", "rules": [rule]}}
    policies += [
        deny("deny-admin", {"to": [{"operation": {"paths": ["/admin*", "*/internal"]}}]}),
        deny("deny-delete", {"to": [{"operation": {"methods": ["DELETE"]}}]}),
        deny("deny-debug", {"when": [{"key": "request.headers[x-debug]", "values": ["*"]}]}),
        deny("deny-banned", {"from": [{"source": {"partners": [f"p{i}" for i in range(95, 100)]}}]}),
        deny("deny-legacy", {"to": [{"operation": {"paths": ["/legacy/*"]}}]}),
    ]
    assert len(policies) == 50 and sum(len(p["cidrs"]) for p in partners) == 10_000
    return {
        "partners": partners,
        "ip_allowlist": {"client_ip": {"source": "x_forwarded_for", "trusted_hops": 1}},
        "authorization": {"policies": policies},
        "denial": {"reason_header": "x-portcullis-reason"},
    }


def cases():
    """(method, path, headers, status, reason, policy): every request the load sends."""
    out = []
    allow = lambda m, p, xff: out.append((m, p, {"x-forwarded-for": xff}, 200, "", ""))  # noqa: E731

    def deny(m, p, headers, reason, policy=""):
        out.append((m, p, headers, 403, reason, policy))

    # Allowed: both partners of a policy, GET/POST/PUT, different hosts in their networks.
    for k in range(0, ALLOW_POLICIES, 3):
        allow("GET", f"/svc{k}/items?page={k}", partner_ip(2 * k, k))
        allow("POST", f"/svc{k}/orders", partner_ip(2 * k + 1, 7 * k))
        allow("PUT", f"/svc{k}/orders/{k}", f"203.0.113.9, {partner_ip(2 * k + 1, 300 + k)}")
    n_allowed = len(out)
    rule = lambda name, ns="istio-system": f"ns[{ns}]-policy[{name}]-rule[0]"  # noqa: E731
    xff = lambda i: {"x-forwarded-for": partner_ip(i)}  # noqa: E731
    for k in range(0, ALLOW_POLICIES, 9):
        deny("GET", f"/svc{k}/items", {"x-forwarded-for": OUTSIDER}, "ip_not_allowed")
        deny("GET", f"/svc{k + 1}/items", xff(2 * k), "no_allow_policy_matched")
        deny("GET", f"/svc{k}/items", xff(90 + k // 9), "no_allow_policy_matched")
        deny("GET", f"/svc{k}/items", xff(95 + k // 9), "denied_by_policy", rule("deny-banned"))
        deny("GET", "/admin/users", xff(2 * k), "denied_by_policy", rule("deny-admin"))
        deny("GET", f"/svc{k}/internal", xff(2 * k), "denied_by_policy", rule("deny-admin"))
        deny("DELETE", f"/svc{k}/orders/1", xff(2 * k), "denied_by_policy", rule("deny-delete"))
        deny("GET", f"/svc{k}/items", {**xff(2 * k), "x-debug": "1"}, "denied_by_policy", rule("deny-debug"))
    deny("GET", "/legacy/v0/items", xff(0), "denied_by_policy", rule("deny-legacy"))
    # No determinable client IP: Envoy appends the peer, so the filter sees one entry (too
    # short for one trusted hop), a garbage entry, or an address with a port.
    deny("GET", "/svc0/items", {}, "client_ip_unknown")
    deny("GET", "/svc0/items", {"x-forwarded-for": "not-an-ip"}, "client_ip_unknown")
    deny("GET", "/svc0/items", {"x-forwarded-for": f"{partner_ip(0)}:443"}, "client_ip_unknown")
    # Balance: as many allowed as denied requests per cycle.
    allowed = out[:n_allowed]
    while sum(c[3] == 200 for c in out) < sum(c[3] == 403 for c in out):
        out.append(allowed[len(out) % n_allowed])
    return out


def lua_script(cs):
    def s(x):
        return json.dumps(x)  # a JSON string literal is a valid Lua string literal here

    rows = []
    for i, (m, p, h, status, reason, policy) in enumerate(cs):
        headers = "{" + ", ".join(f"[{s(k)}] = {s(v)}" for k, v in {**h, "x-request-id": f"case-{i}"}.items()) + "}"
        rows.append(f"  {{{s(m)}, {s(p)}, {headers}, {status}, {s(reason)}, {s(policy)}}},")
    return LUA.replace("@CASES@", "\n".join(rows))


LUA = r"""-- Written by soak.py: request cases and their expected outcome, checked per response.
local cases = {
@CASES@
}
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  reqs, expect = {}, {}
  for i, c in ipairs(cases) do
    reqs[i] = wrk.format(c[1], c[2], c[3], (c[1] == "POST" or c[1] == "PUT") and "" or nil)
    expect[c[3]["x-request-id"]] = c
  end
  idx = (tid * 7) % #cases
  sent, checked, unexpected, denials, examples = 0, 0, 0, 0, ""
end

function request()
  idx = idx % #cases + 1
  sent = sent + 1
  return reqs[idx]
end

function response(status, headers, body)
  checked = checked + 1
  if status >= 300 then
    denials = denials + 1
  end
  local id = headers["x-request-id"]
  local c = id and expect[id]
  local why = nil
  if not c then
    why = "no case in x-request-id"
  elseif status ~= c[4] then
    why = "status " .. status .. ", expected " .. c[4]
  elseif c[4] ~= 200 then
    local r = headers["x-portcullis-reason"] or ""
    local want = c[5] .. "; check="
    if r:sub(1, #want) ~= want then
      why = "reason " .. r .. ", expected " .. c[5]
    elseif c[6] ~= "" and not r:find("; policy=" .. c[6], 1, true) then
      why = "reason " .. r .. ", expected policy " .. c[6]
    end
  end
  if why then
    unexpected = unexpected + 1
    if #examples < 2000 then
      examples = examples .. tostring(id) .. ": " .. why .. " | "
    end
  end
end

function done(summary, latency, requests)
  local s, c, u, d, ex = 0, 0, 0, 0, ""
  for _, t in ipairs(threads) do
    s = s + t:get("sent")
    c = c + t:get("checked")
    u = u + t:get("unexpected")
    d = d + t:get("denials")
    ex = ex .. t:get("examples")
  end
  local e = summary.errors
  io.write(string.format(
    'SOAK {"requests": %d, "sent": %d, "checked": %d, "unexpected": %d, "denials": %d, "socket_errors": %d, "timeouts": %d, "socket_error_kinds": "connect %d read %d write %d timeout %d", "status_errors": %d, "examples": %q}\n',
    summary.requests, s, c, u, d, e.connect + e.read + e.write, e.timeout, e.connect, e.read, e.write, e.timeout, e.status, ex))
end
"""


def bootstrap(wasm, plugin, flush_ms):
    sa = lambda port: {"socket_address": {"address": "127.0.0.1", "port_value": port}}  # noqa: E731
    plugin = {**plugin, "metrics": {"flush_interval_ms": flush_ms}}
    return {
        "admin": {"address": sa(0)},
        "static_resources": {"listeners": [{
            "name": "soak",
            "address": sa(0),
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "soak",
                    # As an Istio gateway behind one load balancer.
                    "use_remote_address": True,
                    "xff_num_trusted_hops": 1,
                    "normalize_path": True,
                    # Each response says which case it answers.
                    "preserve_external_request_id": True,
                    "always_set_request_id_in_response": True,
                    "route_config": {"virtual_hosts": [{
                        "name": "all",
                        "domains": ["*"],
                        "routes": [{"match": {"prefix": "/"},
                                    "direct_response": {"status": 200, "body": {"inline_string": "ok"}}}],
                    }]},
                    "http_filters": [
                        {"name": "envoy.filters.http.wasm", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                            "config": {
                                "name": "portcullis",
                                "root_id": "portcullis",
                                "vm_config": {"vm_id": "portcullis", "runtime": "envoy.wasm.runtime.v8",
                                              "code": {"local": {"filename": wasm}}},
                                "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                                  "value": json.dumps(plugin, separators=(",", ":"))},
                            },
                        }},
                        {"name": "envoy.filters.http.router", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
                    ],
                },
            }]}],
        }]},
    }


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, dict(r.headers), r.read().decode()


def fail(msg):
    print(f"soak: FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


class Envoy:
    def __init__(self, binary, config, workdir, concurrency):
        cfg = os.path.join(workdir, "bootstrap.json")
        with open(cfg, "w") as f:
            json.dump(config, f)
        self.log = os.path.join(workdir, "envoy.log")
        admin_path = os.path.join(workdir, "admin")
        self.proc = subprocess.Popen(
            [binary, "-c", cfg, "--concurrency", str(concurrency), "--disable-hot-restart",
             "-l", "warning", "--admin-address-path", admin_path],
            stdout=open(self.log, "w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                fail(f"envoy exited {self.proc.returncode}:\n{self.tail()}")
            if time.monotonic() > deadline:
                self.stop()
                fail(f"envoy not ready in 120 s:\n{self.tail()}")
            try:
                self.admin = "http://" + open(admin_path).read().strip()
                if get(self.admin + "/ready")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        listeners = json.loads(get(self.admin + "/listeners?format=json")[2])
        sa = listeners["listener_statuses"][0]["local_address"]["socket_address"]
        self.host, self.port = sa["address"], sa["port_value"]
        self.url = f"http://{self.host}:{self.port}"

    def tail(self):
        return open(self.log).read()[-4000:]

    def stats(self):
        query = urllib.parse.quote("^(wasmcustom|http\\.soak\\.downstream_rq)")
        text = get(f"{self.admin}/stats?filter={query}")[2]
        return {k: int(v) for k, v in re.findall(r"^(\S+): (\d+)$", text, re.M)}

    def rss(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1)) * 1024

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def decisions(st):
    """The filter's counts: (every ip_allowlist decision, allowed requests, denied requests).
    A request passes the IP allow-list once; only the ones it allowed reach authorization,
    whose decision is then the request's."""
    ip = {k: v for k, v in st.items() if k.startswith("wasmcustom.portcullis.check.ip_allowlist.")}
    authz = {k: v for k, v in st.items() if k.startswith("wasmcustom.portcullis.check.authorization.")}
    ip_total = sum(ip.values())
    ip_denied = sum(v for k, v in ip.items() if ".decision.denied." in k)
    authz_allowed = sum(v for k, v in authz.items() if ".decision.allowed." in k)
    authz_denied = sum(v for k, v in authz.items() if ".decision.denied." in k)
    other = {k: v for k, v in st.items() if k.startswith("wasmcustom.portcullis.check.")
             and k not in ip and k not in authz}
    return ip_total, authz_allowed, ip_denied + authz_denied, ip_total - ip_denied, authz_allowed + authz_denied, other


def settled_stats(envoy):
    """Admin stats once the filter's counters caught up with Envoy's request count (they are
    flushed on the filter's tick) and the gauge is there; None after 15 s."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        st = envoy.stats()
        if GAUGE in st and decisions(st)[0] == st.get("http.soak.downstream_rq_total", -1):
            return st
        time.sleep(0.2)
    return None


def wrk(envoy, script, threads, connections, seconds):
    p = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", f"--timeout={WRK_TIMEOUT}s", "-s", script,
         envoy.url + "/"],
        capture_output=True, text=True,
    )
    m = re.search(r"^SOAK (\{.*\})$", p.stdout, re.M)
    if p.returncode != 0 or not m:
        fail(f"wrk exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return json.loads(m.group(1))


def probe(envoy, cs):
    """One request per case, before the load: the work the soak measures happens."""
    import http.client

    for i, (m, p, h, status, reason, policy) in enumerate(cs):
        conn = http.client.HTTPConnection(envoy.host, envoy.port, timeout=10)
        conn.request(m, p, headers={**h, "x-request-id": f"case-{i}"})
        r = conn.getresponse()
        r.read()
        got_reason = r.getheader("x-portcullis-reason") or ""
        conn.close()
        if r.status != status or (status != 200 and not got_reason.startswith(f"{reason}; check=")) \
                or (policy and f"; policy={policy}" not in got_reason) \
                or r.getheader("x-request-id") != f"case-{i}":
            fail(f"probe case-{i} {m} {p} {h}: got {r.status} {got_reason!r}, "
                 f"expected {status} {reason!r} {policy!r}")


def mib(n):
    return f"{n / 2**20:.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wasm", required=True)
    ap.add_argument("--requests", type=int, default=10_000_000, help="checked responses to reach")
    ap.add_argument("--interval", type=int, default=30, help="seconds per round (one table row)")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--concurrency", type=int, default=2, help="Envoy workers")
    ap.add_argument("--warmup", type=float, default=0.1, help="fraction of --requests before the baseline")
    ap.add_argument("--min-rows", type=int, default=3, help="rows after warm-up, at least (more rounds if needed)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--envoy", default="envoy", help="the Envoy binary")
    ap.add_argument("--json", help="write the rows and the verdict to this file")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (configs, logs)")
    args = ap.parse_args()
    for tool in (args.envoy, "wrk"):
        if not shutil.which(tool):
            fail(f"{tool} is not on PATH (scripts/setup installs it)")

    workdir = tempfile.mkdtemp(prefix="portcullis-soak-")
    cs = cases()
    script = os.path.join(workdir, "soak.lua")
    with open(script, "w") as f:
        f.write(lua_script(cs))
    plugin = plugin_config(args.seed)
    envoy = Envoy(args.envoy, bootstrap(os.path.abspath(args.wasm), plugin, 1000), workdir, args.concurrency)
    n_denied = sum(c[3] == 403 for c in cs)
    print(f"soak: envoy pid {envoy.proc.pid} ({args.concurrency} workers) at {envoy.url}; "
          f"{sum(len(p['cidrs']) for p in plugin['partners'])} CIDRs, "
          f"{len(plugin['authorization']['policies'])} policies; {len(cs)} request cases "
          f"({len(cs) - n_denied} allowed, {n_denied} denied); work directory {workdir}", flush=True)
    rows, failures = [], []
    try:
        probe(envoy, cs)
        header = (f"{'round':>5} {'time':>6} {'requests':>11} {'req/s':>7} {'unexpected':>10} "
                  f"{'allowed':>10} {'denied':>10} {'RSS MiB':>8} {'RSS drift':>9} "
                  f"{'linear MiB':>10} {'lin drift':>9}")
        print(header, flush=True)
        t0 = time.monotonic()
        total = {"requests": 0, "sent": 0, "checked": 0, "unexpected": 0, "denials": 0, "socket_errors": 0, "timeouts": 0,
                 "status_errors": 0, "rounds": 0}
        examples = ""
        base = None
        warmup = max(1, int(args.warmup * args.requests))
        while total["checked"] < args.requests or sum(not r["warmup"] for r in rows) < args.min_rows:
            r0 = time.monotonic()
            res = wrk(envoy, script, args.threads, args.connections, args.interval)
            elapsed = time.monotonic() - r0
            for k in ("requests", "sent", "checked", "unexpected", "denials", "socket_errors", "timeouts",
                      "status_errors"):
                total[k] += res[k]
            total["rounds"] += 1
            examples += res["examples"]
            if res["socket_errors"] or res["timeouts"]:
                print(f"round {total['rounds']}: wrk socket errors: {res['socket_error_kinds']}", flush=True)
            st = settled_stats(envoy)
            if st is None:
                st = envoy.stats()
                failures.append(f"round {total['rounds']}: the filter's ip_allowlist decisions "
                                f"({decisions(st)[0]}) never equalled Envoy's requests "
                                f"({st.get('http.soak.downstream_rq_total')}), or no {GAUGE}")
            rss, linear = envoy.rss(), st.get(GAUGE, 0)
            _, allowed, denied, *_ = decisions(st)
            row = {"round": total["rounds"], "seconds": round(time.monotonic() - t0, 1),
                   "requests": total["checked"], "rps": round(res["checked"] / elapsed),
                   "unexpected": total["unexpected"], "allowed": allowed, "denied": denied,
                   "rss": rss, "linear_memory": linear, "warmup": base is None}
            if base is None and total["checked"] >= warmup:
                base = (rss, linear)
            drift = lambda v, b: f"{100 * (v / b - 1):+.1f}%" if b else "-"  # noqa: E731
            rows.append(row)
            print(f"{row['round']:>5} {row['seconds']:>5.0f}s {row['requests']:>11} {row['rps']:>7} "
                  f"{row['unexpected']:>10} {allowed:>10} {denied:>10} {mib(rss):>8} "
                  f"{drift(rss, base[0]) if base else 'warm-up':>9} {mib(linear):>10} "
                  f"{drift(linear, base[1]) if base else 'warm-up':>9}", flush=True)
        # Checks.
        st = envoy.stats()
        ip_total, allowed, denied, ip_allowed, authz_total, other = decisions(st)
        envoy_total = st.get("http.soak.downstream_rq_total", 0)
        envoy_2xx = st.get("http.soak.downstream_rq_2xx", 0)
        envoy_4xx = st.get("http.soak.downstream_rq_4xx", 0)
        envoy_other = sum(st.get(f"http.soak.downstream_rq_{c}", 0) for c in ("1xx", "3xx", "5xx"))
        n_probe = len(cs)
        if total["unexpected"]:
            failures.append(f"{total['unexpected']} unexpected responses, e.g.:\n{examples[:2000]}")
        if total["socket_errors"]:
            failures.append(f"wrk: {total['socket_errors']} socket errors")
        if total["status_errors"] != total["denials"]:
            failures.append(f"wrk counted {total['status_errors']} non-2xx responses, the script {total['denials']} denials")
        if total["checked"] != total["requests"]:
            failures.append(f"wrk counted {total['requests']} responses, the script checked {total['checked']}")
        if ip_total != envoy_total:
            failures.append(f"the filter's ip_allowlist decisions ({ip_total}) != Envoy's requests ({envoy_total})")
        if authz_total != ip_allowed:
            failures.append(f"authorization decisions ({authz_total}) != requests the IP allow-list allowed ({ip_allowed})")
        if allowed != envoy_2xx or denied != envoy_4xx or envoy_other:
            failures.append(f"the filter allowed {allowed} and denied {denied}; Envoy answered {envoy_2xx} 2xx, "
                            f"{envoy_4xx} 4xx, {envoy_other} other")
        in_flight = envoy_total - n_probe - total["checked"]
        if not 0 <= in_flight <= args.connections * total["rounds"]:
            failures.append(f"Envoy received {envoy_total - n_probe} load requests, wrk checked {total['checked']}: "
                            f"{in_flight} in flight at round ends (allowed 0..{args.connections * total['rounds']})")
        if total["sent"] < envoy_total - n_probe:
            failures.append(f"wrk sent {total['sent']} requests, Envoy received {envoy_total - n_probe}")
        if other:
            failures.append(f"unexpected filter counters: {other}")
        after = [r for r in rows if not r["warmup"]]
        for what, key, b in (("RSS", "rss", base[0] if base else 0), ("linear memory", "linear_memory", base[1] if base else 0)):
            for r in after:
                if not b or abs(r[key] / b - 1) > TOLERANCE:
                    failures.append(f"{what} at round {r['round']}: {r[key]} bytes, baseline {b}: beyond +-5%")
        lo = lambda k: min(r[k] for r in after) if after else 0  # noqa: E731
        hi = lambda k: max(r[k] for r in after) if after else 0  # noqa: E731
        verdict = {
            "requests_checked": total["checked"], "wrk_requests": total["requests"], "wrk_sent": total["sent"],
            "unexpected": total["unexpected"], "wrk_non_2xx": total["status_errors"],
            "denials_checked": total["denials"], "wrk_socket_errors": total["socket_errors"],
            "wrk_timeouts": total["timeouts"], "envoy_requests": envoy_total, "probe_requests": n_probe,
            "envoy_2xx": envoy_2xx, "envoy_4xx": envoy_4xx, "filter_ip_allowlist_decisions": ip_total,
            "filter_allowed": allowed, "filter_denied": denied, "in_flight_at_round_ends": in_flight,
            "rounds": total["rounds"], "seconds": round(time.monotonic() - t0, 1),
            "rss_baseline": base[0] if base else None, "rss_min": lo("rss"), "rss_max": hi("rss"),
            "linear_memory_baseline": base[1] if base else None,
            "linear_memory_min": lo("linear_memory"), "linear_memory_max": hi("linear_memory"),
            "failures": failures,
        }
        print(f"\nrequests checked {total['checked']} (wrk sent {total['sent']}; Envoy received {envoy_total}, "
              f"{n_probe} of them probes, {in_flight} left in flight at round ends), unexpected {total['unexpected']}, "
              f"wrk socket errors {total['socket_errors']}, responses slower than {WRK_TIMEOUT} s {total['timeouts']}")
        print(f"filter: {ip_total} ip_allowlist decisions, {allowed} allowed, {denied} denied; "
              f"Envoy: {envoy_2xx} 2xx, {envoy_4xx} 4xx")
        if base:
            print(f"after warm-up: RSS {mib(lo('rss'))}..{mib(hi('rss'))} MiB (baseline {mib(base[0])}), "
                  f"linear memory {mib(lo('linear_memory'))}..{mib(hi('linear_memory'))} MiB (baseline {mib(base[1])})")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"rows": rows, "verdict": verdict}, f, indent=1)
        if envoy.proc.poll() is not None:
            failures.append(f"envoy exited {envoy.proc.returncode}")
    finally:
        envoy.stop()
        if args.keep:
            print(f"work directory: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if failures:
        for f in failures:
            print(f"soak: FAIL: {f}", file=sys.stderr)
        sys.exit(1)
    print("soak: PASS")


if __name__ == "__main__":
    main()
