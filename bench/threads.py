#!/usr/bin/env python3
"""bench/threads.py: how nano-dp's requests per second scale from 1 to 2 worker threads on
this machine, with the client sharing the CPUs.

On a 2-CPU machine the client (wrk) cannot have a CPU of its own while nano-dp uses both, so
the scaling shows only where a request costs the server much more CPU than it costs the
client. Two apps, each measured with nano-dp --threads 1 and --threads 2 (no CPU pinning;
wrk -t2 -c50 on the same CPUs), rounds interleaved:

  hello   apps/hello.js: a request costs server and client about the same (the client is
          the bottleneck: 2 threads cannot help much)
  render  apps/render.js: a server-rendered HTML page of 400 rows (~0.5 ms of JS per
          request): the client's share is a few per cent
and, as the ceiling for --threads 2, two separate nano-dp --threads 1 processes, each with its
own wrk (same total of wrk threads and connections): the same work with nothing shared.

Per run: req/s, p99, the server's CPU µs per request and the client's share of the CPU
time (wrk's user + system over the CPUs the run had). The last row is the machine's own: a
CPU-bound loop run as 1 and then 2 processes at once (how much a second CPU of this VM adds
for work that shares nothing; a VM's two CPUs may share a physical core). Python standard library, wrk and taskset.
"""
import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import hello as common  # noqa: E402  (shared helpers: ports, readiness, /proc, wrk parsing)

