"""Many apps on one nano-dp (issue 6): routing by Host, isolation, limits, live config
changes, env and secrets, status and metrics, drains and redeploys under load."""
import json
import os
import signal
import sys
import re
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nanotest import TIMEOUT, Conn, ConfigServer, build_request, check, eq, expect, run  # noqa: E402

# Module state (a counter), globals and env, so isolation and survival can be observed.
COUNTER_APP = """
let count = 0;
globalThis.leak = (globalThis.leak ?? '') + 'APPNAME';
export default {
  async fetch(request, env) {
    count++;
    const url = new URL(request.url);
    if (url.pathname === '/slow') {
      await new Promise((r) => setTimeout(r, Number(url.searchParams.get('ms') ?? 500)));
    }
    if (url.pathname === '/stream') {
      let i = 0;
      const body = new ReadableStream({
        async pull(c) {
          await new Promise((r) => setTimeout(r, 50));
          if (i++ === 10) { c.close(); return; }
          c.enqueue(new TextEncoder().encode('chunk' + i + ';'));
        },
      });
      return new Response(body);
    }
    return Response.json({ app: 'APPNAME', version: 'VERSION', count, leak: globalThis.leak,
                           env: { ...env }, path: url.pathname });
  },
};
"""


def counter_app(name, version="v1"):
    return COUNTER_APP.replace("APPNAME", name).replace("VERSION", version)


LOOP_APP = """
export default {
  fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === '/loop') { for (;;) {} }
    if (url.pathname === '/bomb') {
      const keep = [];
      for (;;) keep.push(new Array(100000).fill(Math.random()));
    }
    globalThis.hits = (globalThis.hits ?? 0) + 1;
    return new Response('alive ' + globalThis.hits);
  },
};
"""


def get(s, host, path="/", timeout=10):
    return s.request("GET", path, host=host, timeout=timeout)


def get_json(s, host, path="/"):
    r = get(s, host, path)
    eq(r.status, 200, f"GET {host}{path}: {r.text}")
    return json.loads(r.body)


def two_apps(extra_a=None, extra_b=None):
    a = {"name": "alpha", "hostname": "alpha.test", "path": "./alpha.js",
         "env": {"WHO": "alpha", "FLAGS": {"beta": True}}}
    b = {"name": "beta", "hostnames": ["beta.test", "*.beta.test"], "path": "./beta.js",
         "env": {"WHO": "beta"}}
    a.update(extra_a or {})
    b.update(extra_b or {})
    return {"apps": [a, b]}


FILES = {"alpha.js": counter_app("alpha"), "beta.js": counter_app("beta")}


@check
def two_apps_on_one_port_are_isolated_globals_env_and_module_state():
    with ConfigServer(two_apps(), FILES) as s:
        for _ in range(3):
            a = get_json(s, "alpha.test")
        b = get_json(s, "beta.test")
        eq((a["app"], a["count"], a["leak"]), ("alpha", 3, "alpha"), "alpha state")
        eq((b["app"], b["count"], b["leak"]), ("beta", 1, "beta"), "beta sees none of alpha")
        eq(a["env"], {"WHO": "alpha", "FLAGS": {"beta": True}}, "alpha env (JSON var parsed)")
        eq(b["env"], {"WHO": "beta"}, "beta env")
        eq(get_json(s, "x.beta.test")["app"], "beta", "wildcard host")
        eq(get_json(s, "ALPHA.test:8080")["app"], "alpha", "host case and port ignored")
        r = get(s, "nobody.test")
        eq(r.status, 404, "unknown host")


@check
def path_prefix_and_default_app_route():
    cfg = {"apps": [
        {"name": "site", "hostname": "site.test", "path": "./alpha.js"},
        {"name": "api", "hostname": "site.test", "path_prefix": "/api", "path": "./beta.js"},
        {"name": "fallback", "default": True, "path": "./alpha.js"},
    ]}
    with ConfigServer(cfg, FILES) as s:
        eq(get_json(s, "site.test", "/api/users")["app"], "beta", "prefix /api")
        eq(get_json(s, "site.test", "/api")["app"], "beta", "prefix itself")
        eq(get_json(s, "site.test", "/apix")["app"], "alpha", "not a whole segment")
        eq(get_json(s, "other.test", "/")["app"], "alpha", "default app")


