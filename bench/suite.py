#!/usr/bin/env python3
"""bench/suite.py: the data plane's speed goals measured side by side with deno and bun, in
one run, into one markdown document (stdout; progress on stderr).

    python3 bench/suite.py > bench/results/$(date +%F)-suite.md
    python3 bench/suite.py --rounds 1 --only nano-dp,deno      # a quick look

Parts, each the benchmark that owns the workload (see bench/README.md), run in turn:
  requests  tenants.py hello: a hello app and a JSON-with-env app; req/s, p99 and the server's
            CPU µs per request; nano-dp --threads 1 (access log on and off) beside the peers
            on one CPU, and nano-dp --threads 1 and 2 sharing both CPUs with `wrk -t2` (the
            scaling from 1 to 2 worker threads when the client takes CPU too)
  threads   threads.py: nano-dp --threads 1 vs 2 with wrk sharing both CPUs, for the hello app
            (client-bound) and a server-rendered page (server-bound), with the client's
            share of the CPU time and a CPU-bound loop's 1 vs 2 process ceiling
  streams   streams.py: gen (a generated body through a TransformStream), plain (the same
            without the transform), echo, gzip; MiB/s and the server's CPU ms per MiB; then
            gen, plain and echo again in processes that made 15 transfers first (warm JIT)
  start     hello.py: process start to the first response, idle RSS (anonymous and file
            pages apart) and peak RSS, req/s
A part that fails is reported as failed and the others still run. The exact commands are
printed under each part, so one can be repeated alone.
"""
import argparse
import datetime
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PARTS = ("requests", "threads", "streams", "start")


def log(msg):
    print(f"suite: {msg}", file=sys.stderr, flush=True)


def git_head():
    try:
        return subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def run_part(title, argv):
    """Runs one benchmark; its stdout becomes the part's section, its stderr goes on."""
    log(f"{title}: {' '.join(argv)}")
    t0 = time.monotonic()
    res = subprocess.run(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    secs = time.monotonic() - t0
    print(f"## {title}\n")
    print(f"`{' '.join(os.path.relpath(a, ROOT) if a.startswith(ROOT) else a for a in argv)}` "
          f"({secs:.0f} s)\n")
    if res.returncode != 0:
        print(f"**failed** (exit {res.returncode}); what it printed:\n")
    print(res.stdout.rstrip() + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="nano-dp,deno,bun",
                    help="runtimes beside nano-dp (default nano-dp,deno,bun)")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"any of {','.join(PARTS)}")
    ap.add_argument("--duration", default="10s", help="wrk -d per measured run (default 10s)")
    ap.add_argument("--mb", type=int, default=64, help="MiB per streams transfer (default 64)")
    ap.add_argument("--nano-dp", default=os.environ.get("NANO_DP", os.path.join(ROOT, "build/bin/nano-dp")))
    opts = ap.parse_args()
    parts = [p for p in opts.parts.split(",") if p]
    for p in parts:
        if p not in PARTS:
            sys.exit(f"suite: --parts {p}: use any of {', '.join(PARTS)}")
    if not os.access(opts.nano_dp, os.X_OK):
        sys.exit(f"suite: {opts.nano_dp} is not built (run make)")
    py = sys.executable
    rounds = str(opts.rounds)
    peers = [r for r in opts.only.split(",") if r and r != "nano-dp"]

    print(f"# Data-plane speed suite, {datetime.date.today().isoformat()}\n")
    print(f"`python3 bench/suite.py {' '.join(sys.argv[1:])}` at {git_head()}, "
          f"{platform.node()} ({os.cpu_count()} CPUs, {platform.release()}); nano-dp "
          f"{opts.nano_dp}. Every part interleaves the runtimes round by round; compare rows "
          f"within a part only (see bench/README.md on noise).\n")
    if "requests" in parts:
        # tenants.py runs workerd and node too unless told
        only = ",".join(["nano-dp"] + peers)
        run_part("Requests: hello and JSON with env",
                 [py, os.path.join(HERE, "tenants.py"), "hello", "--rounds", rounds,
                  "--duration", opts.duration, "--only", only, "--nano-dp", opts.nano_dp])
    if "threads" in parts:
        run_part("Threads: 1 vs 2 workers",
                 [py, os.path.join(HERE, "threads.py"), "--rounds", rounds, "--duration",
                  opts.duration, "--nano-dp", opts.nano_dp])
    if "streams" in parts:
        run_part("Streams: MiB/s",
                 [py, os.path.join(HERE, "streams.py"), "--rounds", rounds, "--mb", str(opts.mb),
                  "--only", ",".join(["nano-dp"] + peers), "--nano-dp", opts.nano_dp])
        # The same after 15 transfers (~1 GiB): a process whose JIT has tiered the streams
        # code up, as a long-running server's is.
        run_part("Streams, warm process: MiB/s",
                 [py, os.path.join(HERE, "streams.py"), "--rounds", rounds, "--mb", str(opts.mb),
                  "--warmup-transfers", "15", "--scenarios", "gen,plain,echo",
                  "--only", ",".join(["nano-dp"] + peers), "--nano-dp", opts.nano_dp])
    if "start" in parts:
        run_part("Start, idle memory and hello req/s",
                 [py, os.path.join(HERE, "hello.py"), "--rounds", rounds, "--duration", opts.duration,
                  "--only", ",".join(["nano-dp"] + peers), "--nano-dp", opts.nano_dp])


if __name__ == "__main__":
    main()
