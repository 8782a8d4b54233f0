#!/usr/bin/env python3
"""bench/proxy.py: outbound fetch() as a reverse proxy, nano-dp beside deno, bun, workerd and
node, side by side in one run.

Every runtime serves the same module (apps/proxy.js: `return fetch(UPSTREAM + path, request)`)
in front of ONE shared upstream process (apps/proxy-upstream.js, served by --upstream, default
nano-dp --threads 1; never the process under test). Per runtime and round, on a fresh proxy
process pinned to --server-cpu (0), with the upstream and every client on --client-cpu (1):
  small     `wrk -t1 -c50 -d10s --latency` GET /small (100-byte body) after an unmeasured
            warm-up: req/s, p99, proxy CPU per request
  download  curl GET /gen?mb=1024 (1 GiB, 64 KiB chunks from the upstream): MB/s, and the
            proxy's peak RSS growth over the transfer (VmHWM reset via clear_refs first)
  upload    curl POST of a 256 MiB file to /count (the upstream answers the byte count,
            checked): MB/s
Rounds interleave the runtimes (reversed every other round); the table shows medians and the
ratio to nano-dp, plus nano-dp's ratio to the faster of deno and bun. Per-round lines go to
stderr. Peers as in bench/hello.py (npm into --peers-dir; node is the system node). Python
standard library, wrk and curl.
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import hello as common  # noqa: E402  (shared helpers: ports, readiness, peers, wrk parsing)

ROOT = os.path.dirname(HERE)
PARTS = ("small", "download", "upload")
SMALL_BODY = 100
MIB = 1024 * 1024


class Runtime:
    def __init__(self, name, version, make_cmd):
        self.name = name
        self.version = version
        self.make_cmd = make_cmd  # port -> argv


def nano_cmd(nano, module, port, threads=1):
    return [nano, module, "--port", str(port), "--threads", str(threads), "--log-level", "warn",
            "--status-listen", "off",
            "--max-body-size", str(4 << 30)]


def runtimes(opts, workdir, bin_dir):
    found, missing = [], []
    nano = os.path.abspath(opts.nano_dp)
    if os.access(nano, os.X_OK):
        found.append(Runtime("nano-dp", common.version_of([nano, "--version"]),
                             lambda p: nano_cmd(nano, "proxy.js", p)))
    else:
        missing.append(("nano-dp", f"{nano} not built (run make)"))

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

    # deno serve allows only its own listening address; the proxy's fetch needs --allow-net.
    peer("deno", lambda b, p: [b, "serve", "--quiet", "--allow-net", "--host", "127.0.0.1",
                               "--port", str(p), "proxy.js"])
    peer("bun", lambda b, p: [b, "bun-proxy-serve.js"])
    with open(os.path.join(workdir, "workerd-proxy.capnp.in")) as f:
        capnp = f.read()

    def workerd_cmd(b, p):
        conf = os.path.join(workdir, f"workerd-proxy-{p}.capnp")
        with open(conf, "w") as f:
            f.write(capnp.replace("@PORT@", str(p)))
        return [b, "serve", conf]
    peer("workerd", workerd_cmd)
    node = shutil.which("node")
    if node:
        found.append(Runtime("node", common.version_of([node, "--version"]),
                             lambda p: [node, "node-proxy-serve.mjs"]))
    else:
        missing.append(("node", "not installed"))
    only = set(opts.only.split(",")) if opts.only else None
    return [r for r in found if only is None or r.name in only], missing


def upstream_cmd(opts, bin_dir, port):
    """The shared upstream's argv and a description, for --upstream."""
    if opts.upstream == "nano-dp":
        nano = os.path.abspath(opts.upstream_nano_dp or opts.nano_dp)
        return nano_cmd(nano, "proxy-upstream.js", port), \
            f"nano-dp --threads 1 ({common.version_of([nano, '--version'])})"
    path = os.path.join(bin_dir, opts.upstream)
    v = common.version_of([path, "--version"])
    if opts.upstream == "bun":
        return [path, "bun-upstream-serve.js"], f"bun {v}"
    if opts.upstream == "deno":
        return [path, "serve", "--quiet", "--host", "127.0.0.1", "--port", str(port),
                "proxy-upstream.js"], v
    sys.exit(f"bench: --upstream {opts.upstream}: use nano-dp, bun or deno")


