#!/usr/bin/env python3
"""bench/firstresponse.py: time from process start to the first 200 response, for an 11 KB
and a 2 MB Workers bundle, served by nano-dp, deno and bun side by side.

    python3 bench/firstresponse.py                      # 10 rounds, all runtimes, both bundles
    python3 bench/firstresponse.py --rounds 5 --only nano-dp,deno --bin build/bin/nano-dp
    python3 bench/firstresponse.py --bundle my-worker.js   # a real bundle instead of the 2 MB one

The bundles come from bench/gen_bundle.py (synthetic, deterministic, written into the work
directory); --bundle adds any file that exports `default { fetch }`. Each round starts every
runtime once per bundle, in turn (reversed every other round), after one unmeasured start of
each (it fills the peers' caches and the page cache). A start: the server process is spawned
pinned to --server-cpu (its threads too), and this script, pinned to --client-cpu, connects
to its port every 0.5 ms and sends `GET /` on each new connection until one answers 200 with
the bundle's marker; the time is from just before the spawn to the end of that response.
Then the server's VmRSS is read and it is killed.

Runtimes (--only):
  nano-dp       nano-dp BUNDLE --threads 1 --listen 127.0.0.1:PORT --status-listen off
                (access log on, so that its log gives `dp.app_loaded load_us` and the first
                request's `duration_ms`: printed as a breakdown)
  deno          deno serve --quiet, with a DENO_DIR kept across the run: from the second start
                on, deno uses its V8 code cache and module analysis cache
  deno-nocache  the same with a new empty DENO_DIR for each start
  bun           bun apps/bun-module-serve.js (Bun.serve around the module's fetch), with a
                transpiler cache kept across the run (bun caches files over 50 KB)
  bun-nocache   the same with BUN_RUNTIME_TRANSPILER_CACHE_PATH=0
  nano-dp-nopool  nano-dp with --isolate-pool 0 (only when named in --only): no pool
                to fill when its worker starts, so the first request makes the isolate

Each round also times `--version` of every runtime (wall and user+system CPU, spawned as the
servers are): the part of a start that is loading the program. Peers are installed from npm
into --peers-dir as by bench/hello.py. Prints markdown tables of medians and ratios to
nano-dp on stdout; per-start figures on stderr. Python standard library only.
"""
import argparse
import calendar
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_bundle  # noqa: E402  (the synthetic bundles)
import hello as common  # noqa: E402  (peers, versions, /proc)

ROOT = os.path.dirname(HERE)
RUNTIMES = ("nano-dp", "deno", "deno-nocache", "bun", "bun-nocache")
EXTRA = ("nano-dp-nopool",)  # only when named in --only
STARTED = []  # every server process still running that this script started


def log(msg):
    print(f"firstresponse: {msg}", file=sys.stderr, flush=True)


class pinned:
    """Runs this process (and what it spawns in the block) on the given CPUs."""

    def __init__(self, cpus):
        self.cpus = cpus

    def __enter__(self):
        self.saved = os.sched_getaffinity(0)
        os.sched_setaffinity(0, self.cpus)

    def __exit__(self, *exc):
        os.sched_setaffinity(0, self.saved)


class Runtime:
    """One way to serve a bundle: argv(module, port, workdir) and env(workdir) per start."""

    def __init__(self, name, binary, version, argv, env=None, version_argv=None):
        self.name, self.binary, self.version = name, binary, version
        self.argv = argv
        self.env = env or (lambda wd: {})
        self.version_argv = version_argv or [binary, "--version"]


