#!/usr/bin/env python3
"""bench/propagation.py: how fast a config change made on nanocp is served by the data planes.

  propagation  one nanocp and N nano-dps (--nodes, default 1,2,50) serving apps/propagation.js;
               --changes times (default 200): PATCH /v1/apps/prop/env {"GEN": "<i>"} on the
               HTTP admin API, then GET / on every node (keep-alive, round robin over the
               nodes not yet showing it) until each answers with GEN == i. Per change: the
               time until each node served it (per-node latency) and until the last one did
               (fleet latency), both measured from just before the PATCH is sent (so the
               admin call's own commit is included). Reported as p50/p99/max, with the
               polling resolution (one round over the nodes) beside them: with 50 nodes a
               round of GETs is itself a few ms, so the 50-node figures are upper bounds.
               The module-level counter is checked to grow: no isolate was recreated.
  snapshot     nanocp with --apps apps (default 1000), each with a hostname, a deployed
               module and two vars; then a fresh nano-dp is started (--rounds times): time from
               its start to /readyz 200 (hello + snapshot + code fetches + apply), and the
               snapshot's size and timings as nano-dp logs them (cpclient.snapshot_applied bytes=,
               fetch_ms=, ms=).
  all          both.

Markdown tables on stdout, progress on stderr. Everything started here is stopped on the way
out. Python standard library only. Binaries from build/bin (--bin-dir).
"""
import argparse
import http.client
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

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
STARTED = []


def log(msg):
    print(f"propagation: {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv, log_path, env=None):
    with open(log_path, "wb") as out:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             start_new_session=True, env=env)
    p.t0 = time.monotonic()
    p.log_path = log_path
    STARTED.append(p)
    return p


def stop(p, sig=signal.SIGKILL):
    if p.poll() is None:
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)
    if p in STARTED:
        STARTED.remove(p)


def stop_all():
    for p in list(STARTED):
        try:
            stop(p)
        except Exception:  # noqa: BLE001  (best effort on the way out)
            pass