ROOT = os.path.dirname(HERE)
APPS = ("hello", "render")


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def wrk_runs(argvs):
    """Runs the wrk command lines at once; returns (their stdouts, their user + system CPU
    seconds together)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    procs = [subprocess.Popen(a, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
             for a in argvs]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return outs, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def start_server(opts, workdir, app, threads):
    port = common.free_port()
    argv = [os.path.abspath(opts.nano_dp), f"{app}.js", "--port", str(port), "--threads",
            str(threads), "--log-level", "warn", "--access-log", "off", "--status-listen", "off"]
    proc = subprocess.Popen(argv, cwd=workdir, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proc.t0 = time.monotonic()
    proc.port = port
    if common.first_response_ms(proc, port) is None:
        err = proc.stderr.read().decode(errors="replace")[-500:] if proc.poll() is not None else ""
        proc.kill()
        proc.wait(timeout=10)
        raise RuntimeError(f"no response from nano-dp ({app}): {err}")
    return proc


def measure(opts, workdir, app, threads, processes=1):
    """nano-dp --threads N (one process), or `processes` separate --threads 1 processes each
    with its own wrk (the same total of wrk threads and connections): what the same work
    scales to with nothing shared between the workers, the ceiling for --threads N."""
    procs = []
    try:
        for _ in range(processes):
            procs.append(start_server(opts, workdir, app, threads))
        wrk_threads = max(1, opts.wrk_threads // processes)
        conns = max(wrk_threads, opts.connections // processes)
        wrks = [["wrk", f"-t{wrk_threads}", f"-c{conns}", "--latency",
                 f"http://127.0.0.1:{p.port}/"] for p in procs]
        wrk_runs([w + [f"-d{opts.warmup}"] for w in wrks])  # JIT tier-up, first GCs
        cpu0 = [common.proc_tree_cpu_seconds(p.pid) for p in procs]
        t0 = time.monotonic()
        outs, client_cpu = wrk_runs([w + [f"-d{opts.duration}"] for w in wrks])
        wall = time.monotonic() - t0
        cpu1 = [common.proc_tree_cpu_seconds(p.pid) for p in procs]
        rs = [common.parse_wrk(o) for o in outs]
        for r in rs:
            if r["non2xx"] or r["socket_errors"] or not r["requests"]:
                raise RuntimeError(f"wrk saw non-2xx {r['non2xx']}, socket errors "
                                   f"'{r['socket_errors']}', {r['requests']} requests")
        requests = sum(r["requests"] for r in rs)
        return {
            "rps": sum(r["rps"] for r in rs),
            "p99_ms": max(r["p99_ms"] for r in rs),
            "cpu_us": sum(b - a for a, b in zip(cpu0, cpu1)) * 1e6 / requests,
            "client_share": client_cpu / (wall * len(os.sched_getaffinity(0))),
        }
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=10)


SPIN = "import time\nn=0\nend=time.monotonic()+{secs}\nwhile time.monotonic()<end:\n n+=1\nprint(n)"


def machine_ceiling(secs):
    """Work done by 2 CPU-bound processes at once over the work of 1 (same duration)."""
    def spin(k):
        procs = [subprocess.Popen([sys.executable, "-c", SPIN.format(secs=secs)],
                                  stdout=subprocess.PIPE, text=True) for _ in range(k)]
        return sum(int(p.communicate(timeout=secs + 30)[0]) for p in procs)
    return spin(2) / spin(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", default="10s", help="wrk -d per measured run (default 10s)")
    ap.add_argument("--warmup", default="2s", help="wrk -d of the unmeasured run first")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--apps", default=",".join(APPS))
    ap.add_argument("--nano-dp", default=os.environ.get("NANO_DP", os.path.join(ROOT, "build/bin/nano-dp")))
    opts = ap.parse_args()
    apps = [a for a in opts.apps.split(",") if a]
    for a in apps:
        if a not in APPS:
            sys.exit(f"bench: --apps {a}: use any of {', '.join(APPS)}")
    if not os.access(opts.nano_dp, os.X_OK):
        sys.exit(f"bench: {opts.nano_dp} is not built (run make)")
    if not shutil.which("wrk"):
        sys.exit("bench: wrk is not installed (scripts/bootstrap --bench)")
    ncpu = len(os.sched_getaffinity(0))
    workdir = tempfile.mkdtemp(prefix="nano-bench-threads-")
    for a in apps:
        shutil.copy(os.path.join(HERE, "apps", f"{a}.js"), workdir)
    setups = [(1, 1), (2, 1), (1, 2)]  # (threads, processes)
    label = {(1, 1): "--threads 1", (2, 1): "--threads 2", (1, 2): "2 processes x --threads 1"}
    results = {(a, st): [] for a in apps for st in setups}
    ceilings = []
    try:
        for rnd in range(1, opts.rounds + 1):
            ceilings.append(machine_ceiling(3))
            log(f"round {rnd}/{opts.rounds} machine: 2 processes do {ceilings[-1]:.2f}x the work of 1")
            for a in apps:
                for st in (setups if rnd % 2 else list(reversed(setups))):
                    try:
                        r = measure(opts, workdir, a, *st)
                        r["round"] = rnd
                        results[(a, st)].append(r)
                        log(f"round {rnd}/{opts.rounds} {a} {label[st]}: {r['rps']:.0f} req/s "
                            f"p99 {r['p99_ms']:.2f} ms server {r['cpu_us']:.1f} µs/request "
                            f"client {100 * r['client_share']:.0f}% of the CPU time")
                    except Exception as e:  # noqa: BLE001  (a failed run is a row, not the end)
                        log(f"round {rnd} {a} {label[st]} failed: {e}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    med = lambda rs, k: statistics.median(r[k] for r in rs)
    print(f"### nano-dp worker threads: 1 vs 2, client sharing the CPUs\n")
    print(f"{ncpu} CPUs; nano-dp unpinned with `--threads 1` or `--threads 2`, "
          f"`wrk -t{opts.wrk_threads} -c{opts.connections} -d{opts.duration}` on the same CPUs "
          f"(2 processes: each with `wrk -t{max(1, opts.wrk_threads // 2)} "
          f"-c{opts.connections // 2}`) "
          f"after a {opts.warmup} warm-up run; medians of {opts.rounds} rounds (interleaved). "
          f"Server CPU: user + system of nano-dp over the run per request; client share: wrk's "
          f"CPU time over the run's CPU time ({ncpu} CPUs x wall time).\n")
    print("| app | setup | req/s | vs --threads 1 | p99 ms | server CPU µs/request | client share |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for a in apps:
        base = results[(a, (1, 1))]
        for st in setups:
            rs = results[(a, st)]
            if not rs:
                print(f"| {a} | {label[st]} | failed | | | | |")
                continue
            ratio = f"{med(rs, 'rps') / med(base, 'rps'):.2f}x" if base else "-"
            print(f"| {a} | {label[st]} | {med(rs, 'rps'):,.0f} | {ratio} | {med(rs, 'p99_ms'):.2f} | "
                  f"{med(rs, 'cpu_us'):.1f} | {100 * med(rs, 'client_share'):.0f}% |")
    if ceilings:
        print(f"| CPU-bound loop | 2 processes vs 1 | | {statistics.median(ceilings):.2f}x | | | |")
    print("\nPer round (each round's runs back to back): --threads 2 and 2 processes over "
          "--threads 1, and --threads 2 over 2 processes (1.00: threads cost nothing over "
          "separate processes):\n")
    for a in apps:
        by = {st: {r["round"]: r["rps"] for r in results[(a, st)]} for st in setups}
        line = []
        for rnd in sorted(by[(1, 1)]):
            one, two, procs = by[(1, 1)][rnd], by[(2, 1)].get(rnd), by[(1, 2)].get(rnd)
            if two and procs:
                line.append(f"{two / one:.2f} / {procs / one:.2f} / {two / procs:.2f}")
        print(f"- {a}: {'; '.join(line) or 'none'}")
    print(f"- CPU-bound loop, 2 processes over 1: {' '.join('%.2f' % x for x in ceilings)}")
    print()


if __name__ == "__main__":
    main()
