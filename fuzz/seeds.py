#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (fuzz/corpus/<target>/seed-*) from the project's own
tests and examples: string literals of the unit tests, the example policies and traffic, the
test certificates and the CRS rule files. Idempotent; a few KB per target. Run by fuzz/run.sh."""

import base64
import hashlib
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "fuzz" / "corpus"
MAX_SEEDS = 40
MAX_SEED_BYTES = 4096

LITERAL = re.compile(
    r'b?r(#+)"(.*?)"\1'  # raw strings r#"..."#
    r'|b?r"([^"]*)"'  # raw strings r"..."
    r'|b?"((?:[^"\\]|\\.|\\\n)*)"',  # plain strings with escapes
    re.S,
)


def unescape(s: str) -> bytes:
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        n = s[i + 1 : i + 2]
        i += 2
        if n == "n":
            out += b"\n"
        elif n == "r":
            out += b"\r"
        elif n == "t":
            out += b"\t"
        elif n == "0":
            out += b"\0"
        elif n == "x":
            out.append(int(s[i : i + 2], 16))
            i += 2
        elif n == "u":
            end = s.index("}", i)
            out += chr(int(s[i + 1 : end], 16)).encode()
            i = end + 1
        elif n == "\n":  # line continuation: skip leading whitespace of the next line
            while i < len(s) and s[i] in " \t":
                i += 1
        else:
            out += n.encode()
    return bytes(out)


def literals(*globs: str) -> list[bytes]:
    found = []
    for g in globs:
        for path in sorted(ROOT.glob(g)):
            text = path.read_text(errors="replace")
            for m in LITERAL.finditer(text):
                try:
                    if m.group(2) is not None:
                        found.append(m.group(2).encode())
                    elif m.group(3) is not None:
                        found.append(m.group(3).encode())
                    else:
                        found.append(unescape(m.group(4)))
                except (ValueError, IndexError):
                    pass
    return found


def write(target: str, seeds, out: pathlib.Path = OUT) -> int:
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    for old in d.glob("seed-*"):  # seeds of an earlier run; libFuzzer's finds stay
        old.unlink()
    n = 0
    seen = set()
    for s in seeds:
        if not s or len(s) > MAX_SEED_BYTES or s in seen:
            continue
        seen.add(s)
        (d / ("seed-" + hashlib.sha1(s).hexdigest()[:16])).write_bytes(s)
        n += 1
        if n >= MAX_SEEDS:
            break
    return n


def traffic() -> list[dict]:
    reqs = []
    for path in sorted(ROOT.glob("policies/examples/*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                reqs.append(json.loads(line))
    return reqs


def request_text(r: dict) -> bytes:
    lines = [
        r.get("method", "GET"),
        r.get("authority", ""),
        r.get("path", "/"),
        (r.get("client_ip") or "-") + (":4000" if r.get("client_ip") else ""),
        "1",
    ]
    for k, v in (r.get("headers") or {}).items():
        for one in v if isinstance(v, list) else [v]:
            lines.append(f"{k}: {one}")
    tls = r.get("tls") or {}
    for san in tls.get("uri_sans", []):
        lines.append(f"@uri-san: {san}")
    for san in tls.get("dns_sans", []):
        lines.append(f"@dns-san: {san}")
    if "subject" in tls:
        lines.append(f"@subject: {tls['subject']}")
    return "\n".join(lines).encode()


def is_json_object(b: bytes) -> bool:
    try:
        return isinstance(json.loads(b), dict)
    except ValueError:
        return False


def loads_crs(b: bytes) -> bool:
    waf = json.loads(b).get("waf")
    if not isinstance(waf, dict):
        return False
    directives = waf.get("directives")
    return not isinstance(directives, list) or any("@owasp_crs" in str(d) for d in directives)


def main() -> None:
    counts = {}
    configs = [(ROOT / "policies/examples/gateway.json").read_bytes()]
    # Not the configurations that load the whole CRS (a WAF without its own directives):
    # each would cost seconds per execution. Those with a few directives of their own stay.
    configs += [b for b in literals("filter/src/**/*.rs", "filter/tests/*.rs") if is_json_object(b) and not loads_crs(b)]
    counts["config_parse"] = write("config_parse", configs)

    paths = [b for b in literals("filter/src/path.rs", "filter/src/uri.rs", "filter/src/authz/tests*.rs") if b.startswith(b"/")]
    paths += [r.get("path", "/").encode() for r in traffic()]
    flags = [bytes([1, 2, 0, 1, 1, 0]), bytes([0, 0, 1, 0, 1, 0]), bytes([0, 0, 0, 0, 0, 1])]
    counts["path_normalize"] = write("path_normalize", [f + p for p in paths for f in flags])

    ips = [b for b in literals("filter/src/clientip.rs", "filter/src/engine*.rs", "filter/src/authz/tests*.rs") if re.fullmatch(rb"[0-9a-fA-F:.\[\]%, ]{3,80}", b)]
    ip_seeds = []
    for k, ip in enumerate(ips):
        nxt = ips[(k + 1) % len(ips)]
        ip_seeds.append(bytes([k % 3]) + ip + b"\n10.0.0.2\n" + nxt + b"\n" + ip)
    counts["client_ip"] = write("client_ip", ip_seeds)

    xfcc = [b for b in literals("filter/src/authz/*.rs", "tests/tests/*.rs", "tests/src/*.rs") if re.search(rb"(?i)(URI|By|Hash)=", b)]
    counts["xfcc"] = write("xfcc", xfcc + [a + b"\n" + b for a, b in zip(xfcc, xfcc[1:])][:10])

    certs = []
    for pem in sorted(ROOT.glob("filter/src/authz/testdata/*.pem")):
        text = pem.read_bytes()
        certs.append(text)
        for m in re.finditer(rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", text, re.S):
            certs.append(base64.b64decode(b"".join(m.group(1).split())))
    counts["certificate"] = write("certificate", certs)

    counts["plan_evaluate"] = write("plan_evaluate", [request_text(r) for r in traffic()])

    rules = []
    for conf in sorted(pathlib.Path("/usr/share/modsecurity-crs/rules").glob("*.conf")):
        # The first few directives of each file (comments dropped): a few KB at most.
        blocks = re.split(r"\n\s*\n", "\n".join(l for l in conf.read_text().splitlines() if not l.startswith("#")))
        chunk = "\n\n".join(b for b in blocks if b.strip())[:MAX_SEED_BYTES]
        rules.append(chunk[: chunk.rfind("\n\n")].encode() if "\n\n" in chunk else chunk.encode())
    rules += [b for b in literals("waf/src/seclang/tests.rs") if b.startswith(b"Sec")]
    counts["seclang_parse"] = write("seclang_parse", rules)

    counts["sqli"] = write("sqli", literals("waf/src/operator/sqli.rs"))
    counts["transform"] = write("transform", literals("waf/src/transform/tests.rs", "waf/tests/transform_modsecurity.rs"))
    counts["body_urlencoded"] = write("body_urlencoded", [bytes([k % 2, 50]) + b for k, b in enumerate(literals("waf/tests/body_urlencoded.rs", "waf/src/body/urlencoded.rs")) if b"=" in b])
    counts["body_json"] = write("body_json", [bytes([16, 100]) + b for b in literals("waf/tests/body_json.rs", "waf/src/body/json.rs") if b[:1] in (b"{", b"[")])
    counts["body_xml"] = write("body_xml", [bytes([1, 1]) + b for b in literals("waf/tests/body_xml.rs", "waf/src/body/xml.rs") if b.lstrip()[:1] == b"<"])
    mp = []
    for b in literals("waf/tests/body_multipart.rs", "waf/src/body/multipart.rs"):
        m = re.match(rb"--([^\r\n]+)\r?\n", b)
        if m:
            mp.append(bytes([20]) + b"multipart/form-data; boundary=" + m.group(1) + b"\n" + b)
    counts["body_multipart"] = write("body_multipart", mp)
    counts["body_cookies"] = write("body_cookies", [b for b in literals("waf/src/body/cookies.rs", "waf/src/engine/tests.rs") if b"=" in b and b"\n" not in b])

    # The replay readers (fuzz/replay): byte 0 picks JSONL (0), HAR (1) or go-ftw (2).
    replay = [b"\x00" + line for p in sorted(ROOT.glob("policies/examples/*.jsonl")) for line in p.read_bytes().splitlines()[:10]]
    replay += [b"\x01" + b for b in literals("harness/src/replay/har.rs", "harness/tests/replay_*.rs") if b.lstrip().startswith(b"{") and b'"log"' in b]
    replay += [b"\x02" + b for b in literals("harness/src/replay/ftw.rs") if b"tests:" in b or b"stages:" in b]
    counts["replay"] = write("replay", replay, ROOT / "fuzz" / "replay" / "corpus")

    for t, n in counts.items():
        print(f"{t}: {n} seeds", file=sys.stderr)
        if n == 0:
            sys.exit(f"seeds.py: no seeds for {t}: a test file moved?")


if __name__ == "__main__":
    main()
