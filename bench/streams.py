#!/usr/bin/env python3
"""bench/streams.py: body streaming throughput (MB/s) of nano-dp and peer runtimes, side by
side in one run.

The same module (apps/streams.js) runs everywhere. Scenarios, each timed with curl on
loopback (time to the last byte):
  gen   GET /gen?mb=N: N MiB generated in 64 KiB chunks through a TransformStream
  plain GET /plain?mb=N: the same generated stream as the response body, no transform
  echo  POST /echo: an N MiB upload echoed back (new Response(request.body))
  gzip  GET /gzip?mb=N: N MiB of text through CompressionStream("gzip") (MB/s of input)
The server is pinned to one CPU and curl to the other (taskset). Each round starts every
runtime fresh, runs --warmup-transfers unmeasured gen transfers (1), then each scenario; the table shows medians over
rounds and each runtime's MB/s as a ratio to nano-dp. A runtime that lacks a scenario's API
(or fails it) shows the error instead of a number.

Peers as in bench/hello.py (npm into --peers-dir; node is the system node, with a streaming
node:http adapter). Python standard library and curl only.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import hello as common  # noqa: E402  (shared helpers: ports, readiness, peers)

ROOT = os.path.dirname(HERE)
SCENARIOS = ("gen", "plain", "echo", "gzip")


class Runtime:
    def __init__(self, name, version, make_cmd):
        self.name = name
        self.version = version
        self.make_cmd = make_cmd  # port -> argv


def runtimes(opts, workdir):
    found, missing = [], []
    nano = os.path.abspath(opts.nano_dp)
    if os.access(nano, os.X_OK):
        found.append(Runtime("nano-dp", common.version_of([nano, "--version"]),
                             lambda p: [nano, "streams.js", "--port", str(p), "--log-level", "warn",
                                        "--max-body-size", str(4 << 30)]))
    else:
        missing.append(("nano-dp", f"{nano} not built (run make)"))
    bin_dir = common.install_peers(opts.peers_dir)

    def peer(name, make_cmd):
        path = os.path.join(bin_dir, name)
        if not os.path.exists(path):
            missing.append((name, "npm install failed or not attempted"))
            return
        v = common.version_of([path, "--version"])
        if v is None:
            missing.append((name, "does not run on this machine"))
            return
        found.append(Runtime(name, v, lambda p: make_cmd(path, p)))

    peer("deno", lambda b, p: [b, "serve", "--quiet", "--host", "127.0.0.1", "--port", str(p),
                               "streams.js"])
    peer("bun", lambda b, p: [b, "bun-stream-serve.js"])
    with open(os.path.join(workdir, "workerd.capnp.in")) as f:
        capnp = f.read().replace("hello.js", "streams.js").replace(".hello", ".streams") \
                        .replace("hello :Workerd", "streams :Workerd")

    def workerd_cmd(b, p):
        conf = os.path.join(workdir, f"workerd-streams-{p}.capnp")
        with open(conf, "w") as f:
            f.write(capnp.replace("@PORT@", str(p)))
        return [b, "serve", conf]
    peer("workerd", workerd_cmd)
    node = shutil.which("node")
    if node:
        found.append(Runtime("node", common.version_of([node, "--version"]),
                             lambda p: [node, "node-stream-serve.mjs"]))
    else:
        missing.append(("node", "not installed"))
    only = set(opts.only.split(",")) if opts.only else None
    return [r for r in found if only is None or r.name in only], missing


def curl(opts, args):
    """Runs curl pinned to the client CPU; returns (bytes downloaded, seconds)."""
    argv = ["taskset", "-c", str(opts.client_cpu), "curl", "-s", "-o", "/dev/null",
            "-w", "%{http_code} %{size_download} %{time_total}", "--max-time", "120"] + args
    out = subprocess.run(argv, capture_output=True, text=True, timeout=180).stdout.split()
    if len(out) != 3 or out[0] != "200":
        raise RuntimeError(f"curl {' '.join(args)}: {' '.join(out) or 'no answer'}")
    return int(out[1]), float(out[2])


def scenario(opts, port, name, upload_file):
    n = opts.mb * 1024 * 1024
    base = f"http://127.0.0.1:{port}"
    if name in ("gen", "plain"):
        size, secs = curl(opts, [f"{base}/{name}?mb={opts.mb}"])
        if size != n:
            raise RuntimeError(f"got {size} bytes, want {n}")
    elif name == "echo":
        size, secs = curl(opts, ["-H", "Expect:", "-H", "Content-Type: application/octet-stream",
                                 "-T", upload_file, "-X", "POST", f"{base}/echo"])
        if size != n:
            raise RuntimeError(f"echoed {size} bytes, want {n}")
    else:
        size, secs = curl(opts, [f"{base}/gzip?mb={opts.mb}"])
        if size <= 0:
            raise RuntimeError("empty gzip body")
    return n / (1024 * 1024) / secs


def measure(rt, opts, workdir, upload_file):
    port = common.free_port()
    env = dict(os.environ, PORT=str(port))
    argv = ["taskset", "-c", str(opts.server_cpu)] + rt.make_cmd(port)
    proc = subprocess.Popen(argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proc.t0 = time.monotonic()
    try:
        if common.first_response_ms(proc, port) is None:
            err = proc.stderr.read().decode(errors="replace")[-500:] if proc.poll() is not None else ""
            raise RuntimeError(f"no response from {rt.name}: {err}")
        out = {}
        for _ in range(opts.warmup_transfers):  # not measured
            try:
                scenario(opts, port, "gen", upload_file)
            except Exception:
                break
        for name in opts.scenarios:
            try:
                cpu0 = common.proc_cpu_seconds_precise(proc.pid)
                out[name] = scenario(opts, port, name, upload_file)
                cpu1 = common.proc_cpu_seconds_precise(proc.pid)
                # The server's CPU time (user + system, all threads) per MiB moved.
                out[name + "_cpu"] = (cpu1 - cpu0) * 1000 / opts.mb
            except Exception as e:
                out[name] = str(e)
        out["peak_kib"] = common.proc_status_kib(proc.pid, "VmHWM")
        return out
    finally:
        proc.kill()
        proc.wait(timeout=10)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mb", type=int, default=256, help="MiB per transfer (default 256)")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--nano-dp", default=os.environ.get("NANO_DP", os.path.join(ROOT, "build/bin/nano-dp")))
    ap.add_argument("--peers-dir", default=os.environ.get("NANO_BENCH_PEERS", "/tmp/nano-bench-peers"))
    ap.add_argument("--only", default="", help="comma-separated runtimes to run")
    ap.add_argument("--warmup-transfers", type=int, default=1,
                    help="unmeasured gen transfers of N MiB before the measured ones (default 1; "
                         "more shows a process whose JIT has warmed up)")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    opts = ap.parse_args()
    opts.scenarios = [s for s in opts.scenarios.split(",") if s]
    if not shutil.which("curl"):
        sys.exit("bench: curl is not installed")
    workdir = tempfile.mkdtemp(prefix="nano-bench-streams-")
    for f in os.listdir(os.path.join(HERE, "apps")):
        shutil.copy(os.path.join(HERE, "apps", f), workdir)
    upload_file = os.path.join(workdir, "upload.bin")
    with open(upload_file, "wb") as f:
        block = os.urandom(1024 * 1024)
        for _ in range(opts.mb):
            f.write(block)
    found, missing = runtimes(opts, workdir)
    results = {rt.name: [] for rt in found}
    for rnd in range(1, opts.rounds + 1):
        for rt in found:
            try:
                r = measure(rt, opts, workdir, upload_file)
                results[rt.name].append(r)
                line = " ".join(f"{k} {v:.0f} MB/s" if isinstance(v, float) else f"{k} [{v}]"
                                for k, v in r.items() if k in opts.scenarios)
                print(f"bench: round {rnd}/{opts.rounds} {rt.name}: {line} "
                      f"peak {r['peak_kib'] / 1024:.1f} MiB", file=sys.stderr, flush=True)
            except Exception as e:
                print(f"bench: round {rnd} {rt.name} failed: {e}", file=sys.stderr)
    shutil.rmtree(workdir, ignore_errors=True)

    def median(rs, key):
        vals = [r[key] for r in rs if isinstance(r.get(key), float)]
        if not vals:
            errs = [r.get(key) for r in rs if r.get(key) is not None]
            return None, (errs[0] if errs else "failed")
        return statistics.median(vals), None

    base = {s: median(results.get("nano-dp", []), s)[0] for s in opts.scenarios}
    print(f"{opts.mb} MiB per transfer, 64 KiB chunks; each round a fresh server process that "
          f"first makes {opts.warmup_transfers} unmeasured gen transfer(s); server on CPU "
          f"{opts.server_cpu}, curl on CPU {opts.client_cpu}; medians of {opts.rounds} rounds; "
          f"MB/s = MiB/s\n")
    print("CPU ms/MiB: the server's CPU time (all its threads, from /proc/PID/task/*/schedstat) "
          "over the transfer per MiB moved; median of the rounds.\n")
    head = "| runtime | version | " + " | ".join(f"{s} MB/s | vs nano-dp | CPU ms/MiB" for s in opts.scenarios) + " | peak RSS MiB |"
    print(head)
    print("|---|---|" + "---:|---:|---:|" * len(opts.scenarios) + "---:|")
    for rt in found:
        rs = results[rt.name]
        cells = []
        for s in opts.scenarios:
            v, err = median(rs, s)
            if v is None:
                cells += [f"error: {str(err)[:60]}", "", ""]
            else:
                cpu, _ = median(rs, s + "_cpu")
                cells += [f"{v:,.0f}", f"{v / base[s]:.2f}x" if base.get(s) else "-",
                          f"{cpu:.3f}" if cpu is not None else "-"]
        peak = statistics.median(r["peak_kib"] for r in rs) / 1024 if rs else 0
        print(f"| {rt.name} | {rt.version} | " + " | ".join(cells) + f" | {peak:.1f} |")
    for name, why in missing:
        print(f"| {name} | unavailable: {why} |" + " |" * (3 * len(opts.scenarios) + 1))


if __name__ == "__main__":
    main()
