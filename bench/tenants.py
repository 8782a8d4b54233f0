#!/usr/bin/env python3
"""bench/tenants.py: nano-dp serving apps from a nano.json (--config), measured three ways.

  hello      req/s and p99 of a hello app and of a "JSON with env" app (apps/json-env.js,
             env from nano.json vars) with --threads 1 (server on CPU 0, wrk -t1 on CPU 1)
             and --threads 1 and 2 sharing both CPUs with wrk -t2, side by side with deno,
             bun, workerd and node (one CPU each) on the same modules; nano-dp with the
             access log on (the default) and, for --threads 1, off.
  coldstart  many small apps (distinct hostnames): client-side latency of the first request
             to a never-requested host vs a second (warm) one, and the isolate creation
             time (debug log create_us, /status isolate_create_us_avg); then --threads 2,
             where a later request may land on the other worker and create a second isolate.
             --memory-mb default,64 adds the pool-refilled case with each app's
             limits.memory_mb set (the pool's isolates have the default 128 MiB heap, so
             another limit means a new isolate); --bundle-size 2m does those rows with a
             gen_bundle.py bundle as every app's module.
  memory     VmRSS of nano-dp --threads 1 with 100 and 1000 apps configured, before any
             request and after one request to each app (each then keeps an idle isolate);
             per idle app = (after - before) / N.
  all        the three in turn.

Each prints markdown tables on stdout (progress on stderr). Warnings and errors that
nano-dp logs, unexpected exits and failed requests are collected and printed at the end.
Every process started here is stopped on the way out (also on Ctrl-C or an exception).
Peers as in bench/hello.py (npm into --peers-dir; node is the system node). Python standard
library only, plus wrk and taskset.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_bundle  # noqa: E402  (synthetic bundles for coldstart --bundle-size)
import hello as common  # noqa: E402  (shared helpers: wrk parsing, /proc, peers)

ROOT = os.path.dirname(HERE)

# The env of the "JSON with env" app: the same values for every runtime.
GREETING = "Hello from NANO"
FLAGS = {"beta": True, "tier": "free", "limits": {"rps": 100, "burst": [1, 2, 3]}}
APP_HOSTS = {"hello": "hello.test", "json": "json.test"}

STARTED = []      # every Popen still running that this script started
ODDITIES = []     # things worth a look: nano-dp warnings/errors, bad exits, failed requests


def log(msg):
    print(f"tenants: {msg}", file=sys.stderr, flush=True)


def odd(msg):
    ODDITIES.append(msg)
    log(f"NOTE: {msg}")


# ---------------------------------------------------------------- processes

def start(argv, cwd, env=None, out_path=None):
    out = open(out_path, "wb") if out_path else subprocess.DEVNULL
    try:
        p = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        if out_path:
            out.close()
    p.t0 = time.monotonic()
    STARTED.append(p)
    return p


def stop(p, graceful=False, what="process"):
    """SIGKILL (or SIGTERM, then SIGKILL after 10 s) to p's process group; returns the exit code."""
    if p.poll() is None:
        sig = signal.SIGTERM if graceful else signal.SIGKILL
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            if graceful:
                odd(f"{what} did not exit within 10 s of SIGTERM; killed")
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=10)
    if p in STARTED:
        STARTED.remove(p)
    return p.returncode


def stop_all():
    for p in list(STARTED):
        try:
            stop(p)
        except Exception:  # noqa: BLE001  (best effort on the way out)
            pass


def on_sigterm(signum, frame):
    raise KeyboardInterrupt


def cpu_busy(seconds=1.0):
    """Fraction of all CPUs' time not idle over the next `seconds` (from /proc/stat)."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle + iowait
    t0, i0 = sample()
    time.sleep(seconds)
    t1, i1 = sample()
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


def rss_kib(pid, field="VmRSS"):
    return common.proc_status_kib(pid, field)


class pinned:
    """Runs the client code of this process on the given CPUs for the block."""

    def __init__(self, cpus):
        self.cpus = cpus

    def __enter__(self):
        self.saved = os.sched_getaffinity(0)
        os.sched_setaffinity(0, self.cpus)

    def __exit__(self, *exc):
        os.sched_setaffinity(0, self.saved)


# ---------------------------------------------------------------- HTTP

def http_get(port, host, path="/", timeout=30.0):
    """One GET on a fresh connection (Connection: close). Returns (status, body, ms)."""
    req = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(req)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    ms = (time.perf_counter() - t0) * 1000
    data = b"".join(chunks)
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    if not m:
        raise RuntimeError(f"bad response from {host}: {data[:200]!r}")
    if b"transfer-encoding: chunked" in head.lower():
        body = dechunk(body)
    return int(m.group(1)), body, ms


def dechunk(b):
    out = b""
    while b:
        size_line, _, rest = b.partition(b"\r\n")
        n = int(size_line.split(b";")[0], 16)
        if n == 0:
            break
        out += rest[:n]
        b = rest[n + 2:]
    return out


def wait_ready(proc, port, host, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} before answering")
        try:
            status, body, _ = http_get(port, host, timeout=2)
            if status == 200:
                return (time.monotonic() - proc.t0) * 1000, body
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{what}: no 200 response within {timeout:.0f} s")


def pct(values, q):
    """The q-th percentile (nearest rank) of values."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = max(0, min(len(s) - 1, int(round(q / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


