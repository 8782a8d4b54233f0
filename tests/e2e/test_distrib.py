#!/usr/bin/env python3
"""Config distribution end to end (docs/distribution.md): a real nanocp, nano-dps in
--control-plane mode and nanoctl, all on loopback. A deploy and an env change reach every node
(module state survives), a node killed with -9 converges after a restart, nodes keep serving
while nanocp is down and resync when it returns, dropped deltas (NANO_TEST_DROP_DELTAS) are
detected and resynced, `apps rm` under load drains every node with no failed request,
/readyz is 503 until the first snapshot, and secrets, JSON vars, process.env and a redeploy
under load (a stream in flight survives it) reach every node. nanocp and nanoctl are found beside --bin."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import nanotest
from nanotest import (TIMEOUT, ControlPlane, DataPlane, Server, app_js, check, eq, expect,
                      run, scratch_dir)

COUNTER_APP = """
let counter = 0;
export default {
  fetch(request, env) {
    counter++;
    return new Response(`${env.GREETING ?? "unset"} ${counter}`);
  },
};
"""

SLOW_APP = """
export default {
  async fetch(request, env) {
    await new Promise((r) => setTimeout(r, 1500));
    return new Response("slow done");
  },
};
"""


def free_ports(n):
    """n consecutive free loopback ports (nanocp must come back on the same ones)."""
    for _ in range(200):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        base = s.getsockname()[1]
        s.close()
        if base + n > 65535:
            continue
        ok = True
        for p in range(base, base + n):
            t = socket.socket()
            try:
                t.bind(("127.0.0.1", p))
            except OSError:
                ok = False
            finally:
                t.close()
        if ok:
            return base
    raise AssertionError("no free consecutive ports")


class Cp(ControlPlane):
    """nanocp with its data-plane channels on fixed ports (kept across restarts); scheme
    tls+tcp with extra (its --dataplane-tls-* flags) for TLS."""

    def __init__(self, data_dir=None, scheme="tcp", extra=(), make_token=True):
        self.dp_port = free_ports(2)
        self.scheme = scheme
        # Data planes dial by name: certificates name hosts (mbedtls 2.28 does not match
        # IP-address SANs).
        self.host = "localhost" if scheme == "tls+tcp" else "127.0.0.1"
        super().__init__(data_dir=data_dir, args=[
            "--dataplane", f"{scheme}://127.0.0.1:{self.dp_port}",
            "--dataplane-rpc", f"{scheme}://127.0.0.1:{self.dp_port + 1}", *extra])
        # The node token exists before nanocp's first start, so a node can be started first.
        # (make_token=False: a second nanocp on another's data dir, which has it already.)
        os.makedirs(self.data_dir, exist_ok=True)
        if make_token:
            fd = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, (os.urandom(32).hex() + "\n").encode())
            os.close(fd)

    @property
    def url(self):
        return f"{self.scheme}://{self.host}:{self.dp_port}"



def deploy(cp, name, host, source):
    cp.ok("apps", "create", name, "--host", host)
    cp.ok("apps", "deploy", name, app_js(cp, name, source))


@check
def readyz_is_503_until_the_first_snapshot():
    cp = Cp()
    dp = DataPlane(cp, "n1").start()  # nanocp is not up yet: nothing to apply
    r = dp.status("/readyz")
    eq(r.status, 503, "/readyz before any snapshot")
    st = dp.status()
    eq(st["control_plane"]["has_config"], False, "has_config")
    eq(st["control_plane"]["node"], "n1", "node")
    dp.wait_log(r"cpclient\.reconnecting retry_in_ms=\d+")
    cp.start()
    deploy(cp, "hello", "hello.test", COUNTER_APP)
    dp.wait_ready(timeout=15)  # the backoff is at most 5 s
    dp.wait_body("hello.test", "unset ")
    st = dp.status()
    eq(st["control_plane"]["connected"], True, "connected")
    expect(st["config_version"] >= 2, f"config_version is the applied seq: {st}")
    dp.stop()
    cp.stop()


@check
def env_set_reaches_both_nodes_and_module_state_survives():
    cp = Cp().start()
    deploy(cp, "hello", "hello.test", COUNTER_APP)
    cp.ok("env", "set", "hello", "GREETING=hi")
    nodes = [DataPlane(cp, f"n{i}").start() for i in (1, 2)]
    for dp in nodes:
        dp.wait_body("hello.test", "hi ")
        # The snapshot's module came in one code.batch round trip.
        dp.wait_log(r"cpclient\.code_prefetched modules=1 received=1 batches=1")
    before = {dp.node: int(dp.get("hello.test").text.split()[1]) for dp in nodes}
    t0 = time.monotonic()
    cp.ok("env", "set", "hello", "GREETING=hola")
    for dp in nodes:
        text = dp.wait_body("hello.test", "hola ")
        # The isolate was kept: the counter went on from where it was.
        expect(int(text.split()[1]) > before[dp.node], f"{dp.node}: counter reset: {text}")
        dp.wait_log(r"dp\.config_applied trigger=control-plane .*env_changed=1")
    expect(time.monotonic() - t0 < 5, "propagation took over 5 s")
    # JSON vars arrive as JSON.
    cp.ok("env", "set", "hello", "--json", 'GREETING={"a":1}')
    for dp in nodes:
        dp.wait_body("hello.test", "[object Object] ")
    # nanocp sees both nodes at the applied seq.
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        listed = cp.ctl_json("nodes")
        rows = listed.get("nodes", listed) if isinstance(listed, dict) else listed
        names = {n.get("name") or n.get("node") for n in rows}
        if {"n1", "n2"} <= names and all(n.get("current") for n in rows):
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"nanocp never saw both nodes current: {listed}")
    for dp in nodes:
        dp.stop()
    cp.stop()


ENV_APP = """
let counter = 0;
export default {
  fetch(request, env) {
    counter++;
    return Response.json({ env: { ...env }, counter });
  },
};
"""


def wait_env(dp, want):
    """Polls the ENV_APP until its env is want; returns the parsed answer."""
    deadline = time.monotonic() + TIMEOUT
    got = None
    while time.monotonic() < deadline:
        r = dp.get("hello.test")
        got = json.loads(r.text) if r.status == 200 else r.text
        if isinstance(got, dict) and got["env"] == want:
            return got
        time.sleep(0.05)
    raise AssertionError(f"env never became {want}: last {got}")


@check
def env_put_replaces_the_vars_on_the_node_in_one_delta():
    cp = Cp().start()
    deploy(cp, "hello", "hello.test", ENV_APP)
    cp.ok("env", "set", "hello", "A=1", "B=2", "C=3")
    dp = DataPlane(cp, "n1").start()
    before = wait_env(dp, {"A": "1", "B": "2", "C": "3"})
    # PUT: exactly A (changed) and D; B and C go. One admin call, one delta on the node.
    applied = dp.log().count("dp.config_applied")
    status, body, _ = cp.http("PUT", "/v1/apps/hello/env", {"vars": {"A": "one", "D": 4}})
    eq(status, 200, f"PUT env: {body}")
    eq(body["vars"], {"A": "one", "D": 4}, "PUT answer")
    got = wait_env(dp, {"A": "one", "D": 4})
    expect(got["counter"] > before["counter"], f"module state kept: {before} -> {got}")
    dp.wait_count(r"dp\.config_applied trigger=control-plane", applied + 1)
    time.sleep(0.5)
    eq(dp.log().count("dp.config_applied"), applied + 1, "one delta applied for the PUT")
    # nanoctl env import --replace, several files, a later one wins.
    d = scratch_dir()
    with open(os.path.join(d, ".env"), "w") as f:
        f.write("X=base\nY=y\n")
    with open(os.path.join(d, ".env.production"), "w") as f:
        f.write("X=prod\n")
    cp.ok("env", "import", "hello", os.path.join(d, ".env"), os.path.join(d, ".env.production"),
          "--replace")
    wait_env(dp, {"X": "prod", "Y": "y"})
    # A bad PUT changes nothing.
    status, body, _ = cp.http("PUT", "/v1/apps/hello/env", {"vars": {"1BAD": 1}})
    eq(status, 400, f"bad name: {body}")
    status, body, _ = cp.http("PUT", "/v1/apps/hello/env", {"X": "not under vars"})
    eq(status, 400, f"vars missing: {body}")
    eq(json.loads(dp.get("hello.test").text)["env"], {"X": "prod", "Y": "y"}, "unchanged")
    dp.stop()
    cp.stop()


def wait_current(cp, node, within_s):
    """Polls `nanoctl nodes` until node is listed with nanocp's latest seq applied."""
    deadline = time.monotonic() + within_s
    while True:
        res = cp.ctl_json("nodes")
        row = next((n for n in res["nodes"] if n["name"] == node), None)
        if row is not None and row["current"] and row["applied_seq"] == res["seq"]:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{node} not current within {within_s}s: {res}")
        time.sleep(0.02)