def hammer(s, host, stop, results, path="/"):
    """Requests on keep-alive connections until stop is set; statuses into results."""
    while not stop.is_set():
        try:
            with Conn(s.port, timeout=10) as c:
                for _ in range(50):
                    if stop.is_set():
                        break
                    c.send(build_request("GET", path, host=host))
                    r = c.read_response()
                    results.append(r.status)
                    if r.header("connection") == "close":
                        break
        except (OSError, EOFError, AssertionError) as e:
            results.append(f"error: {e}")


@check
def an_infinite_loop_gets_500_within_the_cpu_limit_while_another_app_keeps_serving():
    cfg = {"apps": [
        {"name": "looper", "hostname": "loop.test", "path": "./loop.js", "limits": {"cpu_ms": 50}},
        {"name": "calm", "hostname": "calm.test", "path": "./alpha.js"},
    ]}
    files = {"loop.js": LOOP_APP, "alpha.js": counter_app("calm")}
    with ConfigServer(cfg, files, args=["--threads", "2"]) as s:
        eq(get(s, "loop.test", "/").status, 200, "looper warm")
        stop, results = threading.Event(), []
        t = threading.Thread(target=hammer, args=(s, "calm.test", stop, results))
        t.start()
        try:
            while len(results) < 5:
                time.sleep(0.01)
            times = []
            before_loops = len(results)
            for _ in range(3):
                t0 = time.monotonic()
                r = get(s, "loop.test", "/loop")
                times.append(time.monotonic() - t0)
                eq(r.status, 500, "the looping request")
            during_loops = len(results) - before_loops
            # The isolate survives: module state and all.
            r = get(s, "loop.test", "/")
            eq(r.status, 200, "looper after the kills")
            expect(r.text.startswith("alive "), r.text)
            # The calm app goes on serving afterwards too (bounded wait: a loaded machine).
            deadline = time.monotonic() + 5
            after = len(results)
            while len(results) < after + 5 and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            stop.set()
            t.join(15)
        expect(max(times) < 1.0, f"500 took {times} s (limit 50 ms CPU)")
        bad = [x for x in results if x != 200]
        # Served while the loops ran, and every answer a 200 (how many depends on the machine's
        # load: the number is not the point, that none failed and some went through is).
        expect(during_loops >= 1 and len(results) >= after + 5 and not bad,
               f"calm app: {during_loops} requests during the loops, {len(results)} in all, "
               f"bad: {bad[:5]}")
        st = {a["name"]: a for a in s.status()["apps"]}
        eq(st["looper"]["cpu_limit_kills"], 3, "cpu kills in /status")
        s.wait_count(r"app\.cpu_limit app=looper", 3)
        # Each kill names its request as the access log does; a limit is no runtime failure.
        killed = set(re.findall(r"app\.cpu_limit app=looper request_id=([0-9a-f]+)", s.log()))
        s.wait_count(r"access app=looper method=GET path=/loop status=500", 3)
        answered = set(re.findall(r"access app=looper method=GET path=/loop status=500 "
                                  r"bytes=\d+ duration_ms=[\d.]+ request_id=([0-9a-f]+)", s.log()))
        eq((len(killed), killed), (3, answered), "request ids of the kills and their 500s")
        expect("dispatch_failed" not in s.log(), "a CPU kill is logged as a runtime failure")