# ---------------------------------------------------------------- nano-dp

class Nano:
    """nano-dp --config FILE on 127.0.0.1:0 with a status port; ports read from its log."""

    seq = 0

    def __init__(self, opts, workdir, config, threads, cpus, access_log=True, log_level="info"):
        Nano.seq += 1
        self.what = f"nano-dp (--threads {threads}, run {Nano.seq})"
        self.log_path = os.path.join(workdir, f"nano-dp-{Nano.seq}.log")
        argv = ["taskset", "-c", cpus, os.path.abspath(opts.nano_dp), "--config", config,
                "--listen", "127.0.0.1:0", "--threads", str(threads),
                "--status-listen", "127.0.0.1:0", "--log-level", log_level]
        if not access_log:
            argv += ["--access-log", "off"]
        self.argv = argv
        self.proc = start(argv, cwd=workdir, out_path=self.log_path)
        self.port = self.status_port = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (self.port and self.status_port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.what} exited with status {self.proc.returncode}:\n"
                                   f"{self.log_tail()}")
            text = self.read_log()
            m = re.search(r"dp\.listening addr=127\.0\.0\.1:(\d+)", text)
            s = re.search(r"dp\.status_listening addr=127\.0\.0\.1:(\d+)", text)
            self.port = int(m.group(1)) if m else None
            self.status_port = int(s.group(1)) if s else None
            time.sleep(0.01)
        if not (self.port and self.status_port):
            self.close()
            raise RuntimeError(f"{self.what}: no listening lines in its log within 30 s")
        self.ready_ms = (time.monotonic() - self.proc.t0) * 1000

    @property
    def pid(self):
        return self.proc.pid

    def read_log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=20):
        return "\n".join(self.read_log().splitlines()[-n:])

    def status(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.status_port}/status", timeout=10) as r:
            return json.load(r)

    def create_us(self):
        """create_us of every app.isolate_created line (needs --log-level debug): [(app, us)]."""
        return [(m.group(1), int(m.group(2))) for m in
                re.finditer(r"app\.isolate_created app=(\S+) .*?create_us=(\d+)", self.read_log())]

    def close(self):
        if self.proc.poll() is not None:
            odd(f"{self.what} had exited by itself with status {self.proc.returncode}: "
                f"{self.log_tail(5)}")
        rc = stop(self.proc, graceful=True, what=self.what)
        if rc not in (0, None):
            odd(f"{self.what} exited with status {rc} after SIGTERM")
        # Anything above info in the log is worth reading (the access log is info).
        seen = {}
        for line in self.read_log().splitlines():
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] not in ("info", "debug"):
                key = re.sub(r"\d+", "N", parts[2] if len(parts) > 2 else line)
                seen.setdefault(key, [0, line])[0] += 1
        for key, (count, line) in seen.items():
            odd(f"{self.what} logged {count}x: {line[:300]}")
        return rc


def write_apps(workdir, name, n, json_app=False, memory_mb=None, bundle=None):
    """A nano.json with n small apps app-0..app-(n-1) (hostnames app-I.test), each its own
    module file; with memory_mb, each app has that `limits.memory_mb`; with bundle (source
    text), each module is that text plus a last line naming the app, so no two apps share
    a source. Returns the path of the nano.json."""
    d = os.path.join(workdir, name)
    os.makedirs(d, exist_ok=True)
    apps = []
    for i in range(n):
        mod = f"app-{i}.js"
        with open(os.path.join(d, mod), "w") as f:
            if bundle is not None:
                f.write(f"{bundle}// tenant app {i}\n")
            else:
                f.write(f"// tenant app {i}\nconst NAME = \"app-{i}\";\nexport default {{\n"
                        f"  async fetch(request, env) {{\n"
                        f"    return new Response(`hello from ${{NAME}} (${{env.TIER}})\\n`);\n"
                        f"  }},\n}};\n")
        app = {"name": f"app-{i}", "hostname": f"app-{i}.test", "path": f"./{mod}",
               "env": {"TIER": "free"}}
        if memory_mb is not None:
            app["limits"] = {"memory_mb": memory_mb}
        apps.append(app)
    path = os.path.join(d, "nano.json")
    with open(path, "w") as f:
        json.dump({"apps": apps}, f, indent=1)
    return path