@check
def nodes_lists_a_node_current_as_soon_as_it_serves_a_change():
    # A node reports its status at once after applying a snapshot or a delta (not only once a
    # second), and nanocp writes the reports it has before it answers a call (not only once a
    # second): the first `nanoctl nodes` of `make demo`, right after the app served, showed
    # APPLIED 0 / CURRENT no (issue 21).
    within = 1.5 if nanotest.SANITIZED else 0.4
    cp = Cp().start()
    deploy(cp, "hello", "hello.test", COUNTER_APP)
    dp = DataPlane(cp, "n1").start()
    dp.wait_body("hello.test", "unset ")  # the first snapshot
    wait_current(cp, "n1", within)
    cp.ok("env", "set", "hello", "GREETING=hi")  # a delta
    dp.wait_body("hello.test", "hi ")
    wait_current(cp, "n1", within)
    dp.stop()
    cp.stop()


@check
def a_node_killed_and_restarted_converges():
    cp = Cp().start()
    deploy(cp, "hello", "hello.test", COUNTER_APP)
    a, b = DataPlane(cp, "n1").start(), DataPlane(cp, "n2").start()
    a.wait_body("hello.test", "unset ")
    b.wait_body("hello.test", "unset ")
    b.proc.kill()  # SIGKILL
    b.proc.wait(timeout=TIMEOUT)
    cp.ok("env", "set", "hello", "GREETING=after-kill")
    deploy(cp, "second", "second.test", "export default { fetch() { return new Response('2nd') } }")
    a.wait_body("hello.test", "after-kill ")
    b.start()
    b.wait_body("hello.test", "after-kill ")
    b.wait_body("second.test", "2nd")
    a.stop()
    b.stop()
    cp.stop()


