#!/usr/bin/env python3
"""What nano-dp and nanocp tell systemd (docs/install.md, supervisor.h, shared/sd.h): READY=1
once serving (with --control-plane: once the first config is in), RELOADING=1 then READY=1
around a SIGHUP reload, STOPPING=1 and draining STATUS lines at SIGTERM, and WATCHDOG=1 pings
that stop while a worker thread is stuck. The supervisor is played by a Unix datagram socket
given as NOTIFY_SOCKET, as systemd does."""
import os
import signal
import socket
import threading
import time

import nanotest
from nanotest import (TIMEOUT, ConfigServer, ControlPlane, Server, check, eq, expect, run,
                      scratch_dir, with_env)


class Notify:
    """A NOTIFY_SOCKET: collects (time, state) of every datagram."""

    def __init__(self):
        self.path = os.path.join(scratch_dir(), "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.msgs = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while not self.stop.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.msgs.append((time.monotonic(), data.decode()))

    def states(self):
        with self.lock:
            return list(self.msgs)

    def wait(self, needle, timeout=TIMEOUT, after=0):
        """Waits for a message holding the line needle, sent after time after; returns it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, m in self.states():
                if t >= after and needle in m.split("\n"):
                    return t, m
            time.sleep(0.02)
        raise AssertionError(f"no {needle!r} within {timeout}s; got {self.states()}")

    def pings(self, since, until=None):
        return [t for t, m in self.states()
                if m == "WATCHDOG=1" and t >= since and (until is None or t <= until)]

    def close(self):
        self.stop.set()
        self.sock.close()


HELLO = "export default { fetch() { return new Response('hello'); } };"

SPIN = """
export default {
  fetch(request) {
    if (new URL(request.url).pathname === '/spin') { const t = Date.now(); while (Date.now() - t < 3000) {} }
    return new Response('ok');
  },
};
"""


@check
def nano_dp_ready_watchdog_and_stopping():
    n = Notify()
    s = Server(HELLO, args=["--threads", "2"])
    with_env({"NOTIFY_SOCKET": n.path, "WATCHDOG_USEC": "600000"}, s.start)
    t_ready, ready = n.wait("READY=1")
    expect("STATUS=serving 1 app (config version 1)" in ready, ready)
    eq(s.request(path="/").text, "hello", "serves")
    time.sleep(1.0)
    pings = n.pings(t_ready)
    expect(len(pings) >= 3, f"WATCHDOG=1 about every 200 ms: {len(pings)} in 1 s")
    expect("dp.watchdog_pings interval_ms=600" in s.log(), s.log())
    before = time.monotonic()
    s.signal(signal.SIGTERM)
    _, stopping = n.wait("STOPPING=1", after=before)
    expect("STATUS=draining:" in stopping, stopping)
    eq(s.wait_exit(), 0, "exit after the drain")
    readies = [m for _, m in n.states() if "READY=1" in m.split("\n")]
    eq(len(readies), 1, "READY=1 once")
    n.close()


@check
def a_stuck_worker_stops_the_pings_and_they_resume():
    n = Notify()
    # One worker, a 5 s CPU limit: /spin holds the worker's loop for 3 s of JS.
    s = Server(SPIN, args=["--threads", "1", "--cpu-limit", "5000"])
    with_env({"NOTIFY_SOCKET": n.path, "WATCHDOG_USEC": "1000000"}, s.start)
    t_ready, _ = n.wait("READY=1")
    time.sleep(0.5)
    expect(len(n.pings(t_ready)) >= 1, "pings while alive")
    result = {}
    t = threading.Thread(target=lambda: result.update(r=s.request(path="/spin", timeout=20)))
    spin_start = time.monotonic()
    t.start()
    s.wait_log(r"dp\.worker_stuck worker=0 for_ms=\d+", timeout=5)
    t.join(20)
    spin_end = time.monotonic()
    eq(result["r"].status, 200, "the spinning request ends")
    s.wait_log(r"dp\.worker_alive_again worker=0", timeout=5)
    time.sleep(0.5)
    # No ping from 0.5 s after the worker's last tick (its 'stuck after') to the spin's end:
    # systemd, with WatchdogSec=1s, would have restarted the process.
    silent = n.pings(spin_start + 1.0, spin_end - 0.3)
    eq(silent, [], "no WATCHDOG=1 while the worker is stuck")
    gaps = n.pings(spin_start, spin_end + 1.0)
    expect(any(p > spin_end for p in gaps), "pings resume once the worker turns again")
    s.stop()
    n.close()


@check
def sighup_reload_is_reloading_then_ready():
    n = Notify()
    files = {"app.js": HELLO}
    s = ConfigServer({"apps": [{"name": "a", "hostname": "a.test", "path": "app.js"}]}, files)
    with_env({"NOTIFY_SOCKET": n.path}, s.start)
    t_ready, _ = n.wait("READY=1")
    s.write_config({"apps": [{"name": "a", "hostname": "a.test", "path": "app.js"},
                             {"name": "b", "hostname": "b.test", "path": "app.js"}]})
    s.wait_log(r"dp\.config_applied")  # the file watch applied it: only STATUS changes
    before = time.monotonic()
    s.signal(signal.SIGHUP)
    t_rel, _ = n.wait("RELOADING=1", after=before)
    _, again = n.wait("READY=1", after=t_rel)
    expect("STATUS=serving 2 apps" in again, again)
    s.stop()
    n.close()


@check
def control_plane_node_is_ready_with_its_first_config_and_nanocp_notifies():
    n_cp, n_dp = Notify(), Notify()
    cp = ControlPlane()
    with_env({"NOTIFY_SOCKET": n_cp.path, "WATCHDOG_USEC": "900000"}, cp.start)
    t, ready = n_cp.wait("READY=1")
    expect(f"STATUS=serving: http port {cp.http_port}, rpc port {cp.rpc_port}" in ready, ready)
    time.sleep(0.7)
    expect(len(n_cp.pings(t)) >= 2, f"nanocp pings: {n_cp.states()}")
    pub, rpc = cp.dataplane_urls()
    dp = Server("", name="unused.js")
    dp.command = lambda: [nanotest.BIN, "--control-plane", pub, "--control-plane-rpc", rpc,
                          "--node", "n1", "--node-token-file", cp.node_token_file,
                          "--listen", "127.0.0.1:0", "--status-listen", "127.0.0.1:0",
                          "--threads", "1"]
    with_env({"NOTIFY_SOCKET": n_dp.path}, dp.start)
    dp.wait_log(r"cpclient\.snapshot_applied")
    _, dready = n_dp.wait("READY=1")
    expect("STATUS=serving 0 apps" in dready, dready)
    dp.stop()
    before = time.monotonic()
    cp.stop()
    n_cp.wait("STOPPING=1", after=before)
    n_cp.close()
    n_dp.close()


if __name__ == "__main__":
    run()
