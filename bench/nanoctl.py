#!/usr/bin/env python3
"""bench/nanoctl.py: nanoctl's round trip, process start to exit, against a nanocp of its own on
loopback (no data plane: what an operator's command costs by itself; bench/propagation.py
--driver nanoctl adds data planes).

  python3 bench/nanoctl.py [--calls 50] [--bin-dir build/bin]

Starts nanocp (--checker off) on free loopback ports in a scratch directory, creates one app,
then times --calls runs each of `nanoctl version` (a read), `nanoctl env set APP K=N` (a write:
one SQLite transaction, synced, and its delta published) and `/bin/true` (the cost of starting
any process from here), one after another; prints median, p90 and p99 in ms."""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, max(0, round(q / 100 * len(v)) - 1))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--bin-dir", default=os.path.join(ROOT, "build", "bin"))
    opts = ap.parse_args()
    work = tempfile.mkdtemp(prefix="nano-bench-ctl-")
    rpc = free_port()
    cp = subprocess.Popen([os.path.join(opts.bin_dir, "nanocp"), "--data-dir",
                           os.path.join(work, "cp"), "--http", f"127.0.0.1:{free_port()}",
                           "--rpc", f"tcp://127.0.0.1:{rpc}", "--dataplane",
                           f"tcp://127.0.0.1:{free_port()}", "--dataplane-rpc",
                           f"tcp://127.0.0.1:{free_port()}", "--checker", "off"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        token = os.path.join(work, "cp", "admin.token")
        deadline = time.monotonic() + 10
        while not os.path.exists(token) and time.monotonic() < deadline:
            time.sleep(0.02)
        ctl = [os.path.join(opts.bin_dir, "nanoctl"), "--cp", f"tcp://127.0.0.1:{rpc}",
               "--token-file", token]
        for _ in range(100):  # nanocp listens a moment after the token is written
            if subprocess.run(ctl + ["apps", "create", "bench", "--host", "bench.test"],
                              capture_output=True).returncode == 0:
                break
            time.sleep(0.05)
        rows = []
        for what, argv in (("/bin/true", ["/bin/true"]), ("nanoctl version", ctl + ["version"]),
                           ("nanoctl env set", ctl + ["env", "set", "bench", "K=N"])):
            ms = []
            for i in range(opts.calls):
                t0 = time.perf_counter()
                p = subprocess.run([a.replace("K=N", f"K={i}") for a in argv],
                                   capture_output=True)
                ms.append((time.perf_counter() - t0) * 1000)
                if p.returncode != 0:
                    raise SystemExit(f"{what}: exit {p.returncode}: {p.stderr.decode()}")
            rows.append((what, ms))
        print(f"\nnanoctl against nanocp on loopback, {opts.calls} calls each, start to exit, ms\n")
        print("| command | p50 | p90 | p99 | max |")
        print("|---|---:|---:|---:|---:|")
        for what, ms in rows:
            print(f"| {what} | {statistics.median(ms):.1f} | {pct(ms, 90):.1f} | "
                  f"{pct(ms, 99):.1f} | {max(ms):.1f} |")
    finally:
        cp.terminate()
        cp.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