@check
def nodes_serve_while_nanocp_is_down_and_resync_when_it_returns():
    cp = Cp().start()
    deploy(cp, "hello", "hello.test", COUNTER_APP)
    cp.ok("env", "set", "hello", "GREETING=one")
    nodes = [DataPlane(cp, f"n{i}").start() for i in (1, 2)]
    for dp in nodes:
        dp.wait_body("hello.test", "one ")
    cp.stop()  # SIGTERM: exits 0
    for dp in nodes:
        dp.wait_log(r"cpclient\.reconnecting")
        for _ in range(3):
            r = dp.get("hello.test")
            eq(r.status, 200, f"{dp.node} serves while nanocp is down")
            expect(r.text.startswith("one "), r.text)
        eq(dp.status("/readyz").status, 200, "still ready on the last config")
        eq(dp.status()["control_plane"]["connected"], False, "link down")
    cp.start()  # same data dir and ports
    cp.ok("env", "set", "hello", "GREETING=two")
    for dp in nodes:
        dp.wait_body("hello.test", "two ", timeout=15)
        dp.wait_log(r"cpclient\.snapshot_applied why=reconnect")
        st = dp.status()["control_plane"]
        eq(st["connected"], True, "reconnected")
        expect(st["resyncs"] >= 1, f"resync counted: {st}")
    for dp in nodes:
        dp.stop()
    cp.stop()


@check
def a_node_given_several_nanocp_addresses_moves_to_the_one_that_answers():
    """--control-plane URL,URL,...: replicas of one store (here two nanocp on one data dir,
    one at a time, as the SQLite store allows; with the etcd store they run together). The
    node skips an address nobody listens on, and when its nanocp is killed it goes on to the
    next one and serves what was changed there."""
    dead = free_ports(2)  # nothing listens here
    a = Cp()
    b = Cp(data_dir=a.data_dir, make_token=False)
    a.start()
    deploy(a, "hello", "hello.test", COUNTER_APP)
    a.ok("env", "set", "hello", "GREETING=one")
    dp = DataPlane(a, "n1")
    dp.cp_url = f"tcp://127.0.0.1:{dead},{a.url},{b.url}"
    dp.start()
    dp.wait_body("hello.test", "one ")
    eq(dp.status()["control_plane"]["url"], a.url, "connected to the one that answers")
    # Apps may reach none of the addresses (egress): each of the 3 PUB and 3 RPC ports denied.
    expect(re.search(r"egress\.node_policy defaults=on endpoints=6\b", dp.log()) is not None,
           dp.log()[:3000])
    expect("endpoint_unresolved" not in dp.log(), dp.log()[:3000])
    a.signal(9)
    a.proc.wait(timeout=TIMEOUT)
    b.start()
    b.ok("env", "set", "hello", "GREETING=two")
    t0 = time.monotonic()
    dp.wait_body("hello.test", "two ", timeout=15)
    took = time.monotonic() - t0
    expect(took < 5, f"served the change made on the other nanocp within 5 s (took {took:.1f} s)")
    dp.wait_log(r"cpclient\.reconnecting .*to=" + re.escape(b.url))
    st = dp.status()["control_plane"]
    eq(st["url"], b.url, "moved on")
    eq(st["connected"], True, "connected")
    dp.stop()
    b.stop()
    # Lists that cannot work are usage errors (exit 2), one line each.
    for args, needle in (
            (["--control-plane", f"{a.url},"], "none empty"),
            (["--control-plane", ",".join([a.url] * 9)], "1 to 8"),
            (["--control-plane", f"{a.url},{b.url}", "--control-plane-rpc",
              "tcp://127.0.0.1:1"], "one URL per --control-plane URL"),
            (["--control-plane", f"{a.url},http://x:1"], "use tcp://")):
        p = subprocess.run([nanotest.BIN, *args, "--node-token-file", a.token_file, "--listen",
                            "127.0.0.1:0"], capture_output=True, text=True, timeout=TIMEOUT)
        eq(p.returncode, 2, f"{args}: {p.stderr}")
        expect(needle in p.stderr, f"{args}: {p.stderr}")