def pct(values, q):
    s = sorted(values)
    if not s:
        return float("nan")
    k = max(0, min(len(s) - 1, int(round(q / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def wait_for(what, fn, timeout=30.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}; see {proc.log_path}")
        try:
            v = fn()
            if v:
                return v
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{what}: not within {timeout:.0f} s")


class ControlPlane:
    def __init__(self, bindir, workdir):
        self.dir = os.path.join(workdir, "cp")
        self.http = free_port()
        self.rpc = free_port()
        self.pub = free_port()
        self.rep = free_port()
        self.proc = start([os.path.join(bindir, "nanocp"), "--data-dir", self.dir,
                           "--http", f"127.0.0.1:{self.http}", "--rpc", f"tcp://127.0.0.1:{self.rpc}",
                           "--dataplane", f"tcp://127.0.0.1:{self.pub}",
                           "--dataplane-rpc", f"tcp://127.0.0.1:{self.rep}"],
                          os.path.join(workdir, "nanocp.log"))
        wait_for("nanocp admin token", lambda: os.path.exists(os.path.join(self.dir, "admin.token")),
                 proc=self.proc)
        self.token = wait_for("nanocp token", self._token, proc=self.proc)
        wait_for("nanocp /healthz", lambda: self.call("GET", "/healthz")[0] == 200, proc=self.proc)
        self.conn = None

    def _token(self):
        with open(os.path.join(self.dir, "admin.token")) as f:
            return f.read().strip()

    def node_token_file(self):
        return os.path.join(self.dir, "node.token")

    def call(self, method, path, body=None, raw=None, ctype="application/json"):
        """One admin call on a kept-alive connection; returns (status, parsed JSON or None)."""
        for attempt in (1, 2):
            if self.__dict__.get("conn") is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.http, timeout=30)
            data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
            headers = {"Authorization": f"Bearer {self.token}"}
            if data is not None:
                headers["Content-Type"] = ctype
            try:
                self.conn.request(method, path, body=data, headers=headers)
                r = self.conn.getresponse()
                text = r.read()
                return r.status, (json.loads(text) if text else None)
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise

    def ok(self, method, path, body=None, **kw):
        status, res = self.call(method, path, body, **kw)
        if status >= 300:
            raise RuntimeError(f"{method} {path}: {status} {res}")
        return res


class DataPlane:
    def __init__(self, bindir, workdir, cp, name):
        self.port = free_port()
        self.status = free_port()
        self.name = name
        self.proc = start([os.path.join(bindir, "nano-dp"), "--control-plane", f"tcp://127.0.0.1:{cp.pub}",
                           "--control-plane-rpc", f"tcp://127.0.0.1:{cp.rep}", "--node", name,
                           "--node-token-file", cp.node_token_file(), "--threads", "1",
                           "--listen", f"127.0.0.1:{self.port}",
                           "--status-listen", f"127.0.0.1:{self.status}", "--access-log", "off"],
                          os.path.join(workdir, f"{name}.log"))
        self.conn = None

    def ready(self):
        c = http.client.HTTPConnection("127.0.0.1", self.status, timeout=5)
        try:
            c.request("GET", "/readyz")
            return c.getresponse().status == 200
        finally:
            c.close()

    def get(self, host):
        """GET / for host on a kept-alive connection: (status, body text)."""
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                self.conn.request("GET", "/", headers={"Host": host})
                r = self.conn.getresponse()
                return r.status, r.read().decode()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise


LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z info cpclient\.delta_applied "
                      r"first=(\d+) seq=(\d+)")


def applied_latencies(nodes, sent_at):
    """Per node and change: its cpclient.delta_applied log time - the PATCH's send time (ms); and per
    change the slowest node. Every change must appear in every node's log."""
    import calendar
    per_node, by_seq = [], {}
    for d in nodes:
        seen = set()
        with open(d.proc.log_path, errors="replace") as f:
            for line in f:
                m = LOG_TIME.match(line)
                if not m:
                    continue
                t = calendar.timegm(time.strptime(m.group(1)[:19], "%Y-%m-%dT%H:%M:%S")) + \
                    int(m.group(1)[20:23]) / 1000.0
                for seq in range(int(m.group(2)), int(m.group(3)) + 1):
                    if seq in sent_at and seq not in seen:
                        seen.add(seq)
                        ms = (t - sent_at[seq]) * 1000
                        per_node.append(ms)
                        by_seq[seq] = max(by_seq.get(seq, ms), ms)
        if len(seen) != len(sent_at):
            raise RuntimeError(f"{d.name}: {len(sent_at) - len(seen)} change(s) missing from its "
                               f"log as cpclient.delta_applied (resynced instead?)")
    return per_node, list(by_seq.values())


def deploy(cp, app, host, source, vars_):
    cp.ok("POST", "/v1/apps", {"name": app, "hostnames": [host]})
    if vars_:
        cp.ok("PATCH", f"/v1/apps/{app}/env", vars_)
    cp.ok("PUT", f"/v1/apps/{app}/code", raw=source.encode(), ctype="application/javascript")


def bench_propagation(opts, workdir):
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(HERE, "apps", "propagation.js")) as f:
        source = f.read()
    cp = ControlPlane(opts.bin_dir, workdir)
    deploy(cp, "prop", "prop.test", source, {"GEN": "0"})
    rows = []
    gen = 0
    for n in opts.nodes:
        log(f"{n} data plane(s): starting")
        nodes = [DataPlane(opts.bin_dir, workdir, cp, f"dp-{n}-{i}") for i in range(n)]
        for d in nodes:
            wait_for(f"{d.name} /readyz", d.ready, timeout=60, proc=d.proc)
        for d in nodes:
            wait_for(f"{d.name} serving GEN={gen}",
                     lambda d=d: d.get("prop.test")[1].startswith(f"{gen} "), timeout=60,
                     proc=d.proc)
        counters = {d.name: 0 for d in nodes}
        per_node, fleet, rounds, ctl_ms = [], [], [], []
        sent_at = {}  # config seq -> wall time the PATCH making it was sent
        base_seq = cp.ok("GET", "/v1/version")["config_seq"]
        for i in range(opts.changes):
            gen += 1
            want = f"{gen} "
            pending = list(nodes)
            sent_at[base_seq + i + 1] = time.time()
            t0 = time.perf_counter()
            if opts.driver == "nanoctl":
                # The operator's way: one nanoctl process per change, start to exit timed.
                p = subprocess.run([os.path.join(opts.bin_dir, "nanoctl"), "--cp",
                                    f"tcp://127.0.0.1:{cp.rpc}", "--token-file",
                                    os.path.join(cp.dir, "admin.token"), "env", "set", "prop",
                                    f"GEN={gen}"], capture_output=True, text=True, timeout=30)
                ctl_ms.append((time.perf_counter() - t0) * 1000)
                if p.returncode != 0:
                    raise RuntimeError(f"nanoctl env set: {p.returncode} {p.stderr}")
            else:
                cp.ok("PATCH", "/v1/apps/prop/env", {"GEN": str(gen)})
            n_rounds = 0
            deadline = t0 + 30
            while pending:
                n_rounds += 1
                still = []
                for d in pending:
                    status, body = d.get("prop.test")
                    if status == 200 and body.startswith(want):
                        per_node.append((time.perf_counter() - t0) * 1000)
                        count = int(body.split()[1])
                        if count <= counters[d.name]:
                            raise RuntimeError(f"{d.name}: the module counter went from "
                                               f"{counters[d.name]} to {count}: isolate recreated")
                        counters[d.name] = count
                    else:
                        still.append(d)
                pending = still
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"change {gen}: {len(pending)} node(s) never served it")
            elapsed = (time.perf_counter() - t0) * 1000
            fleet.append(elapsed)
            rounds.append(elapsed / n_rounds)
            if (i + 1) % 50 == 0:
                log(f"{n} node(s): {i + 1}/{opts.changes} changes, fleet p50 "
                    f"{statistics.median(fleet):.2f} ms")
        if cp.ok("GET", "/v1/version")["config_seq"] != base_seq + opts.changes:
            raise RuntimeError("a PATCH made more or fewer than one config-log entry")
        for d in nodes:
            stop(d.proc, signal.SIGTERM)
        applied = applied_latencies(nodes, sent_at)
        rows.append((n, per_node, fleet, rounds, applied, ctl_ms))
    stop(cp.proc, signal.SIGTERM)
    how = ("`nanoctl env set prop GEN=N` (one process per change, over tcp://)"
           if opts.driver == "nanoctl" else "PATCH /v1/apps/prop/env on the HTTP admin API")
    print(f"\nPropagation of an env change ({how} -> GET / shows it), {opts.changes} changes "
          f"per row, ms\n")
    print("| data planes | per-node p50 | per-node p99 | fleet p50 | fleet p99 | fleet max | "
          "poll round |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n, per_node, fleet, rounds, _, _ in rows:
        print(f"| {n} | {pct(per_node, 50):.2f} | {pct(per_node, 99):.2f} | {pct(fleet, 50):.2f} | "
              f"{pct(fleet, 99):.2f} | {max(fleet):.2f} | {statistics.median(rounds):.2f} |")
    print("\nThe same changes from the nodes' logs, without polling: PATCH sent -> the node's "
          "cpclient.delta_applied line (the new config handed to its workers, which take it at their "
          "next loop turn); log times are cut to whole ms (so up to 1 ms early), ms\n")
    print("| data planes | per-node p50 | per-node p99 | fleet p50 | fleet p99 | fleet max |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n, _, _, _, (node_ms, fleet_ms), _ in rows:
        print(f"| {n} | {pct(node_ms, 50):.1f} | {pct(node_ms, 99):.1f} | {pct(fleet_ms, 50):.1f} | "
              f"{pct(fleet_ms, 99):.1f} | {max(fleet_ms):.1f} |")
    if opts.driver == "nanoctl":
        print("\nnanoctl env set, process start to exit (its call returns once nanocp committed "
              "and published the change), ms\n")
        print("| data planes | calls | p50 | p90 | p99 | max |")
        print("|---:|---:|---:|---:|---:|---:|")
        for n, _, _, _, _, ctl_ms in rows:
            print(f"| {n} | {len(ctl_ms)} | {pct(ctl_ms, 50):.1f} | {pct(ctl_ms, 90):.1f} | "
                  f"{pct(ctl_ms, 99):.1f} | {max(ctl_ms):.1f} |")


def bench_snapshot(opts, workdir):
    os.makedirs(workdir, exist_ok=True)
    cp = ControlPlane(opts.bin_dir, workdir)
    t0 = time.monotonic()
    for i in range(opts.apps):
        src = f"export default {{ fetch(r, env) {{ return new Response('app {i} ' + env.A); }} }};\n"
        deploy(cp, f"app-{i}", f"app-{i}.test", src, {"A": f"value-{i}", "B": {"n": i, "on": True}})
        if (i + 1) % 200 == 0:
            log(f"snapshot: {i + 1}/{opts.apps} apps created")
    log(f"snapshot: {opts.apps} apps created in {time.monotonic() - t0:.1f} s")
    results = []
    for r in range(opts.rounds):
        d = DataPlane(opts.bin_dir, workdir, cp, f"snap-{r}")
        wait_for(f"{d.name} /readyz", d.ready, timeout=120, proc=d.proc)
        ready_ms = (time.monotonic() - d.proc.t0) * 1000
        status, body = d.get(f"app-{opts.apps - 1}.test")
        if status != 200 or not body.startswith(f"app {opts.apps - 1} value-"):
            raise RuntimeError(f"{d.name}: unexpected answer {status} {body!r}")
        with open(d.proc.log_path, errors="replace") as f:
            text = f.read()
        m = re.search(r"cpclient\.snapshot_applied[^\n]*", text)
        fields = dict(re.findall(r"(\w+)=(\S+)", m.group(0))) if m else {}
        results.append((ready_ms, fields))
        log(f"snapshot round {r + 1}: ready in {ready_ms:.0f} ms; {fields}")
        stop(d.proc, signal.SIGTERM)
    stop(cp.proc, signal.SIGTERM)
    print(f"\nA fresh nano-dp joining a control plane with {opts.apps} apps (each: hostname, one "
          f"module, 2 vars); medians of {opts.rounds} rounds. From nano-dp's cpclient.snapshot_applied: "
          f"fetch = request + nanocp building the snapshot + transfer + decode; apply = app model, "
          f"fetching every module (cold code cache) and building the config\n")
    print("| apps | snapshot bytes | fetch ms | apply ms | snapshot total ms | start -> /readyz 200 ms |")
    print("|---:|---:|---:|---:|---:|---:|")
    med = lambda k: statistics.median(float(f[k]) for _, f in results)
    print(f"| {opts.apps} | {med('bytes'):,.0f} | {med('fetch_ms'):.0f} | "
          f"{med('ms') - med('fetch_ms'):.0f} | {med('ms'):.0f} | "
          f"{statistics.median(r for r, _ in results):.0f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", nargs="?", default="all", choices=["propagation", "snapshot", "all"])
    ap.add_argument("--nodes", default="1,2,50", help="data-plane counts (default 1,2,50)")
    ap.add_argument("--changes", type=int, default=200)
    ap.add_argument("--driver", default="http", choices=["http", "nanoctl"],
                    help="how changes are made: the HTTP admin API (default) or one nanoctl "
                         "process per change")
    ap.add_argument("--apps", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3, help="snapshot rounds")
    ap.add_argument("--bin-dir", default=os.path.join(ROOT, "build", "bin"))
    opts = ap.parse_args()
    opts.nodes = [int(x) for x in opts.nodes.split(",") if x]
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    workdir = tempfile.mkdtemp(prefix="nano-prop-")
    try:
        if opts.what in ("propagation", "all"):
            bench_propagation(opts, os.path.join(workdir, "p"))
        if opts.what in ("snapshot", "all"):
            bench_snapshot(opts, os.path.join(workdir, "s"))
    finally:
        stop_all()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
