#!/usr/bin/env python3
"""Hostile deploys (issue 18): a version of an app that does not load - a syntax error, no
default export, a throw at its top level - never becomes active, and the version before it
keeps serving with no failed request (the zero-downtime redeploy promise).

- nano.json: while clients of app A and of the bystander B keep requesting, a.js is replaced
  by a broken module and nano-dp reloads (SIGHUP): the reload is refused whole, the log says
  why with FILE:LINE:COLUMN, /status shows A's load_error, A answers 200 from the old
  version, B only 200s with p99 < 100 ms; then a good version goes live (file watcher). A
  top-level loop is cut at the check's CPU budget; an app that does not load at start
  answers 500 (nothing to keep) while the others serve, and /status says why.
- nanocp: `nanoctl apps deploy` of a broken module exits 1 with module_invalid and
  FILE:LINE:COLUMN, the HTTP API answers 400 module_invalid, no version is recorded, and a
  managed nano-dp keeps answering 200 from the old version.
- A node that gets a version nanocp did not check (nanocp --checker off, as an older nanocp
  would send it) keeps the previous version serving and reports the load error per node:
  in its /status and in `nanoctl apps status`.
"""
import os
import re
import signal
import threading
import time

import nanotest
from hostile import Bystander, log_figure, timed_request, two_apps
from nanotest import TIMEOUT, ControlPlane, Server, check, eq, expect, run, scratch_dir

A_V1 = "export default { fetch() { return new Response('a v1'); } };\n"
A_V2 = "export default { fetch() { return new Response('a v2'); } };\n"

# (source, the check's error id, where the log must say it is: FILE:LINE:COLUMN)
SYNTAX_ERROR = ("export default {\n  fetch() { return new Response('x') }\n}}\n",
                "module_syntax", r"a\.js:3:2: SyntaxError")
NO_DEFAULT = ("export function fetch() { return new Response('x'); }\n",
              "module_no_default", r"a\.js has no default export")
TOP_LEVEL_THROW = ("const config = JSON.parse('{}');\nif (!config.url) throw new Error('no url');\n"
                   "export default { fetch() { return new Response('x'); } };\n",
                   "module_threw", r"a\.js:2:24: evaluation threw: Error: no url")


def a_client(server):
    """A Bystander of app A: its own requests must all be answered 200 too."""
    return Bystander(server, host="a.test", interval=0.01)


def body_of(server, host):
    r, _ = timed_request(server, "/", host=host, timeout=TIMEOUT)
    expect(not isinstance(r, str), f"{host}: {r}")
    return r.status, r.text


def refused_reload(bad):
    source, error_id, where = bad
    with two_apps(A_V1) as s:
        eq(body_of(s, "a.test"), (200, "a v1"), "A before the reload")
        with Bystander(s) as b, a_client(s) as a:
            time.sleep(0.2)
            s.write_file("a.js", source)
            t0 = time.monotonic()
            s.signal(signal.SIGHUP)
            line = s.wait_log(r"dp\.config_(rejected|applied) trigger=SIGHUP [^\n]*").group(0)
            refused_ms = (time.monotonic() - t0) * 1000
            time.sleep(0.3)  # A goes on being served by the old version
        # What the clients saw first: only 200s, from the old version.
        eq(body_of(s, "a.test"), (200, "a v1"), "A after the reload")
        # A's own latency is not bounded here (the bystander B's is): only that every answer
        # was a 200 from the version that loads.
        a_line = a.check(min_requests=10, p99_ms=10_000)
        b.check()
        expect(f"dp.config_rejected trigger=SIGHUP version_kept=1 app=a error_id={error_id} "
               in line, f"the reload was not refused: {line}")
        expect(re.search(where, line), f"rejection line lacks /{where}/: {line}")
        s.wait_log(rf"dp\.version_refused app=a trigger=SIGHUP [^\n]*error_id={error_id} "
                   rf"error=[^\n]*{where}")
        st = s.status()
        app_a = next(x for x in st["apps"] if x["name"] == "a")
        eq(app_a.get("load_error", {}).get("code"), error_id, f"/status load_error: {app_a}")
        expect(re.search(where, app_a["load_error"]["message"]), f"/status: {app_a}")
        eq(st["config_version"], 1, "config version kept")
        expect(st["config_rejects"] >= 1, f"config_rejects: {st}")
        # A good version goes live through the file watcher, and the refusal is forgotten.
        s.write_file("a.js", A_V2)
        s.write_config({"apps": [{"name": "a", "hostname": "a.test", "path": "./a.js"},
                                 {"name": "b", "hostname": "b.test", "path": "./b.js"}]})
        s.wait_log(r"dp\.config_applied trigger=file version=2 [^\n]*redeployed=1")
        eq(body_of(s, "a.test"), (200, "a v2"), "A after the good version")
        st = s.status()
        app_a = next(x for x in st["apps"] if x["name"] == "a")
        expect("load_error" not in app_a, f"load_error after a good version: {app_a}")
        log_figure(f"{error_id}: reload refused {refused_ms:.0f} ms after SIGHUP; app A "
                   f"(all 200, from v1): {a_line.strip().replace('bystander: ', '')}")


