#!/usr/bin/env python3
"""etcd_cluster: an N-member etcd cluster on loopback for NANO's end-to-end tests (python3
standard library only).

    with EtcdCluster(3) as c:          # started, healthy, a leader elected (bounded waits)
        c.url()                        # "etcd://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3"
        i = c.leader()                 # index of the member that leads
        c.kill(i)                      # SIGKILL; c.stop(i) / c.cont(i): SIGSTOP / SIGCONT
        c.put("k", "v", member=j)      # through one member's v3 JSON gateway
        c.get("k", member=j)           # "v", or None

Each member gets two free loopback ports (client, peer) and a temporary data directory; its
output goes to DIR/NAME.log (c.log(i)). Every process is killed and every directory removed at
close(), at interpreter exit, and on SIGTERM (ctest's timeout); each member also dies with this
process (PR_SET_PDEATHSIG). Leaders are found with the gateway's /v3/maintenance/status, so
etcdctl is not needed.

`etcd_cluster.py --self-test` starts 3 members, kills the leader and checks that a put still
succeeds on the survivors (ctest: e2e.etcd_cluster). Without an etcd binary it says so and
exits 77, which ctest shows as skipped. $NANO_ETCD names another binary.
"""
import argparse
import atexit
import base64
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

SKIP = 77
_clusters = []


def etcd_binary():
    """$NANO_ETCD if set, else /usr/bin/etcd, else etcd from PATH; None when there is none."""
    env = os.environ.get("NANO_ETCD")
    if env is not None:
        return env if os.access(env, os.X_OK) else None
    if os.access("/usr/bin/etcd", os.X_OK):
        return "/usr/bin/etcd"
    return shutil.which("etcd")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


class EtcdError(Exception):
    pass


class PortTaken(EtcdError):
    pass