# ---------------------------------------------------------------- hello

class Server:
    """One server to measure: launch(app, workdir) -> handle with port, pid, close()."""

    def __init__(self, name, setup, version, launch, server_cpus, wrk_cpus, wrk_threads):
        self.name, self.setup, self.version = name, setup, version
        self.launch = launch
        self.server_cpus, self.wrk_cpus, self.wrk_threads = server_cpus, wrk_cpus, wrk_threads

    @property
    def key(self):
        return f"{self.name} {self.setup}"


class PeerHandle:
    def __init__(self, proc, port, what):
        self.proc, self.port, self.what = proc, port, what
        self.pid = proc.pid

    def close(self):
        if self.proc.poll() is not None:
            odd(f"{self.what} had exited by itself with status {self.proc.returncode}")
        stop(self.proc)


def hello_servers(opts, workdir):
    found, missing = [], []
    nano = os.path.abspath(opts.nano_dp)
    cfg = os.path.join(workdir, "nano.json")
    with open(cfg, "w") as f:
        json.dump({"apps": [
            {"name": "hello", "hostname": APP_HOSTS["hello"], "path": "./hello.js"},
            {"name": "json", "hostname": APP_HOSTS["json"], "path": "./json-env.js",
             "env": {"GREETING": GREETING, "FLAGS": FLAGS}},
        ]}, f, indent=1)
    if os.access(nano, os.X_OK):
        v = common.version_of([nano, "--version"])

        def nano_launch(threads, cpus, access_log):
            def launch(app, wd):
                n = Nano(opts, wd, cfg, threads, cpus, access_log=access_log)
                n.what += f" [{app}]"
                return n
            return launch
        found.append(Server("nano-dp", "--threads 1", v, nano_launch(1, "0", True), "0", "1", 1))
        found.append(Server("nano-dp", "--threads 1 --access-log off", v,
                            nano_launch(1, "0", False), "0", "1", 1))
        # The same client setup with one worker thread: the pair gives the scaling from 1
        # to 2 threads when the client takes CPU too (issue 26's threads item).
        found.append(Server("nano-dp", "--threads 1 (shares CPUs with wrk)", v,
                            nano_launch(1, "0,1", True), "0,1", "0,1", opts.wrk_threads_shared))
        found.append(Server("nano-dp", "--threads 2 (shares CPUs with wrk)", v,
                            nano_launch(2, "0,1", True), "0,1", "0,1", opts.wrk_threads_shared))
    else:
        missing.append(("nano-dp", f"{nano} not built"))
    bin_dir = common.install_peers(opts.peers_dir)
    env_vars = {"GREETING": GREETING, "FLAGS": json.dumps(FLAGS)}

    def peer(name, argv_for):
        path = os.path.join(bin_dir, name) if name != "node" else shutil.which("node")
        if not path or not os.path.exists(path):
            missing.append((name, "not installed (npm install failed or not attempted)"))
            return
        v = common.version_of([path, "--version"])
        if v is None:
            missing.append((name, "does not run on this machine"))
            return

        def launch(app, wd):
            port = common.free_port()
            env = dict(os.environ, PORT=str(port), **env_vars)
            what = f"{name} [{app}]"
            p = start(["taskset", "-c", "0"] + argv_for(path, port, app, wd), cwd=wd, env=env)
            return PeerHandle(p, port, what)
        found.append(Server(name, "1 CPU", v, launch, "0", "1", 1))

    def deno_argv(b, p, app, wd):
        if app == "hello":
            return [b, "serve", "--quiet", "--host", "127.0.0.1", "--port", str(p), "hello.js"]
        return [b, "serve", "--quiet", "--allow-env=GREETING,FLAGS", "--host", "127.0.0.1",
                "--port", str(p), "deno-env-serve.js"]

    def bun_argv(b, p, app, wd):
        return [b, "bun-serve.js" if app == "hello" else "bun-env-serve.js"]

    def workerd_argv(b, p, app, wd):
        mod, bindings = "hello.js", ""
        if app == "json":
            mod = "json-env.js"
            bindings = (f",\n  bindings = [ (name = \"GREETING\", text = {json.dumps(GREETING)}),"
                        f" (name = \"FLAGS\", json = {json.dumps(json.dumps(FLAGS))}) ]")
        conf = os.path.join(wd, f"workerd-{app}-{p}.capnp")
        with open(conf, "w") as f:
            f.write('using Workerd = import "/workerd/workerd.capnp";\n'
                    "const config :Workerd.Config = (\n"
                    "  services = [ (name = \"main\", worker = .app) ],\n"
                    f"  sockets = [ (name = \"http\", address = \"127.0.0.1:{p}\", http = (),"
                    " service = \"main\") ],\n);\n"
                    "const app :Workerd.Worker = (\n"
                    f"  modules = [ (name = \"{mod}\", esModule = embed \"{mod}\") ],\n"
                    f"  compatibilityDate = \"2024-09-23\"{bindings},\n);\n")
        return [b, "serve", conf]

    def node_argv(b, p, app, wd):
        return [b, "node-serve.mjs" if app == "hello" else "node-env-serve.mjs"]

    peer("deno", deno_argv)
    peer("bun", bun_argv)
    peer("workerd", workerd_argv)
    peer("node", node_argv)
    only = set(opts.only.split(",")) if opts.only else None
    found = [s for s in found if only is None or s.name in only]
    return found, missing