def start(argv, cpu, port, cwd):
    env = dict(os.environ, PORT=str(port))
    proc = subprocess.Popen(["taskset", "-c", str(cpu)] + argv, cwd=cwd, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    proc.t0 = time.monotonic()
    proc.port = port
    return proc


def stop(proc):
    if proc is not None and proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait(timeout=10)


def curl(opts, args, out="/dev/null"):
    """Runs curl pinned to the client CPU; returns (bytes downloaded, seconds)."""
    argv = ["taskset", "-c", str(opts.client_cpu), "curl", "-s", "-o", out,
            "-w", "%{http_code} %{size_download} %{time_total}", "--max-time", "300"] + args
    res = subprocess.run(argv, capture_output=True, text=True, timeout=330).stdout.split()
    if len(res) != 3 or res[0] != "200":
        raise RuntimeError(f"curl {' '.join(args)}: {' '.join(res) or 'no answer'}")
    return int(res[1]), float(res[2])


def wrk(opts, port, duration):
    argv = ["taskset", "-c", str(opts.client_cpu), "wrk", "-t1", f"-c{opts.connections}",
            f"-d{duration}", "--latency", f"http://127.0.0.1:{port}/small"]
    return common.parse_wrk(subprocess.run(argv, capture_output=True, text=True, timeout=600).stdout)


def check_small(port):
    """The proxied /small must be the upstream's 100 bytes."""
    out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", f"http://127.0.0.1:{port}/small"],
                         capture_output=True, text=True, timeout=30).stdout
    body, _, code = out.rpartition("\n")
    if code != "200" or len(body.encode()) != SMALL_BODY:
        raise RuntimeError(f"GET /small through the proxy: status {code}, {len(body)} bytes")


def reset_peak(pid):
    """Resets VmHWM to the current RSS (proc(5): clear_refs 5); False if not permitted."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def tcp_active_opens():
    """The machine's count of TCP connects so far (/proc/net/snmp Tcp: ActiveOpens)."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Tcp:")]
    return int(rows[1][rows[0].index("ActiveOpens")])


def measure_small(opts, port, pid):
    if opts.warmup:
        wrk(opts, port, opts.warmup)
    cpu0 = common.proc_tree_cpu_seconds(pid)
    opens0 = tcp_active_opens()
    r = wrk(opts, port, opts.duration)
    opens1 = tcp_active_opens()
    cpu1 = common.proc_tree_cpu_seconds(pid)
    if r["non2xx"] or r["socket_errors"]:
        raise RuntimeError(f"{r['rps']:.0f} req/s but non-2xx {r['non2xx']}, "
                           f"socket errors {r['socket_errors']}")
    us = (cpu1 - cpu0) / r["requests"] * 1e6 if r["requests"] and cpu0 is not None and cpu1 is not None else None
    # Connects made during the run besides wrk's own: the proxy's new upstream connections
    # (machine-wide, so anything else connecting at the time counts too).
    return {"rps": r["rps"], "p99_ms": r["p99_ms"], "cpu_us": us,
            "connects": max(0, opens1 - opens0 - opts.connections)}


def measure_download(opts, port, pid):
    n = opts.download_mb * MIB
    try:  # warm-up: the same path with a smaller body
        curl(opts, [f"http://127.0.0.1:{port}/gen?mb=16"])
    except Exception:
        pass
    time.sleep(0.2)
    before = common.proc_status_kib(pid, "VmRSS")
    can_reset = reset_peak(pid)
    cpu0 = common.proc_tree_cpu_seconds(pid)
    size, secs = curl(opts, [f"http://127.0.0.1:{port}/gen?mb={opts.download_mb}"])
    cpu1 = common.proc_tree_cpu_seconds(pid)
    peak = common.proc_status_kib(pid, "VmHWM")
    if size != n:
        raise RuntimeError(f"got {size} bytes, want {n}")
    growth = (peak - before) / 1024 if can_reset and peak is not None and before is not None else None
    return {"mbps": n / MIB / secs, "rss_growth": growth,
            "cpu_s_per_gib": (cpu1 - cpu0) / (n / (1024 * MIB)) if cpu0 is not None and cpu1 is not None else None}