@check
def a_node_moves_on_from_a_nanocp_that_stopped_answering():
    """A nanocp that is stopped (SIGSTOP: its connections stay open) sends no heartbeat: a node
    with another address to go to moves on after 5 s of silence, and takes the changes made
    there. (Two nanocp on one SQLite data dir at once stand in for replicas of one store.)"""
    a = Cp()
    b = Cp(data_dir=a.data_dir, make_token=False)
    a.start()
    b.start()
    deploy(a, "hello", "hello.test", COUNTER_APP)
    a.ok("env", "set", "hello", "GREETING=one")
    dp = DataPlane(a, "n1")
    dp.cp_url = f"{a.url},{b.url}"
    dp.start()
    dp.wait_body("hello.test", "one ")
    a.signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        # Whichever comes first: 5 s without a heartbeat, or the status request's 5 s timeout.
        dp.wait_log(r"cpclient\.reconnecting .*to=" + re.escape(b.url) +
                    r" error_id=cp_(silent|unreachable)", timeout=15)
        took = time.monotonic() - t0
        expect(took < 9, f"moved on within 9 s of the stop (took {took:.1f} s)")
        b.ok("env", "set", "hello", "GREETING=two")
        dp.wait_body("hello.test", "two ", timeout=10)
    finally:
        a.signal(signal.SIGCONT)
    dp.stop()
    a.stop()
    b.stop()


@check
def dropped_deltas_are_detected_and_resynced():
    cp = Cp().start()
    deploy(cp, "hello", "hello.test", COUNTER_APP)
    dp = DataPlane(cp, "n1", env={"NANO_TEST_DROP_DELTAS": "2"}).start()
    dp.wait_body("hello.test", "unset ")
    dp.wait_log(r"cpclient\.test_hook NANO_TEST_DROP_DELTAS=2")
    for i in range(1, 5):
        cp.ok("env", "set", "hello", f"GREETING=v{i}")
        time.sleep(0.1)
    dp.wait_log(r"cpclient\.delta_dropped_test")
    # The next delta after a dropped one is a gap; the last one may be followed only by
    # heartbeats, which tell the node it is behind. Either way it converges.
    dp.wait_body("hello.test", "v4 ", timeout=15)
    dp.wait_log(r"cpclient\.(gap|behind) ")
    dp.wait_log(r"cpclient\.snapshot_applied why=(gap|behind)")
    expect(dp.status()["control_plane"]["resyncs"] >= 1, "resync counted")
    dp.stop()
    cp.stop()


SSE_APP = """
const streams = new Set();
addEventListener('shutdown', () => { for (const end of streams) end(); });
export default {
  fetch(request) {
    let timer;
    const body = new ReadableStream({
      start(c) {
        const enc = new TextEncoder();
        c.enqueue(enc.encode('data: hello\\n\\n'));
        timer = setInterval(() => c.enqueue(enc.encode('data: tick\\n\\n')), 200);
        streams.add(() => { clearInterval(timer); c.enqueue(enc.encode('event: bye\\n\\n')); c.close(); });
      },
    });
    return new Response(body, { headers: { 'content-type': 'text/event-stream' } });
  },
};
"""


