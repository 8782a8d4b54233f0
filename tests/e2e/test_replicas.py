#!/usr/bin/env python3
"""nanocp replicas on one etcd store (docs/nanocp.md, "Store backends"), end to end: a real
3-member etcd cluster on loopback (tests/e2e/etcd_cluster.py), two nanocp with --store on it,
nano-dps given both addresses (--control-plane A,B) and nanoctl given both (--cp A,B).

- a change made through either replica is seen through the other, and nodes on either serve it;
- under a stream of env changes, the etcd leader is SIGKILLed and then a replica: every
  acknowledged change is there afterwards, none was applied twice (the audit log has each name
  once), and every node serves the last value within 5 s of it;
- a replica SIGSTOPped for 10 s while the other takes changes comes back without a split
  brain: what it reads and writes next builds on the other's changes, and its nodes follow;
- the fleet's duties (the drains' clock) move to the other replica when the one holding the
  lease is killed: `apps rm` still finishes;
- etcds://: nanocp verifies etcd's certificate and presents a client certificate; without
  either the store is refused with one line.

Skipped (exit 77) when there is no etcd binary."""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import nanotest
from nanotest import TIMEOUT, ControlPlane, DataPlane, app_js, check, eq, expect, run, scratch_dir

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import etcd_cluster  # noqa: E402

LAST_APP = """
export default {
  fetch(request, env) {
    return new Response(String(env.LAST ?? "unset"));
  },
};
"""


class Replica(ControlPlane):
    """nanocp --store URL. Every replica of a store needs the same master key (NANO_MASTER_KEY,
    set once for this process) and the same admin and node tokens: here they share one data
    dir, which holds nothing else with --store."""

    def __init__(self, store, shared_dir):
        super().__init__(data_dir=shared_dir, args=["--store", store])

    @property
    def url(self):
        """The data planes' PUB URL (--control-plane)."""
        return self.dataplane_urls()[0]

    @property
    def rpc_url(self):
        return f"tcp://127.0.0.1:{self.rpc_port}"


    def patch_env(self, body):
        """PATCH the env of app 'last' over HTTP: the status, or None when no answer came."""
        try:
            status, _, _ = self.http("PATCH", "/v1/apps/last/env", body)
            return status
        except OSError:
            return None


def replicas(cluster, prefix, n=2):
    shared = scratch_dir()
    store = cluster.url(prefix=prefix)
    out = []
    for _ in range(n):
        out.append(Replica(store, shared).start())
    return out


def node(first, others, name):
    """A nano-dp given every replica, first the one it should use first."""
    order = [first, *others]
    dp = DataPlane(first, name, extra=["--control-plane-rpc",
                                       ",".join(r.dataplane_urls()[1] for r in order)])
    dp.cp_url = ",".join(r.url for r in order)
    return dp.start()


def setup_app(r, *extra):
    r.ok("apps", "create", "last", "--host", "last.test", *extra)
    r.ok("apps", "deploy", "last", app_js(r, "last", LAST_APP))


def audit_names(r, op="env.patch"):
    """How many times each env name was set by op, over the whole audit log."""
    counts = {}
    before = None
    while True:
        args = ["audit", "--limit", "1000"] + (["--before", str(before)] if before else [])
        entries = r.ctl_json(*args)
        if isinstance(entries, dict):
            entries = entries.get("entries", [])
        if not entries:
            return counts
        for e in entries:
            if e.get("op") == op:
                for name in (e.get("detail") or {}).get("set", []):
                    counts[name] = counts.get(name, 0) + 1
        before = min(e["id"] for e in entries)


@check
def a_change_through_either_replica_is_seen_through_the_other():
    with etcd_cluster.EtcdCluster(3) as c:
        a, b = replicas(c, "/t1")
        setup_app(a)
        b.ok("env", "set", "last", "LAST=from-b")
        out = a.ok("env", "list", "last")
        expect("from-b" in out, out)
        out = b.ok("apps", "list")
        expect("last" in out and "last.test" in out, out)
        n1 = node(a, [b], "n1")
        n2 = node(b, [a], "n2")
        for dp in (n1, n2):
            dp.wait_body("last.test", "from-b")
        a.ok("env", "set", "last", "LAST=from-a")
        for dp in (n1, n2):
            dp.wait_body("last.test", "from-a", timeout=5)
        # nanoctl with both addresses: the first is down, the second answers.
        code, out, err = a.ctl("--cp", f"tcp://127.0.0.1:1,{b.rpc_url}", "apps", "list")
        eq(code, 0, err)
        # either replica lists both nodes (their reports share the store)
        def names(r):
            listed = r.ctl_json("nodes")
            listed = listed.get("nodes", []) if isinstance(listed, dict) else listed
            return {n["name"] for n in listed}
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and not {"n1", "n2"} <= names(a) & names(b):
            time.sleep(0.2)
        eq(sorted(names(a) & names(b)), ["n1", "n2"], "both nodes, through either replica")
        for dp in (n1, n2):
            dp.stop()
        a.stop()
        b.stop()