def measure_upload(opts, port, pid, upload_file, workdir):
    n = opts.upload_mb * MIB
    out = os.path.join(workdir, "count.txt")
    cpu0 = common.proc_tree_cpu_seconds(pid)
    _, secs = curl(opts, ["-H", "Expect:", "-H", "Content-Type: application/octet-stream",
                          "-T", upload_file, "-X", "POST", f"http://127.0.0.1:{port}/count"], out)
    cpu1 = common.proc_tree_cpu_seconds(pid)
    with open(out) as f:
        counted = f.read().strip()
    if counted != str(n):
        raise RuntimeError(f"the upstream counted {counted[:80]!r} bytes, want {n}")
    return {"mbps": n / MIB / secs,
            "cpu_s_per_gib": (cpu1 - cpu0) / (n / (1024 * MIB)) if cpu0 is not None and cpu1 is not None else None}


def measure(rt, opts, workdir, upload_file):
    port = common.free_port()
    proc = start(rt.make_cmd(port), opts.server_cpu, port, workdir)
    try:
        if common.first_response_ms(proc, port) is None:
            err = proc.stderr.read().decode(errors="replace")[-500:] if proc.poll() is not None else ""
            raise RuntimeError(f"no response from {rt.name}: {err}")
        check_small(port)
        out = {}
        for part in opts.parts:
            try:
                if part == "small":
                    out[part] = measure_small(opts, port, proc.pid)
                elif part == "download":
                    out[part] = measure_download(opts, port, proc.pid)
                else:
                    out[part] = measure_upload(opts, port, proc.pid, upload_file, workdir)
            except Exception as e:
                out[part] = str(e)
            if proc.poll() is not None:
                raise RuntimeError(f"{rt.name} exited ({proc.returncode}) during {part}: "
                                   + proc.stderr.read().decode(errors="replace")[-300:])
        out["peak_kib"] = common.proc_status_kib(proc.pid, "VmHWM")
        return out
    finally:
        stop(proc)


def measure_direct(opts, upstream, workdir, upload_file):
    """The same parts against the upstream itself (no proxy): the ceiling of this setup. The
    client and the upstream share --client-cpu here, so this is not a proxy's figure."""
    pid, port = upstream.pid, upstream.port
    out = {}
    for part in opts.parts:
        try:
            if part == "small":
                out[part] = measure_small(opts, port, pid)
            elif part == "download":
                out[part] = measure_download(opts, port, pid)
            else:
                out[part] = measure_upload(opts, port, pid, upload_file, workdir)
        except Exception as e:
            out[part] = str(e)
    return out