@check
def apps_rm_fires_shutdown_at_once_so_an_sse_stream_ends_before_the_drain_timeout():
    cp = Cp().start()
    deploy(cp, "sse", "sse.test", SSE_APP)
    dp = DataPlane(cp, "n1").start()
    dp.wait_ready()
    got = []

    def read():
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", dp.port), timeout=TIMEOUT) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: sse.test\r\n\r\n")
            data = b""
            while not data.endswith(b"0\r\n\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        got.append((data.decode(errors="replace"), time.monotonic() - t0))

    t = threading.Thread(target=read)
    t.start()
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:  # the stream is in flight
        if {a["name"]: a for a in dp.status()["apps"]}.get("sse", {}).get("in_flight", 0) >= 1:
            break
        time.sleep(0.02)
    time.sleep(0.5)
    t0 = time.monotonic()
    cp.ok("apps", "rm", "sse")  # drain_timeout: the default 30 s
    dp.wait_log(r"cpclient\.drain_acked app=sse result=drained")
    drained_s = time.monotonic() - t0
    t.join(timeout=TIMEOUT)
    body, _ = got[0]
    expect("data: tick" in body and "event: bye" in body, f"a clean end: {body[-300:]!r}")
    expect(drained_s < 5, f"the drain took {drained_s:.1f} s (its timeout is 30 s)")
    dp.wait_log(r"app\.shutdown_event app=sse worker=0 .*why=removal in_flight=1")
    dp.stop()
    cp.stop()


@check
def apps_rm_under_load_drains_every_node_without_failures():
    cp = Cp().start()
    deploy(cp, "slow", "slow.test", SLOW_APP)
    deploy(cp, "hello", "hello.test", COUNTER_APP)
    nodes = [DataPlane(cp, f"n{i}").start() for i in (1, 2)]
    for dp in nodes:
        dp.wait_body("slow.test", "slow done")
    results = []
    lock = threading.Lock()

    def one(dp):
        r = dp.get("slow.test", timeout=TIMEOUT)
        with lock:
            results.append((dp.node, r.status, r.text))

    threads = [threading.Thread(target=one, args=(dp,)) for dp in nodes for _ in range(3)]
    for t in threads:
        t.start()
    # Wait until every node reports them in flight.
    for dp in nodes:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            apps = {a["name"]: a for a in dp.status()["apps"]}
            if apps.get("slow", {}).get("in_flight", 0) >= 3:
                break
            time.sleep(0.02)
    cp.ok("apps", "rm", "slow")
    # Progress per node is visible while the requests finish.
    seen = ""
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        code, out, err = cp.ctl("apps", "status", "slow")
        seen = out
        if code == 0 and "n1" in out and "n2" in out and "draining" in out:
            break
        time.sleep(0.1)
    expect("n1" in seen and "n2" in seen and "draining" in seen,
           f"per-node drain progress in `nanoctl apps status`:\n{seen}")
    for t in threads:
        t.join(timeout=TIMEOUT)
    eq(len(results), 6, "every request answered")
    for node, status, text in results:
        eq((status, text), (200, "slow done"), f"in-flight request on {node}")
    for dp in nodes:
        dp.wait_log(r"cpclient\.drain_acked app=slow result=drained")
    # Gone from nanocp once both nodes acked; the other app is untouched.
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        code, out, err = cp.ctl("apps", "status", "slow")
        if code != 0 and "app_not_found" in err:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"slow still exists at nanocp:\n{out}{err}")
    for dp in nodes:
        eq(dp.get("slow.test").status, 404, "removed app")
        eq(dp.get("hello.test").status, 200, "other app")
    for dp in nodes:
        dp.stop()
    cp.stop()


SECRET = "s3cr3t-Value-9f2c"

VERSIONED_APP = """
const version = "VERSION";
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/env") {
      console.log("the token is", env.TOKEN);
      return Response.json({
        version,
        flags: env.FLAGS,
        tokenLength: env.TOKEN.length,
        processEnvSame: globalThis.process?.env?.TOKEN === env.TOKEN,
        frozen: Object.isFrozen(env),
      });
    }
    if (url.pathname === "/stream") {
      let i = 0;
      const stream = new ReadableStream({
        async pull(controller) {
          await new Promise((r) => setTimeout(r, 100));
          controller.enqueue(new TextEncoder().encode(`${version}:${i}\\n`));
          if (++i === 15) controller.close();
        },
      });
      return new Response(stream);
    }
    return new Response(version);
  },
};
"""


