#!/usr/bin/env python3
"""bench/hello.py: the same hello module served by nano-dp and by peer runtimes, measured
side by side with wrk on loopback.

For each runtime, each round: start the server pinned to one CPU, time process start to the
first 200 response, read idle RSS, run `wrk -t1 -c50 -d10s --latency` pinned to the other
CPU, read req/s, p99 latency and the server's peak RSS (VmHWM). Prints a markdown table of
medians over the rounds, with req/s as a ratio to nano-dp.

Peers come from npm into --peers-dir (default /tmp/nano-bench-peers): deno, bun, workerd;
node is the system node. A peer that cannot be installed or started is reported as
unavailable, not fatal. Python standard library only; wrk from `scripts/bootstrap --bench`.
"""
import argparse
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
ROOT = os.path.dirname(HERE)
APPS = os.path.join(HERE, "apps")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_response_ms(proc, port, timeout=20.0):
    """Polls until GET / answers 200; returns ms since t0 stored on proc, or None."""
    deadline = time.monotonic() + timeout
    req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(req)
                data = s.recv(64)
                if data.startswith(b"HTTP/1.1 200"):
                    return (time.monotonic() - proc.t0) * 1000
        except OSError:
            pass
        time.sleep(0.005)
    return None


def proc_status_kib(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def proc_tree_cpu_seconds(pid):
    """User + system CPU seconds of pid and every process below it, all threads included
    (/proc/PID/stat utime and stime), or None when pid is gone."""
    tick = os.sysconf("SC_CLK_TCK")
    parents, ticks = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # After "pid (comm)": state ppid ... utime is the 14th field of the line, stime the 15th.
        parents[int(entry)] = int(fields[1])
        ticks[int(entry)] = int(fields[11]) + int(fields[12])
    if pid not in ticks:
        return None
    total = 0
    for p in ticks:
        q = p
        while q in parents and q != pid:
            q = parents[q]
        if q == pid:
            total += ticks[p]
    return total / tick


def proc_cpu_seconds_precise(pid):
    """CPU seconds pid's threads have run, to the nanosecond (/proc/PID/task/*/schedstat; the
    tick-counted utime/stime are too coarse for runs of a fraction of a second), or None.
    Threads that have already exited are not counted."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue
    except OSError:
        return None
    return total / 1e9


def parse_wrk(out):
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    requests = re.search(r"(\d+) requests in", out)
    p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock_err = re.search(r"Socket errors: (.*)", out)
    if not rps or not p99:
        raise RuntimeError(f"cannot read wrk output:\n{out}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return {
        "rps": float(rps.group(1)),
        "requests": int(requests.group(1)) if requests else 0,
        "p99_ms": float(p99.group(1)) * scale,
        "non2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": sock_err.group(1) if sock_err else "",
    }


class Runtime:
    def __init__(self, name, version, make_cmd, env=None, cwd=None):
        self.name = name
        self.version = version
        self.make_cmd = make_cmd  # port -> argv
        self.env = env or {}
        self.cwd = cwd or APPS


def version_of(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout
        return out.strip().split("\n")[0]
    except (OSError, subprocess.TimeoutExpired):
        return None


def install_peers(peers_dir):
    bin_dir = os.path.join(peers_dir, "node_modules", ".bin")
    want = [p for p in ("deno", "bun", "workerd") if not os.path.exists(os.path.join(bin_dir, p))]
    if want and shutil.which("npm"):
        os.makedirs(peers_dir, exist_ok=True)
        pkg = os.path.join(peers_dir, "package.json")
        if not os.path.exists(pkg):
            with open(pkg, "w") as f:
                f.write('{"name": "nano-bench-peers", "private": true}\n')
        print(f"bench: npm install {' '.join(want)} into {peers_dir}", file=sys.stderr)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", *want], cwd=peers_dir,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    return bin_dir


def runtimes(opts, workdir):
    found, missing = [], []
    nano = os.path.abspath(opts.nano_dp)
    if os.access(nano, os.X_OK):
        found.append(Runtime("nano-dp", version_of([nano, "--version"]),
                             lambda p: [nano, "hello.js", "--port", str(p), "--threads", "1",
                                            "--log-level", "warn"]))
    else:
        missing.append(("nano-dp", f"{nano} not built (run make)"))
    bin_dir = install_peers(opts.peers_dir)

    def peer(name, version_argv, make_cmd, **kw):
        path = os.path.join(bin_dir, name)
        if not os.path.exists(path):
            missing.append((name, "npm install failed or not attempted"))
            return
        v = version_of([path] + version_argv)
        if v is None:
            missing.append((name, "does not run on this machine"))
            return
        found.append(Runtime(name, v, lambda p: make_cmd(path, p), **kw))

    peer("deno", ["--version"],
         lambda b, p: [b, "serve", "--quiet", "--host", "127.0.0.1", "--port", str(p), "hello.js"])
    peer("bun", ["--version"], lambda b, p: [b, "bun-serve.js"])
    with open(os.path.join(APPS, "workerd.capnp.in")) as f:
        capnp_template = f.read()
    with open(os.path.join(APPS, "hello.js")) as f:
        hello = f.read()
    with open(os.path.join(workdir, "hello.js"), "w") as f:
        f.write(hello)

    def workerd_cmd(b, p):
        conf = os.path.join(workdir, f"workerd-{p}.capnp")
        with open(conf, "w") as f:
            f.write(capnp_template.replace("@PORT@", str(p)))
        return [b, "serve", conf]
    peer("workerd", ["--version"], workerd_cmd)
    node = shutil.which("node")
    if node:
        found.append(Runtime("node", version_of([node, "--version"]),
                             lambda p: [node, "node-serve.mjs"]))
    else:
        missing.append(("node", "not installed"))
    only = set(opts.only.split(",")) if opts.only else None
    found = [r for r in found if only is None or r.name in only]
    return found, missing


def measure(rt, opts):
    port = free_port()
    env = dict(os.environ, PORT=str(port), **rt.env)
    argv = ["taskset", "-c", str(opts.server_cpu)] + rt.make_cmd(port)
    proc = subprocess.Popen(argv, cwd=rt.cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proc.t0 = time.monotonic()
    try:
        start_ms = first_response_ms(proc, port)
        if start_ms is None:
            err = proc.stderr.read().decode(errors="replace")[-500:] if proc.poll() is not None else ""
            raise RuntimeError(f"no response from {rt.name}: {err}")
        time.sleep(0.3)
        idle_kib = proc_status_kib(proc.pid, "VmRSS")
        # Anonymous pages are the process's own memory; file pages are its program and
        # libraries mapped from the page cache (shared with every process mapping them).
        idle_anon_kib = proc_status_kib(proc.pid, "RssAnon")
        idle_file_kib = proc_status_kib(proc.pid, "RssFile")
        cpu0 = proc_tree_cpu_seconds(proc.pid)
        wrk = subprocess.run(["taskset", "-c", str(opts.wrk_cpu), "wrk", "-t1", f"-c{opts.connections}",
                              f"-d{opts.duration}", "--latency", f"http://127.0.0.1:{port}/"],
                             capture_output=True, text=True, timeout=600)
        cpu1 = proc_tree_cpu_seconds(proc.pid)
        result = parse_wrk(wrk.stdout)
        result["peak_kib"] = proc_status_kib(proc.pid, "VmHWM")
        result["idle_kib"] = idle_kib
        result["idle_anon_kib"] = idle_anon_kib or 0
        result["idle_file_kib"] = idle_file_kib or 0
        result["cpu_us"] = ((cpu1 - cpu0) * 1e6 / result["requests"]
                            if cpu0 is not None and cpu1 is not None and result["requests"]
                            else float("nan"))
        result["start_ms"] = start_ms
        return result
    finally:
        proc.kill()
        proc.wait(timeout=10)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", default="10s", help="wrk -d (default 10s)")
    ap.add_argument("--connections", type=int, default=50, help="wrk -c (default 50)")
    ap.add_argument("--nano-dp", default=os.environ.get("NANO_DP", os.path.join(ROOT, "build/bin/nano-dp")))
    ap.add_argument("--peers-dir", default=os.environ.get("NANO_BENCH_PEERS", "/tmp/nano-bench-peers"))
    ap.add_argument("--only", default="", help="comma-separated runtimes to run")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--wrk-cpu", type=int, default=1)
    opts = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench: wrk is not installed (scripts/bootstrap --bench)")
    workdir = tempfile.mkdtemp(prefix="nano-bench-")
    global APPS
    # Every runtime serves the same file; the wrappers and configs sit beside it.
    for f in os.listdir(APPS):
        shutil.copy(os.path.join(APPS, f), workdir)
    APPS = workdir
    found, missing = runtimes(opts, workdir)
    results = {rt.name: [] for rt in found}
    for rnd in range(1, opts.rounds + 1):
        for rt in found:
            try:
                r = measure(rt, opts)
                results[rt.name].append(r)
                print(f"bench: round {rnd}/{opts.rounds} {rt.name}: {r['rps']:.0f} req/s "
                      f"p99 {r['p99_ms']:.2f} ms peak {r['peak_kib'] / 1024:.1f} MiB "
                      f"start {r['start_ms']:.0f} ms", file=sys.stderr, flush=True)
                if r["non2xx"] or r["socket_errors"]:
                    print(f"bench: {rt.name}: non-2xx {r['non2xx']}, socket errors "
                          f"{r['socket_errors']}", file=sys.stderr)
            except Exception as e:
                print(f"bench: round {rnd} {rt.name} failed: {e}", file=sys.stderr)
    shutil.rmtree(workdir, ignore_errors=True)

    med = lambda rs, k: statistics.median(r[k] for r in rs)
    base = med(results["nano-dp"], "rps") if results.get("nano-dp") else None
    print(f"wrk -t1 -c{opts.connections} -d{opts.duration}, server on CPU {opts.server_cpu}, wrk on "
          f"CPU {opts.wrk_cpu}; medians of {opts.rounds} rounds\n")
    print("Idle RSS is read 0.3 s after the first response (anonymous + file pages: the "
          "process's own memory + its program and libraries mapped from the page cache). "
          "CPU µs/request: the server's user + system time over the wrk run per request.\n")
    print("| runtime | version | req/s | vs nano-dp | p99 ms | CPU µs/request | peak RSS MiB "
          "| idle RSS MiB | idle anon + file MiB | start ms |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for rt in found:
        rs = results[rt.name]
        if not rs:
            print(f"| {rt.name} | {rt.version} | failed | | | | | | | |")
            continue
        rps = med(rs, "rps")
        ratio = f"{rps / base:.2f}x" if base else "-"
        print(f"| {rt.name} | {rt.version} | {rps:,.0f} | {ratio} | {med(rs, 'p99_ms'):.2f} | "
              f"{med(rs, 'cpu_us'):.1f} | {med(rs, 'peak_kib') / 1024:.1f} | "
              f"{med(rs, 'idle_kib') / 1024:.1f} | {med(rs, 'idle_anon_kib') / 1024:.1f} + "
              f"{med(rs, 'idle_file_kib') / 1024:.1f} | {med(rs, 'start_ms'):.0f} |")
    for name, why in missing:
        print(f"| {name} | unavailable: {why} | | | | | | | | |")


if __name__ == "__main__":
    main()