def fmt_round(name, r, parts):
    bits = []
    for part in parts:
        v = r.get(part)
        if isinstance(v, str):
            bits.append(f"{part} [{v[:120]}]")
        elif part == "small":
            cpu = f" cpu {v['cpu_us']:.1f} us/req" if v.get("cpu_us") is not None else ""
            bits.append(f"small {v['rps']:.0f} req/s p99 {v['p99_ms']:.2f} ms{cpu} "
                        f"upstream connects {v['connects']}")
        elif part == "download":
            g = f" rss +{v['rss_growth']:.1f} MiB" if v.get("rss_growth") is not None else ""
            c = f" cpu {v['cpu_s_per_gib']:.2f} s/GiB" if v.get("cpu_s_per_gib") is not None else ""
            bits.append(f"download {v['mbps']:.0f} MB/s{g}{c}")
        else:
            c = f" cpu {v['cpu_s_per_gib']:.2f} s/GiB" if v.get("cpu_s_per_gib") is not None else ""
            bits.append(f"upload {v['mbps']:.0f} MB/s{c}")
    peak = f" peak {r['peak_kib'] / 1024:.1f} MiB" if r.get("peak_kib") else ""
    return f"{name}: " + " ".join(bits) + peak


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", default="10s", help="wrk -d of the small part (default 10s)")
    ap.add_argument("--warmup", default="2s", help="unmeasured wrk run first ('' for none)")
    ap.add_argument("--connections", type=int, default=50, help="wrk -c (default 50)")
    ap.add_argument("--download-mb", type=int, default=1024, help="MiB downloaded (default 1024)")
    ap.add_argument("--upload-mb", type=int, default=256, help="MiB uploaded (default 256)")
    ap.add_argument("--parts", default=",".join(PARTS))
    ap.add_argument("--upstream", default="nano-dp", help="nano-dp (default), bun or deno")
    ap.add_argument("--upstream-nano-dp", default="",
                    help="the upstream's nano-dp binary when it is not --nano-dp's (to compare builds "
                         "behind the same upstream)")
    ap.add_argument("--no-direct", action="store_true", help="skip the upstream-direct row")
    ap.add_argument("--nano-dp", default=os.environ.get("NANO_DP", os.path.join(ROOT, "build/bin/nano-dp")))
    ap.add_argument("--peers-dir", default=os.environ.get("NANO_BENCH_PEERS", "/tmp/nano-bench-peers"))
    ap.add_argument("--only", default="", help="comma-separated runtimes to run")
    ap.add_argument("--server-cpu", type=int, default=0, help="the proxy's CPU (default 0)")
    ap.add_argument("--client-cpu", type=int, default=1,
                    help="the upstream's and the clients' CPU (default 1)")
    opts = ap.parse_args()
    opts.parts = [p for p in opts.parts.split(",") if p]
    for tool in ("wrk", "curl", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is not installed (scripts/bootstrap --bench)")
    workdir = tempfile.mkdtemp(prefix="nano-bench-proxy-")
    upstream = None
    found, missing, results, direct, up_desc = [], [], {}, [], opts.upstream

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    try:
        for f in os.listdir(os.path.join(HERE, "apps")):
            shutil.copy(os.path.join(HERE, "apps", f), workdir)
        bin_dir = common.install_peers(opts.peers_dir)
        up_port = common.free_port()
        with open(os.path.join(workdir, "proxy.js")) as f:
            text = f.read().replace("@UPSTREAM@", f"http://127.0.0.1:{up_port}")
        with open(os.path.join(workdir, "proxy.js"), "w") as f:
            f.write(text)
        upload_file = os.path.join(workdir, "upload.bin")
        if "upload" in opts.parts:
            with open(upload_file, "wb") as f:
                block = os.urandom(MIB)
                for _ in range(opts.upload_mb):
                    f.write(block)
        argv, up_desc = upstream_cmd(opts, bin_dir, up_port)
        upstream = start(argv, opts.client_cpu, up_port, workdir)
        if common.first_response_ms(upstream, up_port) is None:
            sys.exit(f"bench: the upstream ({up_desc}) did not start: "
                     + (upstream.stderr.read().decode(errors="replace")[-500:] if upstream.poll() is not None else ""))
        print(f"bench: upstream {up_desc} on 127.0.0.1:{up_port}, CPU {opts.client_cpu}",
              file=sys.stderr)
        found, missing = runtimes(opts, workdir, bin_dir)
        results = {rt.name: [] for rt in found}
        direct = []
        for rnd in range(1, opts.rounds + 1):
            order = found if rnd % 2 == 1 else list(reversed(found))
            for rt in order:
                try:
                    r = measure(rt, opts, workdir, upload_file)
                    results[rt.name].append(r)
                    print(f"bench: round {rnd}/{opts.rounds} " + fmt_round(rt.name, r, opts.parts),
                          file=sys.stderr, flush=True)
                except Exception as e:
                    print(f"bench: round {rnd} {rt.name} failed: {e}", file=sys.stderr, flush=True)
                if upstream.poll() is not None:
                    sys.exit("bench: the upstream exited: "
                             + upstream.stderr.read().decode(errors="replace")[-500:])
            if not opts.no_direct:
                r = measure_direct(opts, upstream, workdir, upload_file)
                direct.append(r)
                print(f"bench: round {rnd}/{opts.rounds} " + fmt_round("upstream direct", r, opts.parts),
                      file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        sys.exit("bench: interrupted")
    finally:
        stop(upstream)
        shutil.rmtree(workdir, ignore_errors=True)
    report(opts, found, missing, results, direct, up_desc)


def report(opts, found, missing, results, direct, up_desc):
    def med(rs, part, key):
        vals = [r[part][key] for r in rs if isinstance(r.get(part), dict) and r[part].get(key) is not None]
        if vals:
            return statistics.median(vals), None
        errs = [r.get(part) for r in rs if isinstance(r.get(part), str)]
        return None, (errs[0] if errs else "failed")

    cols = [("small", "rps", "req/s", "{:,.0f}", True), ("small", "p99_ms", "p99 ms", "{:.2f}", False),
            ("small", "cpu_us", "CPU µs/req", "{:.1f}", False),
            ("small", "connects", "upstream connects", "{:,.0f}", False),
            ("download", "mbps", "download MB/s", "{:,.0f}", True),
            ("download", "rss_growth", "RSS growth MiB", "{:.1f}", False),
            ("download", "cpu_s_per_gib", "download CPU s/GiB", "{:.2f}", False),
            ("upload", "mbps", "upload MB/s", "{:,.0f}", True),
            ("upload", "cpu_s_per_gib", "upload CPU s/GiB", "{:.2f}", False)]
    cols = [c for c in cols if c[0] in opts.parts]
    base = {(p, k): med(results.get("nano-dp", []), p, k)[0] for p, k, _, _, _ in cols}
    print(f"Proxy: each runtime serves apps/proxy.js on CPU {opts.server_cpu}; upstream "
          f"{up_desc} and the clients (wrk -t1 -c{opts.connections} -d{opts.duration} --latency "
          f"GET /small, 100 bytes; curl GET of {opts.download_mb} MiB; curl POST of "
          f"{opts.upload_mb} MiB) on CPU {opts.client_cpu}; medians of {opts.rounds} rounds; "
          f"MB/s = MiB/s\n")
    head = "| runtime | version | "
    sep = "|---|---|"
    for p, k, title, _, ratio in cols:
        head += f"{title} | " + ("vs nano-dp | " if ratio else "")
        sep += "---:|" + ("---:|" if ratio else "")
    print(head + "peak RSS MiB |")
    print(sep + "---:|")

    def row(name, version, rs, ratios=True):
        cells = []
        for p, k, _, f, ratio in cols:
            v, err = med(rs, p, k)
            cells.append(f.format(v) if v is not None else (f"error: {str(err)[:60]}" if k in ("rps", "mbps") else "-"))
            if ratio:
                cells.append(f"{v / base[(p, k)]:.2f}x" if ratios and v is not None and base.get((p, k)) else "")
        peaks = [r["peak_kib"] for r in rs if r.get("peak_kib")]
        peak = f"{statistics.median(peaks) / 1024:.1f}" if peaks else "-"
        print(f"| {name} | {version} | " + " | ".join(cells) + f" | {peak} |")

    for rt in found:
        row(rt.name, rt.version, results[rt.name])
    for name, why in missing:
        print(f"| {name} | unavailable: {why} |" + " |" * (len(cols) + sum(c[4] for c in cols) + 1))
    if direct:
        row("(upstream direct, no proxy)", up_desc, direct, ratios=False)

    # nano-dp against the faster of deno and bun, per figure (higher is better for nano-dp)
    peers = [n for n in ("deno", "bun") if results.get(n)]
    if results.get("nano-dp") and peers:
        print(f"\nnano-dp / faster of {' and '.join(peers)} (above 1: nano-dp ahead):\n")
        print("| figure | nano-dp | " + " | ".join(peers) + " | ratio |")
        print("|---|---:|" + "---:|" * len(peers) + "---:|")
        for p, k, title, f, _ in cols:
            if k in ("rss_growth", "connects"):
                continue  # a few MiB or none: a ratio of near-zero figures says nothing
            lower_better = k in ("p99_ms", "cpu_us", "rss_growth", "cpu_s_per_gib")
            n, _ = med(results["nano-dp"], p, k)
            vals = {q: med(results[q], p, k)[0] for q in peers}
            got = [v for v in vals.values() if v is not None]
            if n is None or not got:
                continue
            best = min(got) if lower_better else max(got)
            ratio = best / n if lower_better else n / best
            cells = " | ".join(f.format(vals[q]) if vals[q] is not None else "-" for q in peers)
            print(f"| {title} | {f.format(n)} | {cells} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