@check
def secrets_json_vars_and_a_redeploy_reach_every_node():
    cp = Cp().start()
    cp.ok("apps", "create", "api", "--host", "api.test", "--node-compat")
    cp.ok("env", "set", "api", "--json", 'FLAGS={"beta":true,"tiers":[1,2]}')
    code, out, err = cp.ctl("secret", "set", "api", "TOKEN", stdin=SECRET)
    eq(code, 0, f"secret set: {out} {err}")
    cp.ok("apps", "deploy", "api", app_js(cp, "api", VERSIONED_APP.replace("VERSION", "v1")))
    nodes = [DataPlane(cp, f"n{i}").start() for i in (1, 2)]
    for dp in nodes:
        dp.wait_body("api.test", "v1")
        r = dp.get("api.test", "/env")
        eq(r.status, 200, f"{dp.node} /env")
        eq(json.loads(r.text), {"version": "v1", "flags": {"beta": True, "tiers": [1, 2]},
                                "tokenLength": len(SECRET), "processEnvSame": True,
                                "frozen": True}, f"{dp.node} env")
        # The app logged the secret: the runtime masks it; no log line holds the value.
        dp.wait_log(r"the token is \[REDACTED\]")
        expect(SECRET not in dp.log(), f"{dp.node}: the secret value is in the log")
    # A new secret value is live on the next request too.
    code, out, err = cp.ctl("secret", "set", "api", "TOKEN", stdin=SECRET + "-2")
    eq(code, 0, f"secret set again: {err}")
    for dp in nodes:
        deadline = time.monotonic() + TIMEOUT
        while json.loads(dp.get("api.test", "/env").text)["tokenLength"] != len(SECRET) + 2:
            expect(time.monotonic() < deadline, f"{dp.node}: new secret never applied")
            time.sleep(0.05)
    # Redeploy under load on both nodes, with a streaming response in flight on each: no
    # request fails, the streams finish on v1, and v2 is served after.
    streams, statuses, lock = [], [], threading.Lock()
    stop = threading.Event()

    def stream(dp):
        r = dp.get("api.test", "/stream", timeout=TIMEOUT)
        with lock:
            streams.append((dp.node, r.status, r.text))

    def load(dp):
        while not stop.is_set():
            r = dp.get("api.test")
            with lock:
                statuses.append((dp.node, r.status, r.text))

    threads = [threading.Thread(target=stream, args=(dp,)) for dp in nodes]
    threads += [threading.Thread(target=load, args=(dp,)) for dp in nodes]
    for t in threads:
        t.start()
    time.sleep(0.3)  # the streams have started
    cp.ok("apps", "deploy", "api", app_js(cp, "api2", VERSIONED_APP.replace("VERSION", "v2")))
    for dp in nodes:
        dp.wait_body("api.test", "v2")
    time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join(timeout=TIMEOUT)
    bad = [s for s in statuses if s[1] != 200]
    eq(bad, [], "non-200 answers during the redeploy")
    expect(any(t == "v1" for _, _, t in statuses) and any(t == "v2" for _, _, t in statuses),
           f"the load saw both versions ({len(statuses)} requests)")
    eq(len(streams), 2, "both streams answered")
    for node, status, text in streams:
        eq(status, 200, f"{node} stream status")
        eq(text, "".join(f"v1:{i}\n" for i in range(15)), f"{node} stream body")
    for dp in nodes:
        dp.wait_log(r"dp\.config_applied trigger=control-plane .*redeployed=1")
        dp.stop()
    cp.stop()


@check
def tls_between_nanocp_and_nano_dp():
    c = nanotest.make_certs(scratch_dir())
    cp = Cp(scheme="tls+tcp", extra=[
        "--dataplane-tls-cert", c["server.crt"], "--dataplane-tls-key", c["server.key"],
        "--dataplane-tls-ca", c["ca.crt"]]).start()
    cp.ok("apps", "create", "api", "--host", "api.test")
    code, out, err = cp.ctl("secret", "set", "api", "TOKEN", stdin=SECRET)
    eq(code, 0, f"secret set: {err}")
    cp.ok("apps", "deploy", "api", app_js(cp, "api", VERSIONED_APP.replace("VERSION", "tls")))
    good = DataPlane(cp, "n1", extra=["--control-plane-ca", c["ca.crt"], "--control-plane-cert",
                                      c["client.crt"], "--control-plane-key", c["client.key"]])
    good.start()
    good.wait_body("api.test", "tls")
    eq(json.loads(good.get("api.test", "/env").text)["tokenLength"], len(SECRET), "secret over TLS")
    expect(not re.search(r"cpclient\.insecure", good.log()), f"insecure warning over TLS:\n{good.log()}")
    # Without a client certificate nanocp refuses the handshake: the node never gets a config.
    nocert = DataPlane(cp, "n2", extra=["--control-plane-ca", c["ca.crt"]]).start()
    nocert.wait_log(r"cpclient\.reconnecting")
    eq(nocert.status("/readyz").status, 503, "no config without a client certificate")
    # A CA that did not sign nanocp's certificate: refused too.
    other = nanotest.make_certs(scratch_dir())
    wrong = DataPlane(cp, "n3", extra=["--control-plane-ca", other["ca.crt"], "--control-plane-cert",
                                       other["client.crt"], "--control-plane-key", other["client.key"]])
    wrong.start()
    wrong.wait_log(r"cpclient\.reconnecting")
    eq(wrong.status("/readyz").status, 503, "no config from a server the CA did not sign")
    for dp in (good, nocert, wrong):
        dp.stop()
    cp.stop()