@check
def a_memory_bomb_discards_that_isolate_and_the_app_recovers():
    cfg = {"apps": [
        {"name": "bomber", "hostname": "bomb.test", "path": "./loop.js",
         "limits": {"memory_mb": 32, "cpu_ms": 10000}},
        {"name": "calm", "hostname": "calm.test", "path": "./alpha.js"},
    ]}
    files = {"loop.js": LOOP_APP, "alpha.js": counter_app("calm")}
    with ConfigServer(cfg, files) as s:
        eq(get(s, "bomb.test").text, "alive 1", "before")
        before = get_json(s, "calm.test")["count"]
        r = get(s, "bomb.test", "/bomb", timeout=30)
        eq(r.status, 503, "the request in flight when its isolate broke")
        expect("dispatch_failed" not in s.log(), "a heap-limit stop is logged as a runtime failure")
        eq(get(s, "bomb.test").text, "alive 1", "a fresh isolate (module state reset)")
        eq(get_json(s, "calm.test")["count"], before + 1, "the other app kept its isolate")
        st = {a["name"]: a for a in s.status()["apps"]}
        eq(st["bomber"]["memory_limit_kills"], 1, "memory kills in /status")
        s.wait_log(r"app\.memory_limit app=bomber")


@check
def config_change_is_applied_live_and_a_bad_config_is_rejected():
    with ConfigServer(two_apps(), FILES) as s:
        eq(get_json(s, "alpha.test")["count"], 1, "first")
        cfg = two_apps()
        cfg["apps"].append({"name": "gamma", "hostname": "gamma.test", "path": "./alpha.js"})
        s.write_config(cfg)
        s.wait_log(r"dp\.config_applied trigger=file version=2 apps=3 added=1")
        eq(get_json(s, "gamma.test")["count"], 1, "gamma added")
        eq(get_json(s, "alpha.test")["count"], 2, "alpha kept its isolate")
        s.write_config('{"apps": [ {"name": "Bad Name!", "path": "./alpha.js"} ]')
        s.wait_log(r"dp\.config_rejected trigger=file version_kept=2 .*error=")
        s.write_config({"apps": [{"name": "alpha", "hostname": "alpha.test", "path": "./none.js"}]})
        s.wait_log(r"dp\.config_rejected .*none\.js")
        eq(get_json(s, "gamma.test")["count"], 2, "still serving the last good config")
        eq(s.status()["config_version"], 2, "status version")
        s.write_config(cfg)
        s.wait_log(r"dp\.config_applied trigger=file version=3 apps=3 added=0 redeployed=0")
        eq(get_json(s, "alpha.test")["count"], 3, "an unchanged app keeps its isolate")
        # SIGHUP reloads too (nothing changed: nothing redeployed) ...
        s.signal(signal.SIGHUP)
        s.wait_log(r"dp\.config_applied trigger=SIGHUP version=4 .*redeployed=0")
        # ... and module files are watched: an edit is a reload (changed code: a redeploy).
        s.write_file("alpha.js", counter_app("alpha", "v2"))
        s.wait_log(r"dp\.config_applied trigger=module version=5 .*redeployed=2")  # alpha, gamma
        eq(get_json(s, "alpha.test")["version"], "v2", "new code after the module's edit")


@check
def env_change_applies_to_the_next_request_and_module_state_survives():
    with ConfigServer(two_apps(), FILES) as s:
        eq(get_json(s, "alpha.test")["env"]["WHO"], "alpha", "before")
        slow = {}

        def slow_request():
            slow["r"] = get_json(s, "alpha.test", "/slow?ms=800")

        t = threading.Thread(target=slow_request)
        t.start()
        time.sleep(0.3)
        s.write_config(two_apps({"env": {"WHO": "changed"}}))
        s.wait_log(r"dp\.config_applied .*env_changed=1")
        a = get_json(s, "alpha.test")
        t.join(10)
        eq(a["env"]["WHO"], "changed", "the next request sees the new env")
        eq(a["count"], 3, "module counter not reset")
        eq(slow["r"]["env"]["WHO"], "alpha", "the in-flight request kept its env")