def check_body(server, app, body):
    if app == "hello":
        ok = body == b"Hello World\n"
    else:
        try:
            j = json.loads(body)
            ok = j.get("greeting") == GREETING and j.get("flags") == FLAGS and j.get("n", 0) >= 1
        except ValueError:
            ok = False
    if not ok:
        odd(f"{server.key} [{app}]: unexpected body {body[:200]!r}")


def hello_once(server, app, opts, workdir):
    h = server.launch(app, workdir)
    try:
        host = APP_HOSTS[app]
        _, body = wait_ready(h.proc, h.port, host, f"{server.key} [{app}]")
        check_body(server, app, body)
        time.sleep(0.3)
        wrk_argv = ["taskset", "-c", server.wrk_cpus, "wrk", f"-t{server.wrk_threads}",
                    f"-c{opts.connections}", "--latency", "-H", f"Host: {host}",
                    f"http://127.0.0.1:{h.port}/"]
        if opts.warmup not in ("", "0", "0s"):
            # Not measured: JIT tiering of the server's (and built-ins') code, first GCs.
            subprocess.run(wrk_argv + [f"-d{opts.warmup}"], capture_output=True, timeout=600)
        cpu0 = common.proc_tree_cpu_seconds(h.pid)
        wrk = subprocess.run(wrk_argv + [f"-d{opts.duration}"], capture_output=True, text=True,
                             timeout=600)
        cpu1 = common.proc_tree_cpu_seconds(h.pid)
        r = common.parse_wrk(wrk.stdout)
        r["peak_kib"] = rss_kib(h.pid, "VmHWM") or 0
        # The server's CPU time (user + system, all its threads and child processes) per
        # request: what a request costs, whoever is the bottleneck.
        r["cpu_us"] = ((cpu1 - cpu0) * 1e6 / r["requests"]
                       if cpu0 is not None and cpu1 is not None and r["requests"] else float("nan"))
        if r["non2xx"] or r["socket_errors"]:
            odd(f"{server.key} [{app}]: wrk saw non-2xx {r['non2xx']}, socket errors "
                f"'{r['socket_errors']}'")
        return r
    finally:
        h.close()