@check
def an_app_nanocp_cannot_send_is_withheld_and_the_others_still_go():
    """A stored value the protocol refuses (written by an older nanocp or by hand: an env name
    with a space) once made every snapshot fail, so new nodes got nothing and running ones
    stopped applying changes. Now that app alone is withheld: running nodes keep it, new nodes
    serve the rest, operators are told, and a fix reaches every node."""
    import sqlite3
    cp = Cp().start()
    deploy(cp, "good", "good.test", COUNTER_APP)
    deploy(cp, "bad", "bad.test", COUNTER_APP)
    cp.ok("env", "set", "bad", "GREETING=old")
    n1 = DataPlane(cp, "n1").start()
    n1.wait_body("bad.test", "old ")
    n1.wait_body("good.test", "unset ")
    cp.stop()
    db = sqlite3.connect(os.path.join(cp.data_dir, "nanocp.db"), timeout=5)
    db.execute("INSERT INTO env_vars (app_id, name, value, updated_at) SELECT id, 'BAD NAME',"
               " '\"x\"', 'now' FROM apps WHERE name = 'bad'")
    db.commit()
    cp.start()
    n1.wait_log(r"cpclient\.app_withheld app=bad kept=yes")
    n1.wait_log(r"cpclient\.snapshot_applied why=reconnect")
    eq(n1.get("bad.test").text.split()[0], "old", "n1 keeps serving what it had of bad")
    n2 = DataPlane(cp, "n2").start()
    n2.wait_ready()
    n2.wait_body("good.test", "unset ")
    eq(n2.get("bad.test").status, 404, "a new node gets none of a withheld app")
    cp.wait_log(r"cp\.snapshot_app_withheld app=bad error_id=msg_field error=vars\.BAD NAME")
    code, out, err = cp.ctl("apps", "status", "bad")
    eq(code, 0, err)
    expect("distribution:   WITHHELD from data planes: vars.BAD NAME: is not a valid env name"
           in out, out)
    dist = cp.ctl_json("apps", "status", "bad")["distribution"]
    eq(dist["state"], "withheld", str(dist))
    eq(cp.ctl_json("apps", "status", "good")["distribution"], {"state": "ok"}, "good is sent")
    # Deltas still flow for the others.
    cp.ok("env", "set", "good", "GREETING=new")
    for dp in (n1, n2):
        dp.wait_body("good.test", "new ")
    # Fixed by hand, then changed: the op on a withheld app makes each node resync.
    db.execute("DELETE FROM env_vars WHERE name = 'BAD NAME'")
    db.commit()
    db.close()
    eq(cp.ctl_json("apps", "status", "bad")["distribution"], {"state": "ok"}, "fixed")
    cp.ok("env", "set", "bad", "GREETING=fixed")
    for dp in (n1, n2):
        dp.wait_body("bad.test", "fixed ")
    n1.wait_log(r"app_withheld.*resyncing")
    for dp in (n1, n2):
        dp.stop()
    cp.stop()


BACKUP_APP = """
export default {
  async fetch(request, env) {
    return Response.json({k: env.K ?? null, tokenLength: env.TOKEN ? env.TOKEN.length : -1});
  },
};
"""


