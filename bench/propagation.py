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
  stores       nanocp on SQLite vs etcd (--stores sqlite,etcd1,etcd3,etcd3x2: etcdN = an N-member
               etcd cluster from tests/e2e/etcd_cluster.py, xR = R nanocp replicas on it), all
               in one run: --writes sequential admin PATCHes per store (no data plane yet, the
               stores in turns of 20) with etcd's calls and fsyncs per write from its /metrics;
               then --blocks rounds in which each store in turn gets --nodes (50) nano-dps (with
               replicas half list A,B, half B,A) and --changes/--blocks changes measured as in
               propagation, per-node times also split by the replica the node is on. Not part
               of `all`. bench/README.md; results/2026-12-07-cpstore.md.

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


_PORTS_GIVEN = set()


def free_port():
    """A loopback port free now, below the kernel's ephemeral range (32768-60999 by default:
    a port picked from it can be taken by an outgoing connection before the server binds it,
    which with a few hundred servers happens) and never handed out twice in a run."""
    import random
    for _ in range(1000):
        port = random.randint(20000, 32000)
        if port in _PORTS_GIVEN:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _PORTS_GIVEN.add(port)
        return port
    raise RuntimeError("no free loopback port in 20000-32000")


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


def stop_many(procs, sig=signal.SIGTERM):
    """Signal every process first, then reap them (SIGKILL after 15 s)."""
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
    for p in procs:
        stop(p, sig)


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
    """nanocp on loopback. store: None (SQLite in DIR/nanocp.db) or an etcd:// URL (--store; then
    DIR holds only the tokens, and replicas of one store share DIR: the same admin and node
    tokens; env: NANO_MASTER_KEY, the same for every replica)."""

    def __init__(self, bindir, workdir, store=None, data_dir=None, env=None, name="nanocp"):
        self.dir = data_dir or os.path.join(workdir, "cp")
        self.name = name
        self.http = free_port()
        self.rpc = free_port()
        self.pub = free_port()
        self.rep = free_port()
        argv = [os.path.join(bindir, "nanocp"), "--data-dir", self.dir,
                "--http", f"127.0.0.1:{self.http}", "--rpc", f"tcp://127.0.0.1:{self.rpc}",
                "--dataplane", f"tcp://127.0.0.1:{self.pub}",
                "--dataplane-rpc", f"tcp://127.0.0.1:{self.rep}"]
        if store:
            argv += ["--store", store]
        self.proc = start(argv, os.path.join(workdir, f"{name}.log"), env=env)
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
    """nano-dp --control-plane on cp, or on a list of nanocp replicas (cps: tried in that order,
    so the first is the one it uses while it is up)."""

    def __init__(self, bindir, workdir, cp, name, cps=None):
        cps = cps or [cp]
        self.port = free_port()
        self.status = free_port()
        self.name = name
        self.home = cps[0]
        self.proc = start([os.path.join(bindir, "nano-dp"), "--control-plane",
                           ",".join(f"tcp://127.0.0.1:{c.pub}" for c in cps),
                           "--control-plane-rpc", ",".join(f"tcp://127.0.0.1:{c.rep}" for c in cps),
                           "--node", name,
                           "--node-token-file", cps[0].node_token_file(), "--threads", "1",
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


# --- stores: SQLite vs etcd (1 and 3 members, 1 and 2 nanocp replicas), interleaved ----------

STORE_SPEC = re.compile(r"^(sqlite|etcd(\d+)(?:x(\d+))?)$")


def parse_stores(text):
    """'sqlite,etcd1,etcd3,etcd3x2' -> [(name, etcd members or 0, nanocp replicas)]."""
    out = []
    for name in [x.strip() for x in text.split(",") if x.strip()]:
        m = STORE_SPEC.match(name)
        if not m:
            raise SystemExit(f"--stores: {name!r}: sqlite, etcdN or etcdNxR (N members, R replicas)")
        out.append((name, int(m.group(2) or 0), int(m.group(3) or 1)))
    return out


class StoreSetup:
    """One store, its nanocp replica(s) and, later, its data planes."""

    def __init__(self, opts, workdir, name, members, replicas, etcd_cluster):
        self.name, self.members, self.replicas = name, members, replicas
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir)
        self.cluster = None
        self.nodes = []
        if members:
            # EtcdCluster: data dirs under tempfile.gettempdir() (a real disk here, see the
            # results), etcd's defaults otherwise (fsync of its WAL on every commit).
            self.cluster = etcd_cluster.EtcdCluster(members)
            self.store = self.cluster.url(prefix="/bench")
            shared = os.path.join(self.dir, "tokens")
            env = dict(os.environ, NANO_MASTER_KEY=opts.master_key)
            self.cps = [ControlPlane(opts.bin_dir, self.dir, store=self.store, data_dir=shared,
                                     env=env, name=f"nanocp-{chr(65 + r)}")
                        for r in range(replicas)]
        else:
            self.store = os.path.join(self.dir, "cp", "nanocp.db")
            self.cps = [ControlPlane(opts.bin_dir, self.dir)]
        self.write_ms = []      # part 1: sequential PATCHes, no data plane attached
        self.patch_ms = []      # part 2: the PATCH of each change, data planes attached
        self.fleet, self.rounds = [], []
        self.polled = []        # part 2: (node index, change index, ms) from polling
        self.sent = {}          # seq -> (wall time sent, index of the replica written to)
        self.counters = {}
        self.gen = 0
        self.applied = []       # (node index, seq, ms, on the replica written to), all blocks
        self.missing = 0
        self.part2, self.part2_s = {}, 0.0   # etcd's counters over part 2's changes

    def where(self):
        if not self.cluster:
            return f"SQLite {self.store}"
        return f"etcd {self.members} member(s) (data dirs in {self.cluster.dir}), {self.store}"

    def close(self):
        stop_many([d.proc for d in self.nodes] + [c.proc for c in self.cps])
        if self.cluster:
            self.cluster.close()


ETCD_METRIC = re.compile(r'^(grpc_server_handled_total\{[^}]*grpc_method="(\w+)"[^}]*\}|'
                         r'etcd_disk_wal_fsync_duration_seconds_(sum|count)|'
                         r'etcd_disk_backend_commit_duration_seconds_(sum|count)) (\S+)$')


def etcd_metrics(cluster):
    """Summed over the members: gRPC calls handled by method (the JSON gateway's calls are
    counted there), WAL fsyncs and backend commits (count and seconds)."""
    import urllib.request
    out = {}
    for i in range(cluster.n):
        with urllib.request.urlopen(f"http://{cluster.endpoint(i)}/metrics", timeout=5) as r:
            text = r.read().decode()
        for line in text.splitlines():
            m = ETCD_METRIC.match(line)
            if not m:
                continue
            if m.group(2):
                key = "call:" + m.group(2)
            elif m.group(3):
                key = "fsync_" + m.group(3)
            else:
                key = "commit_" + m.group(4)
            out[key] = out.get(key, 0.0) + float(m.group(5))
    return out


def metrics_delta(a, b):
    return {k: b.get(k, 0.0) - a.get(k, 0.0) for k in set(a) | set(b)}



def applied_by_node(setup):
    """{(node index, seq): ms from the PATCH's send to the node's cpclient.delta_applied line}."""
    import calendar
    out = {}
    for k, d in enumerate(setup.nodes):
        with open(d.proc.log_path, errors="replace") as f:
            for line in f:
                m = LOG_TIME.match(line)
                if not m:
                    continue
                t = calendar.timegm(time.strptime(m.group(1)[:19], "%Y-%m-%dT%H:%M:%S")) + \
                    int(m.group(1)[20:23]) / 1000.0
                for seq in range(int(m.group(2)), int(m.group(3)) + 1):
                    if seq in setup.sent and (k, seq) not in out:
                        out[(k, seq)] = (t - setup.sent[seq][0]) * 1000
    return out


def one_change(s, i, timeout=30.0):
    """Change i on setup s: PATCH on replica i % R, then poll every node until it serves it."""
    s.gen += 1
    want = f"{s.gen} "
    target = i % len(s.cps)
    cp = s.cps[target]
    pending = list(range(len(s.nodes)))
    s.sent[s.base_seq + len(s.sent) + 1] = (time.time(), target)
    t0 = time.perf_counter()
    cp.ok("PATCH", "/v1/apps/prop/env", {"GEN": str(s.gen)})
    t_poll = time.perf_counter()
    s.patch_ms.append((t_poll - t0) * 1000)
    n_rounds = 0
    while pending:
        n_rounds += 1
        still = []
        for k in pending:
            d = s.nodes[k]
            status, body = d.get("prop.test")
            if status == 200 and body.startswith(want):
                s.polled.append((k, i, (time.perf_counter() - t0) * 1000,
                                 s.nodes[k].home is cp))
                count = int(body.split()[1])
                if count <= s.counters[k]:
                    raise RuntimeError(f"{s.name} {d.name}: module counter {s.counters[k]} -> "
                                       f"{count}: isolate recreated")
                s.counters[k] = count
            else:
                still.append(k)
        pending = still
        if pending and time.perf_counter() - t0 > timeout:
            names = ", ".join(s.nodes[k].name for k in pending[:5])
            raise RuntimeError(f"{s.name}: change {i + 1} (GEN={s.gen}, written on "
                               f"{cp.name}): {len(pending)} node(s) never served it within "
                               f"{timeout:.0f} s ({names}...)")
    now = time.perf_counter()
    s.fleet.append((now - t0) * 1000)
    s.rounds.append((now - t_poll) * 1000 / n_rounds)  # polling starts when the PATCH returns


def run_block(opts, s, b, n_changes):
    t0 = time.monotonic()
    s.nodes = []
    s.counters = {}
    for k in range(opts.nodes[0]):
        order = s.cps if k % 2 == 0 else s.cps[::-1]
        s.nodes.append(DataPlane(opts.bin_dir, s.dir, None, f"{s.name}-b{b}-dp-{k}", cps=order))
    for k, d in enumerate(s.nodes):
        for attempt in range(3):
            try:
                wait_for(f"{d.name} /readyz", d.ready, timeout=20, proc=d.proc)
                break
            except RuntimeError:
                with open(d.proc.log_path, errors="replace") as f:
                    if "address already in use" not in f.read() or attempt == 2:
                        raise
                log(f"{d.name}: a port was taken before it bound it: started again")
                stop(d.proc, signal.SIGKILL)
                os.rename(d.proc.log_path, d.proc.log_path + f".taken{attempt}")
                d = s.nodes[k] = DataPlane(opts.bin_dir, s.dir, None, d.name,
                                           cps=[d.home] + [c for c in s.cps if c is not d.home])
    for k, d in enumerate(s.nodes):
        want = f"{s.gen} "
        wait_for(f"{d.name} serving GEN={s.gen}",
                 lambda d=d: d.get("prop.test")[1].startswith(want), timeout=60, proc=d.proc)
        s.counters[k] = int(d.get("prop.test")[1].split()[1])
    log(f"{s.name}: {len(s.nodes)} data planes serving in {time.monotonic() - t0:.1f} s")
    time.sleep(1.5)  # the nodes' first status reports written
    s.base_seq = s.cps[0].ok("GET", "/v1/version")["config_seq"]
    s.sent = {}
    first = len(s.fleet)
    m0 = etcd_metrics(s.cluster) if s.cluster else None
    t0 = time.monotonic()
    for i in range(n_changes):
        one_change(s, first + i)
    if s.cluster:
        s.part2_s += time.monotonic() - t0
        for k, v in metrics_delta(m0, etcd_metrics(s.cluster)).items():
            s.part2[k] = s.part2.get(k, 0.0) + v
    seq = s.cps[0].ok("GET", "/v1/version")["config_seq"]
    if seq != s.base_seq + n_changes:
        raise RuntimeError(f"{s.name}: config seq {seq}, expected {s.base_seq + n_changes}: a "
                           f"PATCH made more or fewer than one config-log entry")
    stop_many([d.proc for d in s.nodes])
    got = applied_by_node(s)
    for (k, seq), ms in got.items():
        s.applied.append((k, seq, ms, s.nodes[k].home is s.cps[s.sent[seq][1]]))
    s.missing += len(s.nodes) * len(s.sent) - len(got)
    s.nodes = []


def stats_row(values, fmt="{:.1f}"):
    if not values:
        return "- | - | - | -"
    return " | ".join(fmt.format(v) for v in (pct(values, 50), pct(values, 90), pct(values, 99),
                                                max(values)))


def bench_stores(opts, workdir):
    sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
    import etcd_cluster
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    specs = parse_stores(opts.stores)
    notes = []
    if etcd_cluster.etcd_binary() is None and any(m for _, m, _ in specs):
        notes.append("etcd is not installed (etcd-server; $NANO_ETCD): only SQLite measured")
        specs = [x for x in specs if not x[1]]
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(HERE, "apps", "propagation.js")) as f:
        source = f.read()
    setups = []
    t_start = time.monotonic()
    try:
        for name, members, replicas in specs:
            log(f"{name}: starting the store and {replicas} nanocp")
            s = StoreSetup(opts, workdir, name, members, replicas, etcd_cluster)
            setups.append(s)
            deploy(s.cps[0], "prop", "prop.test", source, {"GEN": "0"})
            deploy(s.cps[0], "adm", "adm.test", source, {"W": "0"})
        # Part 1: sequential admin writes, no data plane yet; the stores take turns in chunks
        # (the order reversed every other turn), after a few unmeasured writes each.
        for s in setups:
            for w in range(5):
                s.cps[0].ok("PATCH", "/v1/apps/adm/env", {"W": f"warm{w}"})
        # etcd's own counters: 2 s idle first (the replicas' heartbeat work), then part 1.
        etcds = [s for s in setups if s.cluster]
        m0 = {s.name: etcd_metrics(s.cluster) for s in etcds}
        time.sleep(2.0)
        m1 = {s.name: etcd_metrics(s.cluster) for s in etcds}
        t_idle = 2.0
        t_part1 = time.monotonic()
        chunk = 20
        turns = max(1, (opts.writes + chunk - 1) // chunk)
        for t in range(turns):
            for s in (setups if t % 2 == 0 else setups[::-1]):
                for j in range(chunk):
                    cp = s.cps[j % len(s.cps)]
                    t0 = time.perf_counter()
                    cp.ok("PATCH", "/v1/apps/adm/env", {"W": f"{t}-{j}"})
                    s.write_ms.append((time.perf_counter() - t0) * 1000)
            if (t + 1) % 5 == 0 or t + 1 == turns:
                log(f"admin writes: {(t + 1) * chunk}/{turns * chunk} per store; p50 " +
                    ", ".join(f"{s.name} {statistics.median(s.write_ms):.1f}" for s in setups) +
                    " ms")
        t_part1 = time.monotonic() - t_part1
        m2 = {s.name: etcd_metrics(s.cluster) for s in etcds}
        for s in etcds:
            s.idle = {k: v / t_idle for k, v in metrics_delta(m0[s.name], m1[s.name]).items()}
            s.part1 = metrics_delta(m1[s.name], m2[s.name])
            s.part1_s = t_part1
        # Part 2, in --blocks rounds: each store in turn (reversed every other round) gets its
        # data planes (with 2 replicas half list A,B and half B,A), changes --changes/--blocks
        # times, and stops them. One store's fleet at a time: 200 idle nano-dps would need
        # more than the 2 CPUs (each ~1.5% of a CPU idle).
        per_block = max(1, opts.changes // opts.blocks)
        done = 0
        for b in range(opts.blocks):
            for s in (setups if b % 2 == 0 else setups[::-1]):
                run_block(opts, s, b, per_block)
                log(f"block {b + 1}/{opts.blocks} {s.name}: {len(s.fleet)} changes, fleet p50 "
                    f"{statistics.median(s.fleet):.0f} ms, max {max(s.fleet):.0f} ms "
                    f"({time.monotonic() - t_start:.0f} s so far)")
            done += per_block
        report_stores(opts, setups, notes, time.monotonic() - t_start)
    finally:
        for s in setups:
            try:
                s.close()
            except Exception:  # noqa: BLE001  (best effort on the way out)
                pass


def report_stores(opts, setups, notes, elapsed):
    n = opts.nodes[0]
    print(f"\n## nanocp store backends: admin writes and propagation to {n} data planes\n")
    for note in notes:
        print(f"Note: {note}.\n")
    print(f"Stores (one run, {elapsed:.0f} s):\n")
    for s in setups:
        print(f"- `{s.name}`: {s.where()}; {len(s.cps)} nanocp")
    print(f"\n### Admin write latency: PATCH /v1/apps/adm/env on the HTTP admin API, sequential, "
          f"keep-alive, no data plane attached; {opts.writes} per store in turns of 20 (with 2 "
          f"replicas: alternating between them), ms\n")
    print("| store | nanocp | writes | p50 | p90 | p99 | max |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for s in setups:
        print(f"| {s.name} | {len(s.cps)} | {len(s.write_ms)} | {stats_row(s.write_ms)} |")
    print(f"\n### The same PATCH during part 2: {n} data planes attached, one change at a time "
          f"(each admin call first writes the status reports the nodes sent since the last "
          f"one: here the {n} nodes' reports of the previous change), ms\n")
    print("| store | nanocp | writes | p50 | p90 | p99 | max |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for s in setups:
        print(f"| {s.name} | {len(s.cps)} | {len(s.patch_ms)} | {stats_row(s.patch_ms)} |")
    print(f"\n### Until every one of {n} data planes serves the change (PATCH sent -> GET / "
          f"shows it, polled round robin over the nodes not yet showing it), {opts.changes} "
          f"changes per store in {opts.blocks} blocks (each store in turn, its own {n} "
          f"nano-dps started for the block; the order reversed every other block), ms\n")
    print("| store | nanocp | per-node p50 | per-node p99 | fleet p50 | fleet p90 | fleet p99 | "
          "fleet max | poll round |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in setups:  # poll round: the median time of one round of GETs after the PATCH returned
        node_ms = [x[2] for x in s.polled]
        print(f"| {s.name} | {len(s.cps)} | {pct(node_ms, 50):.1f} | {pct(node_ms, 99):.1f} | "
              f"{pct(s.fleet, 50):.1f} | {pct(s.fleet, 90):.1f} | {pct(s.fleet, 99):.1f} | "
              f"{max(s.fleet):.1f} | {statistics.median(s.rounds):.2f} |")
    print("\nFrom the nodes' logs, without polling: PATCH sent -> the node's "
          "cpclient.delta_applied line (log times cut to whole ms), ms\n")
    print("| store | nanocp | per-node p50 | per-node p99 | fleet p50 | fleet p90 | fleet p99 | "
          "fleet max | missing |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    split = []
    for s in setups:
        fleet = {}
        for k, seq, ms, _ in s.applied:
            fleet[seq] = max(fleet.get(seq, ms), ms)
        node_ms = [x[2] for x in s.applied]
        f = list(fleet.values())
        print(f"| {s.name} | {len(s.cps)} | {pct(node_ms, 50):.1f} | {pct(node_ms, 99):.1f} | "
              f"{pct(f, 50):.1f} | {pct(f, 90):.1f} | {pct(f, 99):.1f} | {max(f):.1f} | "
              f"{s.missing} |")
        if len(s.cps) > 1:
            split.append((s, [x[2] for x in s.applied if x[3]],
                          [x[2] for x in s.applied if not x[3]]))
    etcds = [s for s in setups if s.cluster]
    if etcds:
        print(f"\n### etcd's side of part 1 (from its /metrics, summed over the members): calls "
              f"and fsyncs per admin write, after subtracting the idle rate (measured over 2 s "
              f"before: the replicas' heartbeats); WAL fsyncs are counted on every member\n")
        methods = sorted({k[5:] for s in etcds for k in s.part1 if k.startswith("call:")
                          and s.part1[k] > 0})
        print("| store | " + " | ".join(f"{m} / write" for m in methods) +
              " | WAL fsyncs / write | mean WAL fsync ms | mean backend commit ms | idle calls/s |")
        print("|---|" + "---:|" * (len(methods) + 4))
        for s in etcds:
            w = len(s.write_ms)
            net = {k: s.part1[k] - s.idle.get(k, 0.0) * s.part1_s for k in s.part1}
            fs = s.part1.get("fsync_count", 0.0)
            cm = s.part1.get("commit_count", 0.0)
            idle_calls = sum(v for k, v in s.idle.items() if k.startswith("call:"))
            print(f"| {s.name} | " + " | ".join(f"{net.get('call:' + m, 0.0) / w:.2f}"
                                              for m in methods) +
                  f" | {net.get('fsync_count', 0.0) / w:.2f} | "
                  f"{(s.part1.get('fsync_sum', 0.0) / fs * 1000) if fs else 0:.2f} | "
                  f"{(s.part1.get('commit_sum', 0.0) / cm * 1000) if cm else 0:.2f} | "
                  f"{idle_calls:.1f} |")
    if etcds:
        print(f"\n### etcd's side of part 2 (the same counters over the changes with "
              f"{n} data planes attached; nothing subtracted: the heartbeat ticks' status "
              f"writes are part of it), per change\n")
        methods = sorted({k[5:] for s in etcds for k in s.part2 if k.startswith("call:")
                          and s.part2[k] > 0})
        print("| store | " + " | ".join(f"{m} / change" for m in methods) +
              " | WAL fsyncs / change | mean WAL fsync ms | seconds |")
        print("|---|" + "---:|" * (len(methods) + 3))
        for s in etcds:
            c = len(s.fleet)
            fs = s.part2.get("fsync_count", 0.0)
            print(f"| {s.name} | " + " | ".join(f"{s.part2.get('call:' + m, 0.0) / c:.1f}"
                                              for m in methods) +
                  f" | {fs / c:.1f} | {(s.part2.get('fsync_sum', 0.0) / fs * 1000) if fs else 0:.2f}"
                  f" | {s.part2_s:.0f} |")
    if split:
        print(f"\n### 2 nanocp replicas: per-node latency by where the node is connected (half "
              f"the nodes list A,B, half B,A; change i written on replica i mod 2), from the "
              f"nodes' logs, ms\n")
        print("| store | nodes on | samples | p50 | p90 | p99 | max |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for s, same, other in split:
            print(f"| {s.name} | the replica written to | {len(same)} | {stats_row(same)} |")
            print(f"| {s.name} | the other replica | {len(other)} | {stats_row(other)} |")
        for s, _, _ in split:
            same = [x[2] for x in s.polled if x[3]]
            other = [x[2] for x in s.polled if not x[3]]
            print(f"\nPolled, {s.name}: nodes on the replica written to p50 {pct(same, 50):.1f} "
                  f"p99 {pct(same, 99):.1f}; on the other p50 {pct(other, 50):.1f} p99 "
                  f"{pct(other, 99):.1f} max {max(other):.1f} ms")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", nargs="?", default="all",
                    choices=["propagation", "snapshot", "all", "stores"])
    ap.add_argument("--nodes", default=None,
                    help="data-plane counts (default 1,2,50; stores: one count, default 50)")
    ap.add_argument("--changes", type=int, default=None,
                    help="changes per row (default 200; stores: per store, default 40)")
    ap.add_argument("--stores", default=None,
                    help="stores: sqlite, etcdN (N members), etcdNxR (R nanocp replicas); default "
                         "sqlite,etcd1,etcd3,etcd3x2 (sqlite alone without an etcd binary)")
    ap.add_argument("--blocks", type=int, default=2,
                    help="stores: rounds of part 2; each store gets a fresh set of data planes "
                         "per round (default 2)")
    ap.add_argument("--writes", type=int, default=200,
                    help="stores: sequential admin writes per store (default 200)")
    ap.add_argument("--driver", default="http", choices=["http", "nanoctl"],
                    help="how changes are made: the HTTP admin API (default) or one nanoctl "
                         "process per change")
    ap.add_argument("--apps", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3, help="snapshot rounds")
    ap.add_argument("--bin-dir", default=os.path.join(ROOT, "build", "bin"))
    opts = ap.parse_args()
    stores = opts.what == "stores"
    opts.nodes = [int(x) for x in (opts.nodes or ("50" if stores else "1,2,50")).split(",") if x]
    if opts.changes is None:
        opts.changes = 40 if stores else 200
    opts.stores = opts.stores or "sqlite,etcd1,etcd3,etcd3x2"
    opts.master_key = os.urandom(32).hex()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    workdir = tempfile.mkdtemp(prefix="nano-prop-")
    try:
        if opts.what in ("propagation", "all"):
            bench_propagation(opts, os.path.join(workdir, "p"))
        if opts.what in ("snapshot", "all"):
            bench_snapshot(opts, os.path.join(workdir, "s"))
        if opts.what == "stores":
            bench_stores(opts, os.path.join(workdir, "st"))
    finally:
        stop_all()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