def find_runtimes(opts):
    found, missing = [], []
    only = set(opts.only.split(",")) if opts.only else set(RUNTIMES)
    unknown = only - set(RUNTIMES) - set(EXTRA)
    if unknown:
        sys.exit(f"firstresponse: unknown runtime(s) {', '.join(sorted(unknown))}; "
                 f"known: {', '.join(RUNTIMES + EXTRA)}")
    nano = os.path.abspath(opts.bin)
    for name, more in (("nano-dp", []), ("nano-dp-nopool", ["--isolate-pool", "0"])):
        if name not in only:
            continue
        if not os.access(nano, os.X_OK):
            missing.append((name, f"{nano} is not built (make)"))
            continue
        found.append(Runtime(
            name, nano, common.version_of([nano, "--version"]),
            lambda m, p, wd, more=more: [nano, m, "--threads", "1", "--listen",
                                         f"127.0.0.1:{p}", "--status-listen", "off",
                                         "--log-level", "debug", *more,
                                         *shlex.split(opts.nano_args)]))
    if not only & {"deno", "deno-nocache", "bun", "bun-nocache"}:
        return found, missing
    bin_dir = common.install_peers(opts.peers_dir)
    deno = os.path.realpath(os.path.join(bin_dir, "deno"))
    bun = os.path.realpath(os.path.join(bin_dir, "bun"))
    deno_v = common.version_of([deno, "--version"]) if os.path.exists(deno) else None
    deno_v = deno_v and re.sub(r" \(.*", "", deno_v)  # "deno 2.x.y (stable, ...)"
    bun_v = common.version_of([bun, "--version"]) if os.path.exists(bun) else None
    bun_serve = os.path.join(HERE, "apps", "bun-module-serve.js")

    def deno_argv(m, p, wd):
        return [deno, "serve", "--quiet", "--host", "127.0.0.1", "--port", str(p), m]

    def bun_argv(m, p, wd):
        return [bun, bun_serve]

    def fresh_deno_dir(wd):
        return {"DENO_DIR": tempfile.mkdtemp(prefix="deno-dir-", dir=wd)}

    for name, ok, rt in (
            ("deno", deno_v, lambda: Runtime("deno", deno, deno_v, deno_argv,
                                             lambda wd: {"DENO_DIR": os.path.join(wd,
                                                                                  "deno-dir")})),
            ("deno-nocache", deno_v, lambda: Runtime("deno-nocache", deno, deno_v, deno_argv,
                                                     fresh_deno_dir)),
            ("bun", bun_v, lambda: Runtime("bun", bun, bun_v, bun_argv, lambda wd: {
                "BUN_RUNTIME_TRANSPILER_CACHE_PATH": os.path.join(wd, "bun-cache")})),
            ("bun-nocache", bun_v, lambda: Runtime("bun-nocache", bun, bun_v, bun_argv, lambda wd: {
                "BUN_RUNTIME_TRANSPILER_CACHE_PATH": "0"}))):
        if name not in only:
            continue
        if ok:
            found.append(rt())
        else:
            missing.append((name, "not installed or does not run (npm install into "
                                  f"{opts.peers_dir} failed?)"))
    return found, missing


def get_once(port, timeout=30.0):
    """GET / on a new connection; (status, body) or None when the port does not accept yet."""
    req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(req)
            chunks = []
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
    except (ConnectionRefusedError, ConnectionResetError):
        return None
    data = b"".join(chunks)
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return (int(m.group(1)) if m else 0), data


def stop(proc, graceful=False):
    """SIGKILL to proc's process group; with graceful, SIGTERM first (nano-dp then flushes its
    log) and SIGKILL only after 10 s."""
    for sig in ((signal.SIGTERM, signal.SIGKILL) if graceful else (signal.SIGKILL,)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            continue
    proc.wait(timeout=10)
    if proc in STARTED:
        STARTED.remove(proc)


def start_once(rt, module, opts, workdir, marker):
    """One start of rt serving module. Returns {ms, rss_kib, log}; raises RuntimeError."""
    port = common.free_port()
    env = dict(os.environ, PORT=str(port), APP_MODULE=module, **rt.env(workdir))
    log_path = os.path.join(workdir, f"{rt.name}-{port}.log")
    argv = rt.argv(module, port, workdir)
    with open(log_path, "wb") as out, pinned({opts.server_cpu}):
        t0_wall = time.time()
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    STARTED.append(proc)
    try:
        deadline = t0 + opts.timeout
        others = 0
        with pinned({opts.client_cpu}):
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"exited with status {proc.returncode}: "
                                       f"{tail(log_path)}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no 200 within {opts.timeout:.0f} s: {tail(log_path)}")
                r = get_once(port)
                if r is None:
                    time.sleep(0.0005)
                    continue
                status, data = r
                if status == 200 and marker in data:
                    ms = (time.monotonic() - t0) * 1000
                    break
                others += 1  # a 503 while loading, say: counted, then asked again
                time.sleep(0.0005)
        rss = common.proc_status_kib(proc.pid, "VmRSS")
        cpu = cpu_ms(proc.pid)
    finally:
        stop(proc, graceful=rt.name.startswith("nano-dp"))
    with open(log_path, errors="replace") as f:
        text = f.read()
    if rt.name == "deno-nocache":
        shutil.rmtree(env["DENO_DIR"], ignore_errors=True)
    return {"ms": ms, "cpu_ms": cpu, "rss_kib": rss, "non200": others, "log": text,
            "t0_wall": t0_wall}