@check
def secret_values_are_masked_in_console_output_and_errors():
    app = """
export default {
  fetch(request, env) {
    console.log('token is', env.TOKEN, 'and key', env.KEY);
    if (new URL(request.url).pathname === '/throw') throw new Error('bad ' + env.TOKEN);
    return new Response(env.TOKEN === 's3cr3t-value' && env.KEY === 'from-a-file' ? 'ok' : 'no');
  },
};
"""
    cfg = {"apps": [{"name": "sec", "hostname": "sec.test", "path": "./sec.js",
                     "secrets": {"TOKEN": "s3cr3t-value", "KEY": {"fromFile": "./key.txt"}}}]}
    with ConfigServer(cfg, {"sec.js": app, "key.txt": "from-a-file\n"}) as s:
        eq(get(s, "sec.test").text, "ok", "the app sees the secrets")
        eq(get(s, "sec.test", "/throw").status, 500, "throws")
        s.wait_log(r"token is \[REDACTED\] and key \[REDACTED\]")
        s.wait_log(r"bad \[REDACTED\]")
        log = s.log()
        expect("s3cr3t-value" not in log and "from-a-file" not in log, "a secret leaked:\n" + log)


@check
def status_and_metrics_match_the_traffic():
    with ConfigServer(two_apps(), FILES) as s:
        for _ in range(7):
            get(s, "alpha.test")
        for _ in range(3):
            get(s, "beta.test")
        get(s, "nobody.test")
        eq(s.status("/healthz").status, 200, "healthz")
        eq(s.status("/readyz").status, 200, "readyz")
        st = s.status()
        apps = {a["name"]: a for a in st["apps"]}
        eq((apps["alpha"]["requests"], apps["beta"]["requests"]), (7, 3), "requests")
        eq((apps["alpha"]["state"], apps["alpha"]["isolates"], apps["alpha"]["in_flight"]),
           ("active", 1, 0), "alpha state")
        eq(st["config_version"], 1, "config version")
        m = s.status("/metrics").text
        expect('nano_app_requests_total{app="alpha"} 7' in m, m)
        expect('nano_app_request_duration_seconds_count{app="beta"} 3' in m, m)
        expect('nano_app_request_duration_seconds_bucket{app="alpha",le="+Inf"} 7' in m, m)
        s.wait_count(r"access app=alpha method=GET path=/ status=200", 7)


def wait_until(cond, what, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.02)


def load(s, host, stop, results, path="/slow?ms=150"):
    """Closed-loop load: one request per connection, each recorded as status or error."""
    while not stop.is_set():
        try:
            r = get(s, host, path)
            results.append(r.status)
        except (OSError, EOFError, AssertionError) as e:
            results.append(f"error: {e}")


@check
def removal_under_load_gives_503_to_new_requests_and_lets_in_flight_ones_finish():
    app = counter_app("alpha").replace("export default {", """
addEventListener('shutdown', (e) => e.waitUntil(new Promise((r) => setTimeout(() => {
  console.log('shutdown-event-done'); r(); }, 1500))));
export default {""", 1)
    with ConfigServer(two_apps(), {"alpha.js": app, "beta.js": FILES["beta.js"]},
                      args=["--threads", "2"]) as s:
        stop, results = threading.Event(), []
        threads = [threading.Thread(target=load, args=(s, "alpha.test", stop, results))
                   for _ in range(8)]
        for t in threads:
            t.start()
        wait_until(lambda: results.count(200) >= 8, "the load is flowing")
        before = len(results)
        s.write_config({"apps": [two_apps()["apps"][1]]})
        s.wait_log(r"app\.draining app=alpha")
        # New requests get 503 while the app drains and its shutdown event runs (1.5 s);
        # once it is gone, its host is unknown (404): stop the load before that.
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(15)
        # Each worker that holds the app drains it on its own: wait for all of them.
        s.wait_log(r"shutdown-event-done")
        draining = len(re.findall(r"app\.draining app=alpha", s.log()))
        s.wait_count(r"app\.drained app=alpha", draining)
        ok = results.count(200)
        r503 = results.count(503)
        failed = [x for x in results if x not in (200, 503)]
        print(f"removal: sent={len(results)} completed_200={ok} rejected_503={r503} "
              f"failed={len(failed)} (200s before the change: {before})")
        expect(not failed, f"failures: {failed[:5]}")
        expect(ok > before and r503 > 0, f"200={ok} 503={r503}")
        r = get(s, "alpha.test")
        eq(r.status, 404, "alpha is gone")