def nanocp_cmd(*args):
    """Runs a nanocp subcommand (backup, restore); returns (exit code, stdout, stderr)."""
    p = subprocess.run([nanotest.NANOCP, *args], capture_output=True, text=True,
                       timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


@check
def backup_under_writes_restores_every_acknowledged_change_and_nodes_resync():
    secret = "backup-secret-" + os.urandom(8).hex()
    cp = Cp().start()
    cp.never_log.append(secret)
    deploy(cp, "bk", "bk.test", BACKUP_APP)
    status, _, _ = cp.http("PUT", "/v1/apps/bk/secrets/TOKEN", secret, content_type="text/plain")
    eq(status, 200, "secret set")
    dp = DataPlane(cp, "n1").start()
    dp.wait_body("bk.test", '{"k":null,"tokenLength":%d}' % len(secret))

    # A stream of env changes; each one acknowledged (200) is recorded.
    acked = []
    stop = threading.Event()
    failures = []

    def writer():
        i = 0
        while not stop.is_set() and i < 5000:
            i += 1
            st, body, _ = cp.http("PATCH", "/v1/apps/bk/env", {"K": str(i)})
            if st != 200:
                failures.append((i, st, body))
                return
            acked.append(i)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    deadline = time.monotonic() + TIMEOUT
    while len(acked) < 50 and time.monotonic() < deadline:
        time.sleep(0.01)
    backup_dir = scratch_dir()
    backup, key = os.path.join(backup_dir, "nanocp.backup"), os.path.join(backup_dir, "master.key")
    before = acked[-1]  # acknowledged before the backup began: must all be in it
    code, out, err = nanocp_cmd("backup", "--data-dir", cp.data_dir, "--key-out", key, backup)
    eq(code, 0, f"nanocp backup: {out} {err}")
    after = len(acked) + 1  # at most one more was in flight when the copy was taken
    time.sleep(0.2)  # writes go on after the backup
    stop.set()
    t.join(TIMEOUT)
    expect(not failures, f"writes failed during the backup: {failures[:3]}")
    expect(len(acked) > after, f"writes went on after the backup ({len(acked)} vs {after})")
    expect(re.search(r"backup \S+: schema \d{4}, config seq \d+, 1 app, 1 secret sealed with "
                     r"master key [0-9a-f]{8}", out), out)
    expect(secret not in out + err, "the secret is not printed")
    eq(oct(os.stat(backup).st_mode & 0o777), "0o600", "backup file mode")
    eq(oct(os.stat(key).st_mode & 0o777), "0o600", "key file mode")
    dp.wait_body("bk.test", '{"k":"%d"' % acked[-1])  # the node had the newest value
    code, _, err = nanocp_cmd("backup", "--data-dir", cp.data_dir, backup)
    expect(code == 1 and "already exists" in err, f"a backup never overwrites: {code} {err}")

    # Losing the management host: a fresh data dir from the backup, with the key and the
    # token files the operator kept; the same addresses.
    cp.stop()
    old_dir, new_dir = cp.data_dir, scratch_dir()
    code, out, err = nanocp_cmd("restore", "--data-dir", new_dir, backup)
    expect(code == 1 and "no key is given" in err, f"restore without the key: {code} {err}")
    expect(not os.path.exists(os.path.join(new_dir, "nanocp.db")), "nothing restored")
    code, out, err = nanocp_cmd("restore", "--data-dir", new_dir, "--master-key-file", key,
                                backup)
    eq(code, 0, f"nanocp restore: {out} {err}")
    code, _, err = nanocp_cmd("restore", "--data-dir", new_dir, "--master-key-file", key, backup)
    expect(code == 1 and "exists" in err, f"a second restore over it is refused: {err}")
    for name in ("admin.token", "node.token"):
        shutil.copy2(os.path.join(old_dir, name), os.path.join(new_dir, name))
    cp.data_dir = new_dir
    cp.args += ["--master-key-file", key]
    cp.start()
    restored = int(cp.get("/v1/apps/bk/env")["vars"]["K"])
    expect(before <= restored <= after,
           f"restored K={restored}: every change acknowledged before the backup ({before}) "
           f"and none after it ended ({after})")
    # The node had a newer config (a higher seq) than the restored store: it takes the
    # restored one on reconnect, secrets decrypted, and follows changes made after it.
    dp.wait_log(r"cpclient\.snapshot_applied why=reconnect")
    dp.wait_body("bk.test", '{"k":"%d","tokenLength":%d}' % (restored, len(secret)))
    cp.ok("env", "set", "bk", "K=after-restore")
    dp.wait_body("bk.test", '{"k":"after-restore"')
    print(f"     {before} changes acknowledged before the backup, {len(acked)} in all; restored "
          f"K={restored}; the node resynced down to it and took the next change")
    dp.stop()
    cp.stop()


if __name__ == "__main__":
    run()