@check
def nano_json_syntax_error_keeps_the_old_version():
    refused_reload(SYNTAX_ERROR)


@check
def nano_json_module_without_default_export_keeps_the_old_version():
    refused_reload(NO_DEFAULT)


@check
def nano_json_top_level_throw_keeps_the_old_version():
    refused_reload(TOP_LEVEL_THROW)


@check
def nano_json_start_with_a_broken_app_serves_the_others_and_reports_it():
    # The apps a node starts with are not checked (no version to keep; a check per app of a
    # 1,000-app file would cost minutes): A fails on its request, B serves, /status says why.
    with two_apps(SYNTAX_ERROR[0]) as s:
        eq(body_of(s, "b.test")[0], 200, "B")
        eq(body_of(s, "a.test")[0], 500, "A, which does not load")
        s.wait_log(r"app\.load_failed app=a [^\n]*error_id=module_syntax")
        app_a = next(x for x in s.status()["apps"] if x["name"] == "a")
        eq(app_a.get("load_error", {}).get("code"), "module_syntax", f"/status: {app_a}")
        s.write_file("a.js", A_V2)
        s.signal(signal.SIGHUP)
        s.wait_log(r"dp\.config_applied trigger=SIGHUP version=2 [^\n]*redeployed=1")
        eq(body_of(s, "a.test"), (200, "a v2"), "A after a version that loads")
        app_a = next(x for x in s.status()["apps"] if x["name"] == "a")
        expect("load_error" not in app_a, f"load_error after a good version: {app_a}")


@check
def nano_json_top_level_loop_is_refused_at_its_cpu_limit():
    # The check runs in a child process: the loop burns the checker's CPU, not the node's.
    # (Without the check, A's next request would load the loop on the shared worker thread
    # and B would starve.)
    loop = "let i = 0;\nwhile (true) i++;\nexport default { fetch() {} };\n"
    with two_apps(A_V1, a_limits={"cpu_ms": 200}) as s:
        with Bystander(s) as b:
            s.write_file("a.js", loop)
            t0 = time.monotonic()
            s.signal(signal.SIGHUP)
            line = s.wait_log(r"dp\.config_(rejected|applied) trigger=SIGHUP [^\n]*",
                              timeout=20).group(0)
            ms = (time.monotonic() - t0) * 1000
            r, _ = timed_request(s, "/", host="a.test", timeout=5)
            time.sleep(0.5)
        b.check()
        expect(not isinstance(r, str) and (r.status, r.text) == (200, "a v1"),
               f"A after the reload: {r}")
        expect("dp.config_rejected" in line and "error_id=module_timeout" in line, line)
        log_figure(f"top-level loop refused {ms:.0f} ms after SIGHUP (load CPU budget 1000 ms)")


# --- through nanocp --------------------------------------------------------------------------