@check
def redeploy_under_load_has_no_errors_and_a_streaming_response_survives():
    with ConfigServer(two_apps(), FILES, args=["--threads", "2"]) as s:
        streamed = {}

        def stream():
            streamed["r"] = get(s, "alpha.test", "/stream", timeout=20)

        st = threading.Thread(target=stream)
        st.start()
        stop, results = threading.Event(), []
        threads = [threading.Thread(target=load, args=(s, "alpha.test", stop, results))
                   for _ in range(8)]
        for t in threads:
            t.start()
        wait_until(lambda: results.count(200) >= 8, "the load is flowing")
        s.write_file("alpha.js", counter_app("alpha", "v2"))
        s.write_config(two_apps({"env": {"WHO": "alpha", "FLAGS": {"beta": True}, "V": "2"}}))
        s.wait_log(r"dp\.config_applied .*redeployed=1")
        time.sleep(0.6)
        stop.set()
        for t in threads:
            t.join(15)
        st.join(20)
        bad = [x for x in results if x != 200]
        print(f"redeploy: sent={len(results)} completed_200={results.count(200)} "
              f"non_200={len(bad)}")
        expect(not bad, f"non-200 during the redeploy: {bad[:5]}")
        r = streamed["r"]
        eq((r.status, r.text), (200, "".join(f"chunk{i};" for i in range(1, 11))), "stream")
        eq(get_json(s, "alpha.test")["version"], "v2", "new code serves")


@check
def sigterm_drains_every_app_and_runs_their_shutdown_events():
    app = counter_app("alpha").replace("export default {", """
addEventListener('shutdown', (e) => e.waitUntil(Promise.resolve().then(
  () => console.log('bye from APP'))));
export default {""", 1)
    files = {"alpha.js": app.replace("APP", "alpha"), "beta.js": app.replace("APP", "beta")}
    with ConfigServer(two_apps(), files) as s:
        get(s, "alpha.test")
        get(s, "beta.test")
        s.signal(signal.SIGTERM)
        eq(s.wait_exit(), 0, "exit status")
        s.wait_log(r"bye from alpha")
        s.wait_log(r"bye from beta")
        s.wait_log(r"dp\.shutdown_done")


@check
def json_env_values_are_what_json_parse_makes_of_them():
    # nano-dp builds JSON vars from its own parse of the text; the app compares them with
    # JSON.parse of the same text, key order, number rounding and __proto__ keys included.
    # (No -0 or integers beyond int64: nano.json's parser, jansson, has neither.)
    raw = ('{"b": 1, "a": [1.5, -0.5, 1e300, 9007199254740993, -12.5e-3, "caf\u00e9 \u2713",'
           ' null, true, false, {"__proto__": {"x": 1}, "y": []}], "10": "ten", "2": "two",'
           ' "nested": {"deep": {"er": [[], {}]}}}')
    app = """
export default {
  fetch(request, env) {
    const same = (x, y) => {
      if (Object.is(x, y)) return true;
      if (typeof x !== 'object' || typeof y !== 'object' || x === null || y === null) return false;
      if (Array.isArray(x) !== Array.isArray(y)) return false;
      if (Object.getPrototypeOf(x) !== Object.getPrototypeOf(y)) return false;
      const kx = Reflect.ownKeys(x), ky = Reflect.ownKeys(y);
      return kx.length === ky.length && kx.every((k, i) => k === ky[i] && same(x[k], y[k]));
    };
    return Response.json({ same: same(env.J, JSON.parse(env.RAW)), frozen: Object.isFrozen(env.J.a[9]) });
  },
};
"""
    # The config as text, so that J is exactly RAW (a round trip through Python would turn
    # -0 into 0 and the big integer into an exact one).
    cfg = ('{"apps": [{"name": "j", "hostname": "j.test", "path": "./j.js", "env": {"J": ' + raw +
           ', "RAW": ' + json.dumps(raw) + '}}]}')
    with ConfigServer(cfg, {"j.js": app}) as s:
        eq(get_json(s, "j.test"), {"same": True, "frozen": True}, "env.J vs JSON.parse")


if __name__ == "__main__":
    run()