def cpu_ms(pid):
    """CPU time of pid's threads alive now, in ms (/proc/PID/task/*/schedstat, ns). Less
    disturbed than wall time by other load on the server's CPU; threads that have already
    exited are not counted."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e6


def tail(path, n=3):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-n:])
    except OSError:
        return ""


def log_time(line):
    """Epoch seconds of a nano-dp log line's timestamp (2026-12-06T23:10:03.659Z), or None."""
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z ", line)
    if not m:
        return None
    return calendar.timegm(time.strptime(m.group(1)[:19], "%Y-%m-%dT%H:%M:%S")) + \
        float("0" + m.group(1)[19:])


def nano_breakdown(text, t0_wall):
    """nano-dp's debug log, read as a timeline: when it listened (ms after the spawn, from the
    log's millisecond timestamps), the app's load before that (dp.app_loaded load_us, with
    rt.isolate_new's isolate_us and app_us), and the first request's duration_ms, with the
    worker's isolate of the app (app.isolate_created create_us) in it."""
    out = {}
    for line in text.splitlines():
        if " dp.listening " in line and "listening_ms" not in out:
            t = log_time(line)
            out["listening_ms"] = (t - t0_wall) * 1000 if t else None
        m = re.search(r" rt\.isolate_new .*?pooled=0 isolate_us=(\d+) app_us=(\d+)", line)
        if m and "load_isolate_ms" not in out:
            out["load_isolate_ms"], out["load_app_ms"] = (int(m.group(1)) / 1000,
                                                          int(m.group(2)) / 1000)
        m = re.search(r" dp\.app_loaded .*?load_us=(\d+)", line)
        if m and "load_ms" not in out:
            out["load_ms"] = int(m.group(1)) / 1000
        m = re.search(r" app\.isolate_created .*?create_us=(\d+)", line)
        if m and "worker_isolate_ms" not in out:
            out["worker_isolate_ms"] = int(m.group(1)) / 1000
        m = re.search(r" access .*?status=200 .*?duration_ms=([\d.]+)", line)
        if m and "first_req_ms" not in out:
            out["first_req_ms"] = float(m.group(1))
    return out


def version_once(rt, opts):
    """Wall and user+system CPU ms of `rt --version`, spawned pinned like the servers."""
    with open(os.devnull, "wb") as null, pinned({opts.server_cpu}):
        t0 = time.monotonic()
        p = subprocess.Popen(rt.version_argv, stdin=subprocess.DEVNULL, stdout=null, stderr=null)
        _, status, ru = os.wait4(p.pid, 0)
        wall = (time.monotonic() - t0) * 1000
    p.returncode = os.waitstatus_to_exitcode(status)
    return wall, (ru.ru_utime + ru.ru_stime) * 1000


def cpu_busy(seconds=1.0):
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]
    t0, i0 = sample()
    time.sleep(seconds)
    t1, i1 = sample()
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


def on_sigterm(signum, frame):
    raise KeyboardInterrupt