@check
def acknowledged_changes_survive_losing_the_etcd_leader_and_a_replica():
    with etcd_cluster.EtcdCluster(3) as c:
        a, b = replicas(c, "/t2")
        setup_app(a)
        n1 = node(a, [b], "n1")
        n2 = node(b, [a], "n2")
        for dp in (n1, n2):
            dp.wait_body("last.test", "unset")
        # One writer per replica, each its own names (A1, A2, ... and B1, B2, ...), LAST too;
        # each write also deletes the name set KEEP writes before (an app has at most 128
        # vars), so a name is set by exactly one write.
        results = {"a": [], "b": []}  # (i, status or None)
        stop = threading.Event()
        KEEP = 20

        def writer(tag, r):
            i = 0
            while not stop.is_set():
                i += 1
                name = f"{tag.upper()}{i}"
                body = {name: str(i), "LAST": name}
                if i > KEEP:
                    body[f"{tag.upper()}{i - KEEP}"] = None
                results[tag].append((i, r.patch_env(body)))
                if results[tag][-1][1] is None and r.proc.poll() is not None:
                    return  # this replica is gone
        threads = [threading.Thread(target=writer, args=(t, r)) for t, r in (("a", a), ("b", b))]
        for t in threads:
            t.start()
        try:
            time.sleep(1.5)
            c.kill(c.leader())
            time.sleep(1.5)
            a.proc.kill()  # in the middle of its writer's stream
            a.proc.wait(timeout=TIMEOUT)
            time.sleep(2)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=2 * TIMEOUT)
        ended = time.monotonic()
        acked = [f"{t.upper()}{i}" for t in results for i, st in results[t] if st == 200]
        other = [(f"{t.upper()}{i}", st) for t in results for i, st in results[t] if st != 200]
        statuses = {}
        for _, st in other:
            statuses[st] = statuses.get(st, 0) + 1
        print(f"     {len(acked)} changes acknowledged, {len(other)} not (status: count "
              f"{statuses}; None: no answer); etcd leader killed at 1.5 s, replica a at 3 s")
        expect(len(acked) >= 20, f"changes went through: {len(acked)}; others: {other[:10]}")
        env = b.get("/v1/apps/last/env")["vars"]
        for t in results:
            n = len(results[t])
            for i, st in results[t]:
                if st == 200 and i > n - KEEP:  # not deleted by a later write
                    eq(env.get(f"{t.upper()}{i}"), str(i), f"acknowledged change {t}{i} is there")
        counts = audit_names(b)
        for name in acked:
            eq(counts.get(name), 1, f"{name} applied exactly once")
        for name, st in other:
            if st is None:  # no answer: it may have been applied, once
                expect(counts.get(name, 0) <= 1, f"{name} applied at most once")
            else:  # refused: not applied
                eq(counts.get(name, 0), 0, f"{name} refused ({st}) yet applied")
        last = env.get("LAST")
        expect(last in acked or last in [n for n, _ in other], f"LAST {last} is one of the writes")
        for dp in (n1, n2):
            dp.wait_body("last.test", last, timeout=5)
        took = time.monotonic() - ended
        expect(took < 5, f"every node served the last value {took:.1f} s after the writes ended")
        for dp in (n1, n2):
            dp.stop()
        b.stop()