class ManagedNode(Server):
    """nano-dp --control-plane on cp's data-plane channels, one worker thread."""

    def __init__(self, cp, node="n1"):
        super().__init__("", name="unused.js")
        self.cp = cp
        self.node = node

    def command(self):
        return [nanotest.BIN, "--control-plane", f"tcp://127.0.0.1:{self.cp.pub_port}",
                "--control-plane-rpc", f"tcp://127.0.0.1:{self.cp.dp_rpc_port}",
                "--node", self.node, "--node-token-file", self.cp.node_token_file,
                "--listen", "127.0.0.1:0", "--status-listen", "127.0.0.1:0", "--threads", "1"]

    def wait_body(self, host, want, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            r = self.request("GET", "/", host=host)
            last = (r.status, r.text)
            if last == (200, want):
                return
            time.sleep(0.05)
        raise AssertionError(f"{host} never answered {want!r} (last {last}); log:\n{self.log()}")


def module_file(name, source):
    path = os.path.join(scratch_dir(), name)
    with open(path, "w") as f:
        f.write(source)
    return path


def ok(cp, *args):
    code, out, err = cp.ctl(*args)
    eq(code, 0, f"nanoctl {' '.join(args)}: {out} {err}")
    return out


class Poller:
    """Requests host on node every 10 ms until stopped, recording (status, body)."""

    def __init__(self, node, host):
        self.node, self.host, self.results = node, host, []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                r = self.node.request("GET", "/", host=self.host)
                self.results.append((r.status, r.text))
            except (OSError, EOFError, AssertionError) as e:
                self.results.append((f"error: {e}", ""))
            time.sleep(0.01)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(TIMEOUT)


@check
def nanocp_refuses_a_broken_deploy_and_the_node_keeps_serving():
    cp = ControlPlane().start()
    node = ManagedNode(cp).start()
    ok(cp, "apps", "create", "hello", "--host", "hello.test")
    ok(cp, "apps", "deploy", "hello", module_file("index.js", A_V1))
    node.wait_body("hello.test", "a v1", timeout=15)
    cases = [("syntax.js", SYNTAX_ERROR[0], "module_syntax", r"syntax\.js:3:2: SyntaxError"),
             ("throws.js", TOP_LEVEL_THROW[0], "module_threw",
              r"throws\.js:2:24: evaluation threw: Error: no url")]
    with Poller(node, "hello.test") as p:
        for fname, source, error_id, where in cases:
            t0 = time.monotonic()
            code, out, err = cp.ctl("apps", "deploy", "hello", module_file(fname, source))
            ms = (time.monotonic() - t0) * 1000
            eq(code, 1, f"nanoctl apps deploy {fname} exit code ({out} {err})")
            expect("module_invalid" in err and re.search(where, err) and error_id in err,
                   f"nanoctl's error for {fname}: {err!r}")
            log_figure(f"nanoctl apps deploy {fname}: refused in {ms:.0f} ms: {err.strip()}")
        # The HTTP admin API: PUT /v1/apps/NAME/code with the module's bytes.
        status, body, _ = cp.http("PUT", "/v1/apps/hello/code", body=SYNTAX_ERROR[0],
                                  content_type="application/javascript")
        eq(status, 400, f"PUT code status ({body})")
        eq(body["error"]["code"], "module_invalid", f"PUT code error ({body})")
        expect(re.search(r"index\.js:3:2: SyntaxError", body["error"]["message"]),
               f"PUT code message: {body}")
        time.sleep(0.5)
    bad = [x for x in p.results if x != (200, "a v1")]
    expect(not bad and len(p.results) > 20,
           f"the node answered other than 200 'a v1': {bad[:5]} of {len(p.results)}")
    cp.wait_log(r"cp\.checker_ready checker=\S+nano-dp")
    listed = cp.ctl_json("deployments", "hello")
    versions = [d["version"] for d in listed["deployments"]]
    eq(versions, [1], "deployments recorded")
    cp.wait_log(r"cp\.deploy_refused app=hello error_id=module_syntax ")
    log_figure(f"node during the refused deploys: {len(p.results)} answers, all 200 'a v1'")
    node.stop()
    cp.stop()


NEEDS_ENV = """if (!process.env.DB_URL) throw new Error("DB_URL is required");
if (process.env.TOKEN !== "ok-token") throw new Error("unexpected token " + process.env.TOKEN);
export default { fetch() { return new Response("env ok"); } };
"""


@check
def nanocp_checks_with_the_apps_env_and_masks_secrets():
    # A node_compat app whose top level reads process.env loads where its env is set; the
    # check must see that env (a false refusal would block a good deploy), and a secret the
    # top level throws never appears in the refusal.
    cp = ControlPlane().start()
    ok(cp, "apps", "create", "envy", "--host", "envy.test", "--node-compat")
    code, out, err = cp.ctl("apps", "deploy", "envy", module_file("index.js", NEEDS_ENV))
    eq(code, 1, f"deploy without DB_URL ({out} {err})")
    expect("DB_URL is required" in err and "module_invalid" in err, err)
    ok(cp, "env", "set", "envy", "DB_URL=postgres://db")
    code, out, err = cp.ctl("secret", "set", "envy", "TOKEN", stdin="hunter2-secret")
    eq(code, 0, f"secret set ({out} {err})")
    code, out, err = cp.ctl("apps", "deploy", "envy", module_file("index.js", NEEDS_ENV))
    eq(code, 1, f"deploy with the wrong token ({out} {err})")
    expect("unexpected token [REDACTED]" in err and "hunter2-secret" not in err,
           f"the secret must be masked: {err}")
    expect("hunter2-secret" not in cp.log(), "the secret in nanocp's log")
    code, out, err = cp.ctl("secret", "set", "envy", "TOKEN", stdin="ok-token")
    eq(code, 0, f"secret set ({out} {err})")
    out = ok(cp, "apps", "deploy", "envy", module_file("index.js", NEEDS_ENV))
    expect("deployed version 1" in out, out)
    cp.stop()


ENV_V1 = "export default { fetch(r, env) { return new Response('v1 ' + (env.GREETING ?? 'unset')); } };\n"
ENV_V3 = "export default { fetch(r, env) { return new Response('v3 ' + (env.GREETING ?? 'unset')); } };\n"


@check
def a_node_keeps_the_previous_version_of_an_unchecked_deploy_and_reports_it():
    cp = ControlPlane(args=["--checker", "off"]).start()
    node = ManagedNode(cp).start()
    ok(cp, "apps", "create", "hello", "--host", "hello.test")
    ok(cp, "apps", "deploy", "hello", module_file("index.js", ENV_V1))
    node.wait_body("hello.test", "v1 unset", timeout=15)
    with Poller(node, "hello.test") as p:
        out = ok(cp, "apps", "deploy", "hello", module_file("index.js", SYNTAX_ERROR[0]))
        expect("deployed version 2" in out, out)  # nanocp did not check it: the node must
        node.wait_log(r"dp\.version_refused app=hello trigger=control-plane [^\n]*"
                      r"error_id=module_syntax error=[^\n]*index\.js:3:2: SyntaxError")
        time.sleep(0.5)
    bad = [x for x in p.results if x != (200, "v1 unset")]
    expect(not bad and len(p.results) > 20,
           f"the node answered other than 200 'v1 unset': {bad[:5]} of {len(p.results)}")
    st = node.status()
    app = next(x for x in st["apps"] if x["name"] == "hello")
    eq(app.get("load_error", {}).get("code"), "module_syntax", f"/status: {app}")
    # Other changes to the app still apply, to the version that serves.
    ok(cp, "env", "set", "hello", "GREETING=hi")
    node.wait_body("hello.test", "v1 hi")
    # nanocp hears it with the node's status (once a second) and nanoctl shows it per node.
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        got = cp.ctl_json("apps", "status", "hello")
        row = next((n for n in got.get("nodes", []) if n.get("node") == "n1"), {})
        if row.get("load_error"):
            break
        time.sleep(0.2)
    eq(row.get("load_error", {}).get("code"), "module_syntax", f"apps status JSON: {got}")
    eq(row.get("version"), 2, f"the version the node refused: {row}")
    text = ok(cp, "apps", "status", "hello")
    expect(re.search(r"n1: version 2 did not load: [^\n]*index\.js:3:2: SyntaxError[^\n]*"
                     r"\(module_syntax\)", text), f"nanoctl apps status:\n{text}")
    # A version that loads goes live, and the refusal is gone.
    ok(cp, "apps", "deploy", "hello", module_file("index.js", ENV_V3))
    node.wait_body("hello.test", "v3 hi")
    st = node.status()
    app = next(x for x in st["apps"] if x["name"] == "hello")
    expect("load_error" not in app, f"load_error after a good version: {app}")
    node.stop()
    cp.stop()


if __name__ == "__main__":
    run()