class EtcdCluster:
    def __init__(self, n=3, binary=None, args=(), start_timeout=30.0):
        self.n = n
        self.binary = binary or etcd_binary()
        if self.binary is None:
            raise EtcdError("no etcd binary")
        self.args = list(args)
        self.dir = tempfile.mkdtemp(prefix="nano-etcd-")
        self.names = [f"m{i}" for i in range(n)]
        self.procs = [None] * n
        self.stopped = set()
        _clusters.append(self)
        try:
            # A port free when picked can be taken before etcd binds it (another member's
            # outgoing peer connection gets an ephemeral port): then start again, new ports.
            for attempt in range(3):
                self.client_ports = [free_port() for _ in range(n)]
                self.peer_ports = [free_port() for _ in range(n)]
                try:
                    self._start(start_timeout)
                    break
                except PortTaken:
                    self._kill_all()
                    shutil.rmtree(self.dir, ignore_errors=True)
                    os.makedirs(self.dir)
                    if attempt == 2:
                        raise
        except BaseException:
            self.close()
            raise

    # --- lifecycle -------------------------------------------------------------------------

    def _start(self, timeout):
        cluster = ",".join(f"{self.names[i]}=http://127.0.0.1:{self.peer_ports[i]}"
                           for i in range(self.n))
        token = os.path.basename(self.dir)
        for i in range(self.n):
            client = f"http://127.0.0.1:{self.client_ports[i]}"
            peer = f"http://127.0.0.1:{self.peer_ports[i]}"
            argv = [self.binary, "--name", self.names[i],
                    "--data-dir", os.path.join(self.dir, self.names[i]),
                    "--listen-client-urls", client, "--advertise-client-urls", client,
                    "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                    "--initial-cluster", cluster, "--initial-cluster-token", token,
                    "--initial-cluster-state", "new",
                    # Loopback: a new leader within about a second, not several; not so
                    # short that a loaded machine (ctest -j) sees spurious elections.
                    "--heartbeat-interval", "100", "--election-timeout", "1000"] + self.args
            log = open(self.log(i), "wb")
            self.procs[i] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT,
                                             preexec_fn=_die_with_parent)
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, p in enumerate(self.procs):
                if p.poll() is not None:
                    if "address already in use" in self.tail(i):
                        raise PortTaken(f"etcd {self.names[i]}: a port was taken meanwhile")
                    raise EtcdError(f"etcd {self.names[i]} exited ({p.returncode}) at start:\n"
                                    + self.tail(i))
            if self._leader_of(range(self.n), 0.5) is not None:
                return
            time.sleep(0.1)
        raise EtcdError(f"the etcd cluster elected no leader within {timeout} s:\n" + self.tail(0))

    def close(self):
        self._kill_all()
        shutil.rmtree(self.dir, ignore_errors=True)
        if self in _clusters:
            _clusters.remove(self)

    def _kill_all(self):
        for i, p in enumerate(self.procs):
            if p is not None and p.poll() is None:
                if i in self.stopped:
                    p.send_signal(signal.SIGCONT)
                p.kill()
            if p is not None:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
        self.procs = [None] * self.n
        self.stopped.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- members ---------------------------------------------------------------------------

    def log(self, i):
        return os.path.join(self.dir, f"{self.names[i]}.log")

    def tail(self, i, lines=20):
        try:
            with open(self.log(i), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def endpoint(self, i):
        return f"127.0.0.1:{self.client_ports[i]}"

    def url(self, members=None, prefix=""):
        """The etcd:// URL of the given members (default: all), for nanocp --store."""
        members = range(self.n) if members is None else members
        return "etcd://" + ",".join(self.endpoint(i) for i in members) + prefix

    def alive(self):
        """Members neither killed nor stopped."""
        return [i for i, p in enumerate(self.procs)
                if p is not None and p.poll() is None and i not in self.stopped]

    def kill(self, i):
        """SIGKILL member i and reap it."""
        self.procs[i].kill()
        self.procs[i].wait(timeout=10)
        self.stopped.discard(i)

    def stop(self, i):
        self.procs[i].send_signal(signal.SIGSTOP)
        self.stopped.add(i)

    def cont(self, i):
        self.procs[i].send_signal(signal.SIGCONT)
        self.stopped.discard(i)

    # --- the v3 JSON gateway ---------------------------------------------------------------

    def call(self, i, path, body, timeout=2.0):
        """POST body (a dict) to member i's gateway; the answer as a dict. EtcdError when it
        answers with an error or not at all."""
        req = urllib.request.Request(f"http://{self.endpoint(i)}{path}",
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise EtcdError(f"{self.names[i]}{path}: HTTP {e.code}: {e.read()[:200]!r}")
        except (OSError, ValueError) as e:
            raise EtcdError(f"{self.names[i]}{path}: {e}")

    def status(self, i, timeout=2.0):
        """Member i's /v3/maintenance/status: leader, raftTerm, header.member_id..."""
        return self.call(i, "/v3/maintenance/status", {}, timeout)

    def _leader_of(self, members, timeout):
        """The index of the leader the given members agree on, or None."""
        ids = {}
        leaders = set()
        for i in members:
            try:
                st = self.status(i, timeout)
            except EtcdError:
                return None
            ids[st["header"]["member_id"]] = i
            leaders.add(st.get("leader", "0"))
        if len(leaders) != 1:
            return None
        return ids.get(leaders.pop())

    def leader(self, timeout=10.0):
        """The index of the leader the live members agree on, waiting (bounded) for one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            i = self._leader_of(self.alive(), 1.0)
            if i is not None:
                return i
            time.sleep(0.1)
        raise EtcdError(f"no leader agreed by members {self.alive()} within {timeout} s")

    def put(self, key, value, member):
        return int(self.call(member, "/v3/kv/put",
                             {"key": _b64(key), "value": _b64(value)})["header"]["revision"])

    def get(self, key, member):
        kvs = self.call(member, "/v3/kv/range", {"key": _b64(key)}).get("kvs", [])
        return base64.b64decode(kvs[0].get("value", "")).decode() if kvs else None


def _close_all():
    for c in list(_clusters):
        c.close()


atexit.register(_close_all)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # atexit then runs


def _retry(fn, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except EtcdError as e:
            if time.monotonic() > deadline:
                raise EtcdError(f"{what}: still failing after {timeout} s: {e}")
            time.sleep(0.1)


def self_test():
    if etcd_binary() is None:
        print("etcd_cluster: skipped: etcd not found ($NANO_ETCD, /usr/bin/etcd, PATH): "
              "install etcd-server (scripts/bootstrap)")
        return SKIP
    t0 = time.monotonic()

    def expect(cond, what):
        if not cond:
            raise AssertionError(what)

    with EtcdCluster(3) as c:
        first = c.leader()
        print(f"ok - 3 members healthy, leader {c.names[first]} "
              f"({time.monotonic() - t0:.1f} s)")
        # Every call is retried (bounded): under load, an election may happen at any time.
        rev = _retry(lambda: c.put("/self-test/a", "1", member=first), 10, "put on the leader")
        c.kill(first)
        survivors = c.alive()
        expect(len(survivors) == 2, f"survivors: {survivors}")
        second = c.leader()
        expect(second in survivors, f"{c.names[second]} leads, not a survivor")
        print(f"ok - {c.names[first]} killed, {c.names[second]} leads")
        other = [i for i in survivors if i != second][0]
        rev2 = _retry(lambda: c.put("/self-test/b", "2", member=other), 10,
                      "put through a survivor")
        expect(rev2 > rev, f"revision {rev2} after {rev}")
        for key, value in (("/self-test/a", "1"), ("/self-test/b", "2")):
            got = _retry(lambda: c.get(key, member=second), 10, "read")
            expect(got == value, f"{key}: {got!r}, not {value!r}")
        print("ok - a put succeeds on the survivors, earlier writes kept")
        c.stop(other)
        try:
            c.status(other, timeout=0.5)
            expect(False, "a SIGSTOPped member answered")
        except EtcdError:
            pass
        c.cont(other)
        _retry(lambda: c.status(other), 10, "status of the resumed member")
        got = _retry(lambda: c.get("/self-test/b", member=other), 10, "read")
        expect(got == "2", f"/self-test/b on the resumed member: {got!r}")
        print("ok - a member SIGSTOPped is silent, SIGCONTed it serves again")
    print(f"etcd_cluster: self-test passed in {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--self-test", action="store_true", help="start 3, kill the leader, put")
    ap.add_argument("--bin", help="ignored (ctest passes nano-dp to every e2e script)")
    opts = ap.parse_args()
    if not opts.self_test:
        ap.print_help()
        sys.exit(2)
    sys.exit(self_test())