def cmd_hello(opts, workdir):
    servers, missing = hello_servers(opts, workdir)
    apps = ("hello", "json")
    results = {(s.key, a): [] for s in servers for a in apps}
    for rnd in range(1, opts.rounds + 1):
        for app in apps:
            # Every other round runs the servers in reverse order, so that neither side of a
            # comparison always runs first while the machine's speed drifts.
            for s in (servers if rnd % 2 else list(reversed(servers))):
                try:
                    r = hello_once(s, app, opts, workdir)
                    r["round"] = rnd
                    results[(s.key, app)].append(r)
                    log(f"round {rnd}/{opts.rounds} {app} {s.key}: {r['rps']:.0f} req/s "
                        f"p99 {r['p99_ms']:.2f} ms CPU {r['cpu_us']:.1f} µs/request "
                        f"peak {r['peak_kib'] / 1024:.1f} MiB")
                except Exception as e:  # noqa: BLE001  (one failed server is a row, not the end)
                    odd(f"round {rnd} {app} {s.key} failed: {e}")
    med = lambda rs, k: statistics.median(r[k] for r in rs)
    print(f"### hello and JSON-with-env apps: req/s\n")
    print(f"wrk -c{opts.connections} -d{opts.duration} --latency after a {opts.warmup} warm-up "
          f"run that is not measured (each server is a fresh process); medians of "
          f"{opts.rounds} rounds. "
          f"\"1 CPU\" rows: server pinned to CPU 0, `wrk -t1` on CPU 1. The \"shares CPUs\" "
          f"rows: nano-dp with 1 or 2 worker threads on both CPUs and "
          f"`wrk -t{opts.wrk_threads_shared}` sharing them (so wrk takes CPU from the server; "
          f"their ratio is the scaling from 1 to 2 threads). Peers were run on one CPU only. "
          f"nano-dp at the default "
          f"log level (info) with the access log written to a file unless `--access-log off`. "
          f"CPU µs/request: the server's user + system CPU time over the wrk run (all its "
          f"threads and child processes, from /proc) divided by the requests wrk completed.\n")
    print("| app | runtime | setup | req/s | vs nano-dp --threads 1 | best round req/s | p99 ms "
          "| CPU µs/request | peak RSS MiB |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    verdicts = []
    for app in apps:
        base = results.get(("nano-dp --threads 1", app))
        base_rps = med(base, "rps") if base else None
        for s in servers:
            rs = results[(s.key, app)]
            if not rs:
                print(f"| {app} | {s.name} | {s.setup} | failed | | | | | |")
                continue
            rps = med(rs, "rps")
            ratio = f"{rps / base_rps:.2f}x" if base_rps else "-"
            print(f"| {app} | {s.name} | {s.setup} | {rps:,.0f} | {ratio} | "
                  f"{max(r['rps'] for r in rs):,.0f} | {med(rs, 'p99_ms'):.2f} | "
                  f"{med(rs, 'cpu_us'):.1f} | {med(rs, 'peak_kib') / 1024:.1f} |")
        deno = results.get(("deno 1 CPU", app))
        for setup in ("--threads 1", "--threads 1 --access-log off"):
            n = results.get((f"nano-dp {setup}", app))
            if n and deno:
                nr, dr = med(n, "rps"), med(deno, "rps")
                np99, dp99 = med(n, "p99_ms"), med(deno, "p99_ms")
                # Each round's two runs are close in time: their ratios are the paired view.
                deno_by_round = {b["round"]: b for b in deno}
                pairs = [a["rps"] / deno_by_round[a["round"]]["rps"] for a in n
                         if a["round"] in deno_by_round]
                paired = (f"; per-round ratios {' '.join('%.2f' % x for x in pairs)}, "
                          f"median {statistics.median(pairs):.2f}" if pairs else "")
                ncpu, dcpu = med(n, "cpu_us"), med(deno, "cpu_us")
                verdicts.append(
                    f"- {app}, nano-dp {setup} vs deno: req/s {nr:,.0f} vs {dr:,.0f} "
                    f"(**≥ deno**: {'yes' if nr >= dr else 'no'}{paired}); "
                    f"p99 {np99:.2f} vs {dp99:.2f} ms "
                    f"(**≤ deno**: {'yes' if np99 <= dp99 else 'no'}); "
                    f"CPU {ncpu:.1f} vs {dcpu:.1f} µs/request")
    for name, why in missing:
        print(f"| | {name} | unavailable: {why} | | | | | | |")
    print()
    if verdicts:
        print("Goal: nano-dp --threads 1 req/s ≥ deno and p99 ≤ deno's:\n")
        print("\n".join(verdicts))
        print()
    print("Per-round req/s:\n")
    for app in apps:
        for s in servers:
            rs = results[(s.key, app)]
            print(f"- {app} {s.key}: {' / '.join('%.0f' % r['rps'] for r in rs) or 'failed'}")
    print()


# ---------------------------------------------------------------- coldstart

def first_requests(n_proc, n_apps, per_app, what, gap_s=0.0, marker=None):
    """Requests every app per_app times on fresh connections (in order app by app), from
    CPU 1, waiting gap_s before each app's first request. Each body must name its app (the
    small apps) or contain marker (bundles). Returns latencies [app][k] in ms."""
    lat = []
    with pinned({1}):
        for i in range(n_apps):
            host = f"app-{i}.test"
            if gap_s:
                time.sleep(gap_s)
            row = []
            for k in range(per_app):
                try:
                    status, body, ms = http_get(n_proc.port, host)
                except (OSError, RuntimeError) as e:
                    odd(f"{what}: request {k + 1} to {host} failed: {e}")
                    row.append(float("nan"))
                    continue
                expect = marker.encode() if marker else f"app-{i} ".encode()
                if status != 200 or expect not in body:
                    odd(f"{what}: request {k + 1} to {host}: status {status}, body {body[:100]!r}")
                row.append(ms)
            lat.append(row)
    return lat


def fmt_ms(v):
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def cmd_coldstart(opts, workdir):
    n = opts.apps
    cfg = write_apps(workdir, f"cold-{n}", n)
    print(f"### Cold start: first request to a never-requested app\n")
    print(f"{n} apps in one nano.json (distinct hostnames app-I.test, one small module file each). "
          f"nano-dp at --log-level debug (for `create_us`), access log on. Each app gets "
          f"requests in turn, each on a fresh loopback connection (`Connection: close`), from "
          f"a client pinned to CPU 1; latency is connect to last byte.\n")
    rows = []
    # --threads 1: one worker, so the second request always meets the isolate of the first.
    nano = Nano(opts, workdir, cfg, 1, "0", log_level="debug")
    try:
        time.sleep(0.5)
        lat = first_requests(nano, n, 3, "coldstart --threads 1")
        st = nano.status()
        created = nano.create_us()
    finally:
        nano.close()
    cold = [r[0] for r in lat if r and r[0] == r[0]]
    warm = [r[1] for r in lat if len(r) > 1 and r[1] == r[1]]
    warm3 = [r[2] for r in lat if len(r) > 2 and r[2] == r[2]]
    cus = [us / 1000 for _, us in created]
    avg_status = [a["isolate_create_us_avg"] / 1000 for a in st["apps"] if a.get("isolates_created")]
    n_created = sum(a.get("isolates_created", 0) for a in st["apps"])
    rows.append(("--threads 1 (CPU 0), apps back to back", cold, warm, warm3, cus, avg_status,
                 n_created))
    # The same with a pause before each new app, longer than the isolate pool's refill delay
    # (100 ms): a new app then finds a ready isolate (the usual case when apps do not all get
    # their first request in the same instant).
    cfg_gap = write_apps(workdir, f"cold-gap-{n}", n)
    nano = Nano(opts, workdir, cfg_gap, 1, "0", log_level="debug")
    try:
        time.sleep(0.5)
        lat_gap = first_requests(nano, n, 3, "coldstart --threads 1 gap", gap_s=0.25)
        st_gap = nano.status()
        created_gap = nano.create_us()
    finally:
        nano.close()
    rows.append(("--threads 1 (CPU 0), 250 ms before each new app (pool refilled)",
                 [r[0] for r in lat_gap if r[0] == r[0]], [r[1] for r in lat_gap if r[1] == r[1]],
                 [r[2] for r in lat_gap if r[2] == r[2]], [us / 1000 for _, us in created_gap],
                 [a["isolate_create_us_avg"] / 1000 for a in st_gap["apps"]
                  if a.get("isolates_created")],
                 sum(a.get("isolates_created", 0) for a in st_gap["apps"])))
    # --threads 2: a later request can land on the other worker's listener (SO_REUSEPORT) and
    # create a second isolate for the same app there.
    cfg2 = write_apps(workdir, f"cold2-{n}", n)
    nano = Nano(opts, workdir, cfg2, 2, "0,1", log_level="debug")
    try:
        time.sleep(0.5)
        lat2 = first_requests(nano, n, 3, "coldstart --threads 2")
        st2 = nano.status()
        created2 = nano.create_us()
    finally:
        nano.close()
    rows.append(("--threads 2 (CPUs 0,1; client shares CPU 1)",
                 [r[0] for r in lat2 if r[0] == r[0]], [r[1] for r in lat2 if r[1] == r[1]],
                 [r[2] for r in lat2 if r[2] == r[2]], [us / 1000 for _, us in created2],
                 [a["isolate_create_us_avg"] / 1000 for a in st2["apps"] if a.get("isolates_created")],
                 sum(a.get("isolates_created", 0) for a in st2["apps"])))
    # The same as the "pool refilled" row for each --memory-mb value: the pool's isolates
    # have the default heap limit (128 MiB), so an app with another limits.memory_mb gets a
    # new isolate of its own even when the pool is full (docs/nano-dp.md, Startup snapshot).
    bundle = None
    if opts.bundle_size:
        bundle = gen_bundle.generate(gen_bundle.parse_size(opts.bundle_size))
    for mb in [m for m in opts.memory_mb.split(",") if m] + (["default"] if bundle and not
                                                              opts.memory_mb else []):
        limit = None if mb == "default" else int(mb)
        tag = f"mem{mb}" + ("-bundle" if bundle else "")
        cfg_mem = write_apps(workdir, f"cold-{tag}-{n}", n, memory_mb=limit, bundle=bundle)
        nano = Nano(opts, workdir, cfg_mem, 1, "0", log_level="debug")
        try:
            time.sleep(0.5)
            lat_m = first_requests(nano, n, 3, f"coldstart memory_mb {mb}", gap_s=0.25,
                                   marker=gen_bundle.MARKER if bundle else None)
            st_m = nano.status()
            created_m = nano.create_us()
            pooled = [int(m.group(1)) for m in re.finditer(r"rt\.isolate_new app=app-\d+ "
                                                           r"pooled=(\d)", nano.read_log())]
        finally:
            nano.close()
        what = (f"limits.memory_mb {mb}" if limit else "no limits.memory_mb (default 128)")
        if bundle:
            what += f", {len(bundle) / 1024:,.0f} KB bundle (gen_bundle.py) per app"
        rows.append((f"--threads 1 (CPU 0), 250 ms before each new app, {what}; "
                     f"{sum(pooled)} of {len(pooled)} isolates from the pool",
                     [r[0] for r in lat_m if r[0] == r[0]], [r[1] for r in lat_m if r[1] == r[1]],
                     [r[2] for r in lat_m if r[2] == r[2]], [us / 1000 for _, us in created_m],
                     [a["isolate_create_us_avg"] / 1000 for a in st_m["apps"]
                      if a.get("isolates_created")],
                     sum(a.get("isolates_created", 0) for a in st_m["apps"])))
    print("| nano-dp | first request ms (median / p99 / max) | 2nd request ms (median / p99) | "
          "3rd request ms (median / p99) | isolate create ms, log `create_us` (median / p99) | "
          "/status `isolate_create_us_avg` ms (mean over apps) | isolates created |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, c, w, w3, cu, av, nc in rows:
        print(f"| {label} | {fmt_ms(statistics.median(c))} / {fmt_ms(pct(c, 99))} / "
              f"{fmt_ms(max(c))} | {fmt_ms(statistics.median(w))} / {fmt_ms(pct(w, 99))} | "
              f"{fmt_ms(statistics.median(w3))} / {fmt_ms(pct(w3, 99))} | "
              f"{fmt_ms(statistics.median(cu)) if cu else '-'} / {fmt_ms(pct(cu, 99)) if cu else '-'} | "
              f"{fmt_ms(statistics.mean(av)) if av else '-'} | {nc} for {n} apps |")
    print()
    for label, c, w, _, cu, _, _ in rows[:2] + rows[3:]:
        print(f"{label}: the first request to an app costs "
              f"{statistics.median(c) - statistics.median(w):.2f} ms more than the second "
              f"(medians); isolate creation as logged is "
              f"{statistics.median(cu) if cu else float('nan'):.2f} ms of it.")
    multi = sum(1 for a in st2["apps"] if a.get("isolates_created", 0) > 1)
    print(f"With --threads 2, {multi} of {n} apps had a second isolate created by their 2nd or 3rd "
          f"request: each worker thread builds its own isolate of an app on first use, and a new "
          f"connection may land on either worker's listener (SO_REUSEPORT), so a \"warm\" request "
          f"can still be a cold start.\n")


# ---------------------------------------------------------------- memory

def cmd_memory(opts, workdir):
    counts = [int(x) for x in opts.counts.split(",")]
    rows = []
    for n in counts:
        cfg = write_apps(workdir, f"mem-{n}", n)
        nano = Nano(opts, workdir, cfg, 1, "0")
        try:
            time.sleep(1.0)
            before = rss_kib(nano.pid)
            t0 = time.monotonic()
            lat = first_requests(nano, n, 1, f"memory {n} apps")
            took = time.monotonic() - t0
            time.sleep(2.0)
            after = rss_kib(nano.pid)
            hwm = rss_kib(nano.pid, "VmHWM")
            st = nano.status()
        finally:
            nano.close()
        iso = sum(a.get("isolates", 0) for a in st["apps"])
        heap = sum(a.get("heap_used", 0) for a in st["apps"])
        firsts = [r[0] for r in lat if r[0] == r[0]]
        per_app = (after - before) / n / 1024
        rows.append((n, before, after, hwm, per_app, iso, heap, firsts, took))
        log(f"memory {n} apps: RSS {before / 1024:.1f} -> {after / 1024:.1f} MiB, "
            f"{per_app:.2f} MiB per idle app, {iso} isolates, {took:.1f} s of first requests")
    print("### Memory: RSS per idle app\n")
    print("nano-dp --threads 1 (CPU 0), access log on, no --isolate-memory-budget. VmRSS from "
          "/proc/PID/status 1 s after start (before), and 2 s after one request to each app "
          "(after; each app then keeps one idle isolate). Goal: an idle app under 3 MiB.\n")
    print("| apps | RSS before MiB | RSS after MiB | peak RSS MiB | per idle app MiB | < 3 MiB | "
          "isolates (/status) | heap_used sum MiB (/status) | first request ms (median / p99) |")
    print("|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    for n, before, after, hwm, per_app, iso, heap, firsts, took in rows:
        print(f"| {n} | {before / 1024:.1f} | {after / 1024:.1f} | {hwm / 1024:.1f} | "
              f"{per_app:.2f} | {'yes' if per_app < 3 else '**no**'} | {iso} | "
              f"{heap / 1048576:.1f} | {fmt_ms(statistics.median(firsts))} / {fmt_ms(pct(firsts, 99))} |")
    print()


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("what", choices=("hello", "coldstart", "memory", "all"))
    ap.add_argument("--rounds", type=int, default=3, help="hello: rounds (default 3)")
    ap.add_argument("--duration", default="10s", help="hello: wrk -d (default 10s)")
    ap.add_argument("--warmup", default="2s",
                    help="hello: an unmeasured wrk run of this length first (default 2s; 0: none)")
    ap.add_argument("--connections", type=int, default=50, help="hello: wrk -c (default 50)")
    ap.add_argument("--wrk-threads-shared", type=int, default=2,
                    help="hello: wrk -t for the --threads 2 row (default 2)")
    ap.add_argument("--only", default="", help="hello: comma-separated runtimes (nano-dp,deno,...)")
    ap.add_argument("--apps", type=int, default=50, help="coldstart: apps (default 50)")
    ap.add_argument("--memory-mb", default="",
                    help="coldstart: also the pool-refilled case with each app's "
                         "limits.memory_mb set to each of these (comma-separated; 'default' "
                         "leaves it out), e.g. default,128,64")
    ap.add_argument("--bundle-size", default="",
                    help="coldstart: the --memory-mb rows with a bundle of this size "
                         "(gen_bundle.py --size, e.g. 2m) as each app's module instead of the "
                         "small app; 'default' alone when --memory-mb is not given")
    ap.add_argument("--counts", default="100,1000", help="memory: app counts (default 100,1000)")
    ap.add_argument("--nano-dp", default=os.environ.get("NANO_DP", os.path.join(ROOT, "build/bin/nano-dp")))
    ap.add_argument("--peers-dir", default=os.environ.get("NANO_BENCH_PEERS", "/tmp/nano-bench-peers"))
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, configs)")
    opts = ap.parse_args()
    if not os.access(opts.nano_dp, os.X_OK):
        sys.exit(f"tenants: {opts.nano_dp} is not built")
    if opts.what in ("hello", "all") and not shutil.which("wrk"):
        sys.exit("tenants: wrk is not installed (scripts/bootstrap --bench)")
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("tenants: needs two CPUs (server on CPU 0, client on CPU 1)")
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with INT ignored
    workdir = tempfile.mkdtemp(prefix="nano-tenants-")
    for f in os.listdir(os.path.join(HERE, "apps")):
        shutil.copy(os.path.join(HERE, "apps", f), workdir)
    code = 0
    busy = cpu_busy()
    try:
        print(f"nano-dp: {common.version_of([opts.nano_dp, '--version'])} ({opts.nano_dp}); "
              f"{os.cpu_count()} CPUs; {time.strftime('%Y-%m-%d %H:%M:%S')}; "
              f"CPU busy before the run {busy * 100:.0f}% (other processes, over 1 s)\n")
        if busy > 0.1:
            odd(f"the machine was {busy * 100:.0f}% busy just before the run started: "
                f"figures are lower and noisier than on an idle machine")
        if opts.what in ("hello", "all"):
            cmd_hello(opts, workdir)
        if opts.what in ("coldstart", "all"):
            cmd_coldstart(opts, workdir)
        if opts.what in ("memory", "all"):
            cmd_memory(opts, workdir)
    except KeyboardInterrupt:
        log("interrupted; stopping servers")
        code = 130
    finally:
        stop_all()
        if opts.keep:
            log(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if ODDITIES:
        print("### Worth a look (collected during the run)\n")
        for o in ODDITIES:
            print(f"- {o}")
        print()
    sys.exit(code)


if __name__ == "__main__":
    main()
