#!/usr/bin/env python3
"""bench/webcrypto.py: crypto.subtle in nano-dp and its peers, in one run (issue 19).

Two parts:
  ops  operations per second of the cases in apps/webcrypto.js (HMAC-SHA256 sign of 1 KiB,
       ECDSA P-256 verify, Ed25519 sign, SHA-256 of 1 MiB, AES-GCM encrypt of 64 KiB, RSA
       2048 verify), each in a fresh process pinned to --cpus: nano-dp through `nano-dp
       test`, deno run, bun and node on the same module. Keys are made before the clock
       starts. Each case is timed twice: one operation at a time (an await loop), and
       --concurrency operations in flight (Promise.all), where runtimes that hand crypto to
       a thread pool behave differently. A runtime lacking an algorithm shows "missing".
  jwt  req/s and p99 of apps/jwt-hs256.js, which verifies an HS256 JWT on every request,
       served by nano-dp, deno serve, bun, workerd and node (as bench/hello.py serves
       hello.js), with `wrk -H "Authorization: Bearer <token>"`; each server first proves
       it answers 401 to a bad signature, an expired token and no token.

Each round runs every runtime in turn, reversed every other round; medians are quoted.

  python3 bench/webcrypto.py                           # both parts, 3 rounds (about 3 minutes)
  python3 bench/webcrypto.py --parts ops --only nano-dp,deno --ms 500 --cases "SHA-256 1 MiB"
  python3 bench/webcrypto.py --parts jwt --duration 10s
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import hello as common  # noqa: E402  (peers, versions, wrk output, /proc readings)

ROOT = os.path.dirname(HERE)
APPS = os.path.join(HERE, "apps")
CASES = os.path.join(APPS, "webcrypto.js")
JWT_APP = "jwt-hs256.js"
PEERS = ("deno", "bun")  # the goal: at least the faster of these on each case


def case_names():
    """The case names, in file order, read from apps/webcrypto.js (each a quoted key
    followed by ": async () =>" at the start of a line of the cases object)."""
    with open(CASES) as f:
        return re.findall(r'^  "([^"]+)": async \(\) =>', f.read(), re.M)


# ---------------------------------------------------------------------------------------
# ops: one process per case and runtime


def runner_files(workdir, opts, case, index):
    """A module that runs one case for plain runtimes, and a nano-dp test file doing so."""
    args = f'{opts.ms}, {json.dumps([case])}, {opts.concurrency}'
    plain = os.path.join(workdir, f"webcrypto-run-{index}.mjs")
    with open(plain, "w") as f:
        f.write(f'import {{ run }} from "{CASES}";\nconsole.log(await run({args}));\n')
    nano = os.path.join(workdir, f"webcrypto-{index}.test.js")
    with open(nano, "w") as f:
        f.write(f'import {{ test }} from "nano:test";\nimport {{ run }} from "{CASES}";\n'
                f'test("webcrypto", async () => console.log(await run({args})));\n')
    return plain, nano


def script_runtimes(opts, bin_dir):
    """(name, argv_for(plain, nano_test), version) for each runtime the ops part runs."""
    found = []
    if os.access(opts.nano_dp, os.X_OK):
        nano = opts.nano_dp
        found.append(("nano-dp", lambda plain, test: [nano, "test", "--timeout", "600s", test],
                      common.version_of([nano, "--version"])))
    else:
        print(f"webcrypto: {opts.nano_dp} not built (make), left out", file=sys.stderr)
    for name, args in (("deno", ["run", "--quiet"]), ("bun", []), ("node", [])):
        path = os.path.join(bin_dir, name) if name != "node" else shutil.which("node")
        if path and os.path.exists(path):
            found.append((name, lambda plain, test, p=path, a=args: [p, *a, plain],
                          common.version_of([path, "--version"])))
        else:
            print(f"webcrypto: {name} not installed, left out", file=sys.stderr)
    return [r for r in found if not opts.only or r[0] in opts.only]


def run_case(argv, opts):
    """Runs one case's process; returns {(case, in_flight): ops/s, or ("missing"|"wrong",
    why)}."""
    timeout = 60 + 8 * opts.ms / 1000
    out = subprocess.run(["taskset", "-c", opts.cpus, *argv], capture_output=True, text=True,
                         timeout=timeout)
    results = {}
    for line in out.stdout.splitlines():
        if not line.startswith('{"case"'):
            continue
        r = json.loads(line)
        key = (r["case"], r["inFlight"])
        if "ops" in r:
            results[key] = r["ops"]
        else:
            results[key] = ("missing", r["missing"]) if "missing" in r else ("wrong", r["wrong"])
    if not results:
        raise RuntimeError(f"no results from {argv[0]} (exit {out.returncode}): "
                           f"{(out.stderr or out.stdout).strip()[-300:]}")
    return results


def ops_part(opts, bin_dir, workdir):
    """Runs the ops part; prints its table."""
    wanted = case_names()
    if opts.cases:
        chosen = opts.cases.split(";")
        unknown = [c for c in chosen if c not in wanted]
        if unknown:
            sys.exit(f"webcrypto: unknown case(s): {', '.join(unknown)}; cases: {'; '.join(wanted)}")
        wanted = [c for c in wanted if c in chosen]
    rts = script_runtimes(opts, bin_dir)
    if not rts:
        print("webcrypto: no runtime for the ops part", file=sys.stderr)
        return
    files = [runner_files(workdir, opts, c, i) for i, c in enumerate(wanted)]
    per = {name: [] for name, _, _ in rts}  # name -> one dict of results per round
    for rnd in range(1, opts.rounds + 1):
        results = {name: {} for name, _, _ in rts}
        for plain, test in files:
            for name, argv_for, _ in (rts if rnd % 2 else list(reversed(rts))):
                try:
                    results[name].update(run_case(argv_for(plain, test), opts))
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    print(f"webcrypto: round {rnd} {name} failed: {e}", file=sys.stderr)
        for name in per:
            per[name].append(results[name])
        print(f"webcrypto: ops round {rnd}/{opts.rounds} done ({len(files)} cases)",
              file=sys.stderr, flush=True)

    names = [n for n, _, _ in rts]
    modes = [1, opts.concurrency] if opts.concurrency > 1 else [1]
    notes = {}

    def cell(name, key):
        """The median over rounds, or a word saying why there is none (missing, wrong,
        failed: a process that gave no result)."""
        vals = [r[key] for r in per[name] if key in r]
        bad = [v for v in vals if isinstance(v, tuple)]
        if bad:
            notes.setdefault((name, bad[0][0], bad[0][1]), []).append(key[0])
            return bad[0][0]
        return statistics.median(vals) if vals else "failed"

    peers = [p for p in PEERS if p in names]
    print("### crypto.subtle: operations per second (medians)\n")
    print(f"{opts.rounds} rounds, {opts.ms} ms per case and mode after as much warm-up, each case "
          f"in a fresh process pinned to CPU {opts.cpus}. \"in flight\": 1 is an await loop, "
          f"{opts.concurrency} is Promise.all over {opts.concurrency} operations started together. "
          "Versions: " + "; ".join(f"{n} {v or '?'}" for n, _, v in rts) + ".\n")
    ratio_head = f" nano-dp / {'faster of ' + ', '.join(peers) if len(peers) > 1 else peers[0]} |" \
        if peers and "nano-dp" in names else ""
    print("| operation | in flight | " + " | ".join(names) + " |" + ratio_head)
    print("|---|---:|" + "---:|" * len(names) + ("---:|" if ratio_head else ""))
    for case in wanted:
        for mode in modes:
            values = {n: cell(n, (case, mode)) for n in names}
            cells = [f"{v:,.0f}" if isinstance(v, float) else v for v in values.values()]
            line = f"| {case} | {mode} | " + " | ".join(cells) + " |"
            if ratio_head:
                best = max([values[p] for p in peers if isinstance(values[p], float)], default=None)
                mine = values["nano-dp"]
                line += f" {mine / best:.2f} |" if isinstance(mine, float) and best else " - |"
            print(line)
    if notes:
        print()
        for (name, word, why), which in sorted(notes.items()):
            print(f"- {name}: {word} ({why}): {'; '.join(sorted(set(which)))}")
    print()


# ---------------------------------------------------------------------------------------
# jwt: one server per runtime and round, measured with wrk


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_token(secret, claims):
    """An HS256 JWT (RFC 7515 compact serialization) of claims, made with hmac."""
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


def jwt_secret():
    """The secret apps/jwt-hs256.js verifies with, read from the app itself so the two
    cannot disagree."""
    with open(os.path.join(APPS, JWT_APP)) as f:
        m = re.search(r'^const SECRET = "([^"]+)";', f.read(), re.M)
    if not m:
        sys.exit(f"webcrypto: no `const SECRET = \"...\";` line in apps/{JWT_APP}")
    return m.group(1).encode()


def tokens():
    """The token wrk sends (valid for a day) and the ones each server must refuse."""
    secret, now = jwt_secret(), int(time.time())
    claims = {"sub": "user-4711", "name": "Bench User", "iat": now, "exp": now + 86400}
    good = hs256_token(secret, claims)
    head, body, sig = good.split(".")
    sig_bytes = bytearray(base64.urlsafe_b64decode(sig + "=="))
    sig_bytes[len(sig_bytes) // 2] ^= 0x01
    refused = {
        "no token": None,
        "flipped signature bit": f"{head}.{body}.{b64url(bytes(sig_bytes))}",
        "expired": hs256_token(secret, dict(claims, exp=now - 60)),
        "other secret": hs256_token(secret + b"x", claims),
    }
    return good, claims["sub"], refused


def http_get(port, token, timeout=2.0):
    """GET / with the token (if any) on a fresh connection; returns (status, body)."""
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    req = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Connection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(req.encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        body = dechunk(body)
    return status, body.decode(errors="replace")


def dechunk(body):
    out, rest = b"", body
    while rest:
        size, _, rest = rest.partition(b"\r\n")
        n = int(size.split(b";")[0], 16)
        if n == 0:
            break
        out, rest = out + rest[:n], rest[n + 2:]
    return out


class Server:
    """A runtime serving apps/jwt-hs256.js: argv_for(port) -> argv, run in workdir."""

    def __init__(self, name, version, argv_for):
        self.name, self.version, self.argv_for = name, version, argv_for


def jwt_servers(opts, bin_dir, workdir):
    """The servers of the jwt part, with their wrapper files written into workdir."""
    found, missing = [], []
    with open(os.path.join(APPS, JWT_APP)) as f:
        app = f.read()
    with open(os.path.join(workdir, JWT_APP), "w") as f:
        f.write(app)
    # bench/hello.py's wrappers for bun, node and workerd, pointed at this app.
    for wrapper in ("bun-serve.js", "node-serve.mjs", "workerd.capnp.in"):
        with open(os.path.join(APPS, wrapper)) as f:
            text = f.read().replace("hello.js", JWT_APP)
        with open(os.path.join(workdir, wrapper), "w") as f:
            f.write(text)
    if os.access(opts.nano_dp, os.X_OK):
        nano = opts.nano_dp
        found.append(Server("nano-dp", common.version_of([nano, "--version"]),
                            lambda p: [nano, JWT_APP, "--port", str(p), "--threads", "1",
                                       "--log-level", "warn"]))
    else:
        missing.append(("nano-dp", f"{opts.nano_dp} not built (make)"))

    def workerd_argv(binary, port):
        conf = os.path.join(workdir, f"workerd-{port}.capnp")
        with open(os.path.join(workdir, "workerd.capnp.in")) as f:
            text = f.read().replace("@PORT@", str(port))
        with open(conf, "w") as f:
            f.write(text)
        return [binary, "serve", conf]

    peers = {
        "deno": lambda b, p: [b, "serve", "--quiet", "--host", "127.0.0.1", "--port", str(p), JWT_APP],
        "bun": lambda b, p: [b, "bun-serve.js"],
        "workerd": workerd_argv,
        "node": lambda b, p: [b, "node-serve.mjs"],
    }
    for name, argv in peers.items():
        path = shutil.which("node") if name == "node" else os.path.join(bin_dir, name)
        version = common.version_of([path, "--version"]) if path and os.path.exists(path) else None
        if version is None:
            missing.append((name, "not installed or does not run"))
            continue
        found.append(Server(name, version, lambda p, b=path, a=argv: a(b, p)))
    found = [s for s in found if not opts.only or s.name in opts.only]
    missing = [m for m in missing if not opts.only or m[0] in opts.only]
    return found, missing


def wait_ready(proc, port, token, timeout=20.0):
    """Polls until GET / with the valid token answers; returns (status, body) or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            return http_get(port, token)
        except (OSError, ValueError, IndexError):
            time.sleep(0.01)
    return None