def fmt(v, nd=0):
    if v is None:
        return "-"
    return f"{v:,.{nd}f}" if v >= 100 or nd == 0 else f"{v:.{nd}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--only", default="", help=f"comma-separated, of {','.join(RUNTIMES)}")
    ap.add_argument("--bin", "--nano-dp", dest="bin",
                    default=os.environ.get("NANO_DP", os.path.join(ROOT, "build/bin/nano-dp")),
                    help="the nano-dp binary (default build/bin/nano-dp)")
    ap.add_argument("--nano-args", default="",
                    help="more nano-dp arguments, e.g. \"--isolate-pool 0\"")
    ap.add_argument("--sizes", default="11k,2m",
                    help="synthetic bundle sizes, gen_bundle.py's --size (default 11k,2m)")
    ap.add_argument("--bundle", action="append", default=[],
                    help="also serve this bundle file (repeatable; its GET / must answer 200)")
    ap.add_argument("--marker", default="",
                    help="text the first 200 must contain for --bundle files (default: none)")
    ap.add_argument("--peers-dir",
                    default=os.environ.get("NANO_BENCH_PEERS", "/tmp/nano-bench-peers"))
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a 200")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (bundles, logs)")
    opts = ap.parse_args()
    if opts.rounds < 1:
        ap.error("--rounds must be at least 1")
    signal.signal(signal.SIGTERM, on_sigterm)
    workdir = tempfile.mkdtemp(prefix="nano-firstresponse-")
    code = 0
    try:
        code = run(opts, workdir)
    except KeyboardInterrupt:
        log("interrupted; stopping servers")
        code = 130
    finally:
        for p in list(STARTED):
            stop(p)
        if opts.keep:
            log(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(code)


def run(opts, workdir):
    bundles = []  # (label, path, marker bytes)
    for s in filter(None, opts.sizes.split(",")):
        path = os.path.join(workdir, f"bundle-{s}.js")
        text = gen_bundle.generate(gen_bundle.parse_size(s))
        with open(path, "w") as f:
            f.write(text)
        bundles.append((f"{len(text.encode()) / 1024:,.0f} KB" if len(text) < 1 << 20 else
                        f"{len(text.encode()) / (1 << 20):.1f} MB", path,
                        gen_bundle.MARKER.encode()))
    for b in opts.bundle:
        path = os.path.abspath(b)
        bundles.append((f"{os.path.basename(b)} ({os.path.getsize(path) / 1024:,.0f} KB)", path,
                        opts.marker.encode()))
    found, missing = find_runtimes(opts)
    if not found:
        sys.exit("firstresponse: no runtime to run")
    busy = cpu_busy()
    if busy > 0.1:
        log(f"NOTE: the machine was {busy * 100:.0f}% busy in the second before the run")
    starts = {(rt.name, b[0]): [] for rt in found for b in bundles}
    versions = {rt.name: [] for rt in found}
    failures = []
    log("one unmeasured start of each runtime per bundle")
    for rt in found:
        for label, path, marker in bundles:
            try:
                start_once(rt, path, opts, workdir, marker)
            except RuntimeError as e:
                failures.append(f"warm-up {rt.name} {label}: {e}")
                log(f"warm-up {rt.name} {label} failed: {e}")
    for rnd in range(1, opts.rounds + 1):
        order = found if rnd % 2 else list(reversed(found))
        for label, path, marker in bundles:
            for rt in order:
                try:
                    r = start_once(rt, path, opts, workdir, marker)
                except RuntimeError as e:
                    failures.append(f"round {rnd} {rt.name} {label}: {e}")
                    log(f"round {rnd} {rt.name} {label} failed: {e}")
                    continue
                if rt.name.startswith("nano-dp"):
                    r.update(nano_breakdown(r["log"], r["t0_wall"]))
                del r["log"]
                starts[(rt.name, label)].append(r)
                extra = (f" (listening at {fmt(r.get('listening_ms'), 1)} ms, app load "
                         f"{fmt(r.get('load_ms'), 1)} ms, first request "
                         f"{fmt(r.get('first_req_ms'), 1)} ms)" if rt.name.startswith("nano-dp")
                         else "")
                log(f"round {rnd}/{opts.rounds} {label} {rt.name}: {r['ms']:.1f} ms, "
                    f"CPU {fmt(r['cpu_ms'], 1)} ms, RSS {r['rss_kib'] / 1024:.1f} MiB{extra}")
        for rt in order:
            versions[rt.name].append(version_once(rt, opts))
    report(opts, found, missing, bundles, starts, versions, failures, busy)
    return 1 if failures else 0


def report(opts, found, missing, bundles, starts, versions, failures, busy):
    med = statistics.median
    print(f"### Process start to the first 200 response (medians of {opts.rounds} rounds)\n")
    print(f"{os.cpu_count()} CPUs, server pinned to CPU {opts.server_cpu}, client to CPU "
          f"{opts.client_cpu}; {time.strftime('%Y-%m-%d %H:%M')}; CPU busy before the run "
          f"{busy * 100:.0f}%. nano-dp: {opts.bin} {opts.nano_args}. Ratios: the runtime's "
          f"time / nano-dp's "
          f"(below 1: faster than nano-dp). CPU ms: the server's threads' CPU time at the "
          f"first 200 (schedstat); RSS after it.\n")
    head = "| runtime | version | `--version` ms (CPU ms) |"
    rule = "|---|---|---:|"
    for label, _, _ in bundles:
        head += f" {label}: first 200 ms | x nano-dp | CPU ms | RSS MiB |"
        rule += "---:|---:|---:|---:|"
    print(head)
    print(rule)
    base = {}
    for label, _, _ in bundles:
        rs = starts.get(("nano-dp", label)) or []
        base[label] = med(r["ms"] for r in rs) if rs else None
    for rt in found:
        vs = versions[rt.name]
        row = (f"| {rt.name} | {rt.version or '?'} | {fmt(med(w for w, _ in vs), 1)} "
               f"({fmt(med(c for _, c in vs), 1)}) |")
        for label, _, _ in bundles:
            rs = starts[(rt.name, label)]
            if not rs:
                row += " failed | | | |"
                continue
            ms = med(r["ms"] for r in rs)
            ratio = f"{ms / base[label]:.2f}" if base[label] else "-"
            row += (f" {fmt(ms, 1)} | {ratio} | {fmt(med(r['cpu_ms'] for r in rs), 1)} | "
                    f"{med(r['rss_kib'] for r in rs) / 1024:.1f} |")
        print(row)
    for name, why in missing:
        print(f"| {name} | unavailable: {why} |" + " |" * (1 + 4 * len(bundles)))
    print()
    nanos = [rt.name for rt in found if rt.name.startswith("nano-dp")]
    if any(starts.get((n, b[0])) for n in nanos for b in bundles):
        keys = ("ms", "listening_ms", "load_ms", "load_isolate_ms", "load_app_ms",
                "first_req_ms")
        print("nano-dp's timeline, from its debug log (medians, ms; log timestamps have 1 ms "
              "resolution): when it listened, after loading the app once (`dp.app_loaded "
              "load_us`: a new isolate, then the module compiled and run); the first request's "
              "`duration_ms`, which includes the worker making its own isolate of the app "
              "(`app.isolate_created create_us`) in builds whose start-up check was not the "
              "worker's own load (none: the start-up load's isolate served it); and the time "
              "from listening to that request's start (the client connects within 0.5 ms of "
              "the listen).\n")
        print("| nano-dp | bundle | first 200 | listening at | app load before listening "
              "(isolate + module) "
              "| first request | of it, worker's isolate of the app | listening → first request "
              "begins |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for name, (label, _, _) in ((n, b) for n in nanos for b in bundles):
            rs = [r for r in starts.get((name, label), [])
                  if all(r.get(k) is not None for k in keys)]
            if not rs:
                continue
            m = {k: med(r[k] for r in rs) for k in keys}
            wait = med(r["ms"] - r["listening_ms"] - r["first_req_ms"] for r in rs)
            made = [r["worker_isolate_ms"] for r in rs if r.get("worker_isolate_ms") is not None]
            worker = fmt(med(made), 1) if made else "none"
            print(f"| {name} | {label} | {fmt(m['ms'], 1)} | {fmt(m['listening_ms'], 1)} | "
                  f"{fmt(m['load_ms'], 1)} ({fmt(m['load_isolate_ms'], 1)} + "
                  f"{fmt(m['load_app_ms'], 1)}) | {fmt(m['first_req_ms'], 1)} | "
                  f"{worker} | {fmt(wait, 1)} |")
        print()
    print("Per-start times, ms (stderr has RSS too):\n")
    for label, _, _ in bundles:
        for rt in found:
            rs = starts[(rt.name, label)]
            print(f"- {label} {rt.name}: {' / '.join('%.0f' % r['ms'] for r in rs) or 'failed'}")
    non200 = sum(r["non200"] for rs in starts.values() for r in rs)
    if failures or non200 or busy > 0.1:
        print("\n### Worth a look\n")
        if busy > 0.1:
            print(f"- the machine was {busy * 100:.0f}% busy just before the run: figures are "
                  f"slower and noisier than on an idle machine")
        if non200:
            print(f"- {non200} answers other than 200 before a start's first 200 (asked again)")
        for f in failures:
            print(f"- {f}")
    print()


if __name__ == "__main__":
    main()
