"""hostile: the bystander harness of the hostile-tenant suites (tests/e2e/test_hostile_*.py).

Each case runs one attack against app A on a node with one worker thread (`--threads 1`), so
A and the bystander app B share a thread, a loop and a process. While the attack runs, a
Bystander keeps requesting B on a keep-alive connection and samples nano-dp's RSS; the case
then asserts that B saw only 200s, with a p99 under P99_MS, and that the RSS stayed under
RSS_MIB (docs/architecture.md#limits: what one app does must never stall, starve or crash another).

Under `make test-asan` code runs several times slower and ASan keeps shadow memory and
quarantines frees, so both bounds are scaled there (SANITIZED in nanotest).
"""
import math
import re
import threading
import time

from nanotest import SANITIZED, Conn, ConfigServer, build_request, expect

P99_MS = 100 * (5 if SANITIZED else 1)
RSS_MIB = 512 * (4 if SANITIZED else 1)

B_APP = """
let n = 0;
export default { fetch() { n++; return new Response('b ok ' + n); } };
"""


def two_apps(a_source, a_limits=None, args=(), a_files=None, b_source=B_APP, a_extra=None):
    """A ConfigServer (not started) with app "a" (host a.test, a_source, a_limits) and the
    bystander "b" (host b.test) on one worker thread. a_files: more files beside a.js."""
    a = {"name": "a", "hostname": "a.test", "path": "./a.js"}
    if a_limits:
        a["limits"] = dict(a_limits)
    a.update(a_extra or {})
    cfg = {"apps": [a, {"name": "b", "hostname": "b.test", "path": "./b.js"}]}
    files = {"a.js": a_source, "b.js": b_source}
    files.update(a_files or {})
    return ConfigServer(cfg, files, args=list(args))


def rss_mib(pid):
    """Resident set size of a process, MiB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            m = re.search(r"VmRSS:\s+(\d+) kB", f.read())
        return int(m.group(1)) / 1024 if m else 0.0
    except OSError:
        return 0.0


class Bystander:
    """Requests b.test on a keep-alive connection (reconnecting after a close) every
    `interval` seconds until stopped, recording each status and latency, and samples the
    server's RSS. Use as a context manager around the attack:

        with Bystander(s) as b:
            ... attack ...
        b.check()          # asserts, and returns a one-line summary for the log
    """

    def __init__(self, server, host="b.test", path="/", interval=0.005, min_requests=100):
        self.server = server
        self.min_requests = min_requests
        self.host = host
        self.path = path
        self.interval = interval
        self.results = []  # (status or error text, latency seconds)
        self.max_rss = 0.0
        self._stop = threading.Event()
        self._threads = []

    def _requests(self):
        conn = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = Conn(self.server.port, timeout=10)
                t0 = time.monotonic()
                conn.send(build_request("GET", self.path, host=self.host))
                r = conn.read_response()
                self.results.append((r.status, time.monotonic() - t0))
                if r.header("connection") == "close":
                    conn.close()
                    conn = None
            except (OSError, EOFError, AssertionError) as e:
                self.results.append((f"error: {e}", time.monotonic() - t0))
                if conn is not None:
                    conn.close()
                conn = None
            time.sleep(self.interval)
        if conn is not None:
            conn.close()

    def _sample(self):
        pid = self.server.proc.pid
        while not self._stop.is_set():
            self.max_rss = max(self.max_rss, rss_mib(pid))
            time.sleep(0.02)

    def __enter__(self):
        for target in (self._requests, self._sample):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)
        # The bystander is served before the attack starts (its isolate exists).
        deadline = time.monotonic() + 10
        while not self.results and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc):
        # An attack stopped within milliseconds leaves few samples: the bystander goes on to
        # min_requests (bounded), so that a thread the attack left stuck shows too.
        deadline = time.monotonic() + 5
        while len(self.results) < self.min_requests and time.monotonic() < deadline:
            time.sleep(0.01)
        self._stop.set()
        for t in self._threads:
            t.join(15)

    def p99_ms(self):
        # Nearest rank: the smallest latency that at least 99% of the requests did not exceed.
        lat = sorted(x[1] for x in self.results)
        if not lat:
            return float("inf")
        return lat[max(0, math.ceil(len(lat) * 0.99) - 1)] * 1000

    def summary(self):
        return (f"bystander: {len(self.results)} requests, p99 {self.p99_ms():.1f} ms, "
                f"max {max((x[1] for x in self.results), default=0) * 1000:.1f} ms; "
                f"nano-dp max RSS {self.max_rss:.0f} MiB")

    def check(self, min_requests=None, p99_ms=P99_MS, max_rss_mib=RSS_MIB):
        min_requests = self.min_requests if min_requests is None else min_requests
        bad = [x for x in self.results if x[0] != 200]
        expect(not bad, f"bystander got non-200 answers: {bad[:5]} ({self.summary()})")
        expect(len(self.results) >= min_requests,
               f"bystander got only {len(self.results)} answers ({self.summary()})")
        expect(self.p99_ms() < p99_ms, f"bystander p99 over {p99_ms} ms ({self.summary()})")
        expect(self.max_rss < max_rss_mib,
               f"nano-dp RSS over {max_rss_mib} MiB ({self.summary()})")
        line = self.summary()
        print(f"     {line}", flush=True)
        return line


def timed_request(server, path, host="a.test", method="GET", body=None, headers=None,
                  timeout=30):
    """One request on a fresh connection: (Response or the error text, seconds taken)."""
    t0 = time.monotonic()
    try:
        with Conn(server.port, timeout=timeout) as c:
            c.send(build_request(method, path, headers, body, host=host))
            r = c.read_response()
    except (OSError, EOFError, AssertionError) as e:
        r = f"error: {e}"
    return r, time.monotonic() - t0


def log_figure(text):
    """A measured figure for the run's output (quoted in notes)."""
    print(f"     {text}", flush=True)


__all__ = ["B_APP", "Bystander", "P99_MS", "RSS_MIB", "log_figure", "rss_mib", "timed_request",
           "two_apps"]