def wrk(opts, port, token, duration):
    out = subprocess.run(["taskset", "-c", str(opts.wrk_cpu), "wrk", "-t1", f"-c{opts.connections}",
                          f"-d{duration}", "--latency", "-H", f"Authorization: Bearer {token}",
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=600)
    return common.parse_wrk(out.stdout)


def measure_jwt(server, opts, workdir, token, sub, refused):
    """One run of one server: start it pinned, check its answers, warm up, measure."""
    port = common.free_port()
    # The server's output goes to a file: a pipe nobody reads during wrk could fill and stall it.
    log = tempfile.TemporaryFile(dir=workdir)
    proc = subprocess.Popen(["taskset", "-c", str(opts.server_cpu), *server.argv_for(port)],
                            cwd=workdir, env=dict(os.environ, PORT=str(port)),
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        first = wait_ready(proc, port, token)
        if first is None:
            log.seek(0)
            raise RuntimeError(f"no answer from {server.name}: "
                               f"{log.read().decode(errors='replace')[-500:]}")
        if first != (200, f"{sub}\n"):
            raise RuntimeError(f"{server.name} answered the valid token with {first}")
        for what, bad in refused.items():
            status, _ = http_get(port, bad)
            if status != 401:
                raise RuntimeError(f"{server.name} answered {status}, not 401, to: {what}")
        if opts.warmup not in ("0", "0s"):
            wrk(opts, port, token, opts.warmup)
        result = wrk(opts, port, token, opts.duration)
        result["peak_kib"] = common.proc_status_kib(proc.pid, "VmHWM")
        return result
    finally:
        proc.kill()
        proc.wait(timeout=10)
        log.close()


def jwt_part(opts, bin_dir, workdir):
    """Runs the jwt part; prints its table."""
    servers, missing = jwt_servers(opts, bin_dir, workdir)
    token, sub, refused = tokens()
    results = {s.name: [] for s in servers}
    for rnd in range(1, opts.rounds + 1):
        for s in (servers if rnd % 2 else list(reversed(servers))):
            try:
                r = measure_jwt(s, opts, workdir, token, sub, refused)
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
                print(f"webcrypto: jwt round {rnd} {s.name} failed: {e}", file=sys.stderr)
                continue
            results[s.name].append(r)
            print(f"webcrypto: jwt round {rnd}/{opts.rounds} {s.name}: {r['rps']:.0f} req/s "
                  f"p99 {r['p99_ms']:.2f} ms", file=sys.stderr, flush=True)
            if r["non2xx"] or r["socket_errors"]:
                print(f"webcrypto: {s.name}: non-2xx {r['non2xx']}, socket errors "
                      f"{r['socket_errors']}", file=sys.stderr)

    def med(rs, k):
        return statistics.median(r[k] for r in rs)

    base = med(results["nano-dp"], "rps") if results.get("nano-dp") else None
    print("### HS256 JWT verified per request: req/s (medians)\n")
    print(f"apps/{JWT_APP}; wrk -t1 -c{opts.connections} -d{opts.duration} after a {opts.warmup} "
          f"warm-up, with `Authorization: Bearer <HS256 JWT>`; server on CPU {opts.server_cpu}, "
          f"wrk on CPU {opts.wrk_cpu}; {opts.rounds} rounds, each server a fresh process.\n")
    print("| runtime | version | req/s | vs nano-dp | p99 ms | peak RSS MiB | non-2xx |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for s in servers:
        rs = results[s.name]
        if not rs:
            print(f"| {s.name} | {s.version} | failed | | | | |")
            continue
        rps = med(rs, "rps")
        ratio = f"{rps / base:.2f}x" if base else "-"
        peaks = [r["peak_kib"] for r in rs if r["peak_kib"]]
        peak = f"{statistics.median(peaks) / 1024:.1f}" if peaks else "-"
        print(f"| {s.name} | {s.version} | {rps:,.0f} | {ratio} | {med(rs, 'p99_ms'):.2f} | "
              f"{peak} | {sum(r['non2xx'] for r in rs)} |")
    for name, why in missing:
        print(f"| {name} | unavailable: {why} | | | | | |")
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="ops,jwt", help="ops, jwt or both (default ops,jwt)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated runtimes (nano-dp,deno,bun,node,workerd)")
    ap.add_argument("--nano-dp", default=os.environ.get("NANO_DP", os.path.join(ROOT, "build/bin/nano-dp")))
    ap.add_argument("--peers-dir", default=os.environ.get("NANO_BENCH_PEERS", "/tmp/nano-bench-peers"))
    ap.add_argument("--ms", type=int, default=300, help="ops: time per case and mode (and as much warm-up)")
    ap.add_argument("--cases", default="", help="ops: case names separated by ; (default: all)")
    ap.add_argument("--concurrency", type=int, default=16, help="ops: operations in flight in the second mode")
    ap.add_argument("--cpus", default="0", help="ops: taskset CPU list for each case's process")
    ap.add_argument("--duration", default="5s", help="jwt: wrk -d (default 5s)")
    ap.add_argument("--warmup", default="1s", help="jwt: an unmeasured wrk run first (default 1s; 0: none)")
    ap.add_argument("--connections", type=int, default=50, help="jwt: wrk -c (default 50)")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--wrk-cpu", type=int, default=1)
    opts = ap.parse_args()
    parts = opts.parts.split(",")
    if opts.rounds < 1 or opts.ms < 10 or opts.concurrency < 1 or not set(parts) <= {"ops", "jwt"}:
        ap.error("--rounds >= 1, --ms >= 10, --concurrency >= 1, --parts from ops,jwt")
    if "jwt" in parts and not shutil.which("wrk"):
        sys.exit("webcrypto: wrk is not installed (scripts/bootstrap --bench)")
    opts.nano_dp = os.path.abspath(opts.nano_dp)
    opts.only = opts.only.split(",") if opts.only else []
    bin_dir = common.install_peers(opts.peers_dir)
    with tempfile.TemporaryDirectory(prefix="nano-webcrypto-") as workdir:
        if "ops" in parts:
            ops_part(opts, bin_dir, workdir)
        if "jwt" in parts:
            jwt_part(opts, bin_dir, workdir)


if __name__ == "__main__":
    main()