@check
def a_stopped_replica_comes_back_without_a_split_brain():
    with etcd_cluster.EtcdCluster(3) as c:
        a, b = replicas(c, "/t3")
        setup_app(a)
        a.ok("env", "set", "last", "LAST=0", "A=1")
        n1 = node(a, [b], "n1")
        n1.wait_body("last.test", "0")
        a.signal(signal.SIGSTOP)
        try:
            for i in range(1, 6):
                b.ok("env", "set", "last", f"LAST={i}", f"B{i}=x")
            # the node left the stopped replica for the other one and follows it
            n1.wait_body("last.test", "5", timeout=15)
            time.sleep(max(0.0, 10 - 5))
        finally:
            a.signal(signal.SIGCONT)
        # The resumed replica's next change builds on the other's: nothing it had is lost,
        # nothing of b's is overwritten.
        a.ok("env", "set", "last", "LAST=6", "A=2")
        env = b.get("/v1/apps/last/env")["vars"]
        eq(env.get("A"), "2", "a's change")
        for i in range(1, 6):
            eq(env.get(f"B{i}"), "x", f"b's change B{i} kept")
        eq(env.get("LAST"), "6", "last")
        eq(a.get("/v1/apps/last/env")["vars"], env, "both replicas read the same")
        n1.wait_body("last.test", "6", timeout=5)
        n1.stop()
        a.stop()
        b.stop()


@check
def the_fleet_duties_move_when_their_replica_dies():
    with etcd_cluster.EtcdCluster(3) as c:
        a, b = replicas(c, "/t4")
        m = None
        deadline = time.monotonic() + TIMEOUT
        while m is None and time.monotonic() < deadline:
            for r in (a, b):
                if re.search(r"cp\.fleet_duties .*leader=true", r.log()):
                    m = r
            time.sleep(0.05)
        expect(m is not None, "one replica runs the fleet's duties")
        other = b if m is a else a
        expect(re.search(r"cp\.fleet_duties .*leader=true", other.log()) is None,
               "only one")
        setup_app(other, "--drain-timeout", "2s")
        dp = node(other, [m], "n1")
        dp.wait_body("last.test", "unset")
        m.proc.kill()
        m.proc.wait(timeout=TIMEOUT)
        other.wait_log(r"cp\.fleet_duties .*leader=true", timeout=10)
        other.ok("apps", "rm", "last")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if "last" not in other.ok("apps", "list"):
                break
            time.sleep(0.2)
        expect("last" not in other.ok("apps", "list"), "the drain finished on the new leader")
        dp.stop()
        other.stop()


@check
def the_store_over_tls_with_a_client_certificate():
    """etcds://: nanocp verifies etcd's certificate against --store-cacert and presents
    --store-cert/--store-key to an etcd that requires client certificates; without either the
    store is refused at start with one line."""
    d = scratch_dir()
    certs = nanotest.make_certs(d)
    port, peer = etcd_cluster.free_port(), etcd_cluster.free_port()
    etcd = subprocess.Popen(
        [etcd_cluster.etcd_binary(), "--name", "tls", "--data-dir", os.path.join(d, "data"),
         "--listen-client-urls", f"https://127.0.0.1:{port}",
         "--advertise-client-urls", f"https://localhost:{port}",
         "--listen-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-cluster", f"tls=http://127.0.0.1:{peer}",
         "--cert-file", certs["server.crt"], "--key-file", certs["server.key"],
         "--trusted-ca-file", certs["ca.crt"], "--client-cert-auth"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        store = f"etcds://localhost:{port}/tls"
        tls = ["--store-cacert", certs["ca.crt"], "--store-cert", certs["client.crt"],
               "--store-key", certs["client.key"]]

        def migrate(*flags):
            return subprocess.run([nanotest.NANOCP, "migrate", "--store", store, "--data-dir", d,
                                   *flags], capture_output=True, text=True, timeout=TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        while migrate(*tls).returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        p = migrate(*tls)
        eq(p.returncode, 0, p.stderr)
        for flags, what in ((tls[:2], "without a client certificate"), ([], "without the CA")):
            p = migrate(*flags)
            eq(p.returncode, 1, f"{what}: {p.stdout} {p.stderr}")
            errors = [l for l in p.stderr.splitlines() if l.startswith("nanocp: ")]
            eq(len(errors), 1, f"{what}: one error line: {p.stderr}")
            expect(store in errors[0], p.stderr)
        r = ControlPlane(data_dir=d, args=["--store", store, *tls]).start()
        r.ok("apps", "create", "tls", "--host", "tls.test")
        r.ok("env", "set", "tls", "A=1")
        expect("A" in r.ok("env", "list", "tls"), "env over TLS")
        r.stop()
    finally:
        etcd.kill()
        etcd.wait(timeout=TIMEOUT)


def main():
    if etcd_cluster.etcd_binary() is None:
        print("skipped: no etcd binary (install etcd-server; scripts/bootstrap does)")
        sys.exit(etcd_cluster.SKIP)
    os.environ.setdefault("NANO_MASTER_KEY", os.urandom(32).hex())
    run()


if __name__ == "__main__":
    main()
