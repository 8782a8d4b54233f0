#!/usr/bin/env python3
"""nano-dp --config watches the module files its apps name, like nano.json itself (issue 21,
item 4): an edit to an app's main module, or to a module it imports, is a zero-downtime
redeploy; a module that does not load is refused whole and the running version keeps serving;
one inotify watch per directory, following the applied config; a symlinked module, a
symlinked directory switched to another release, and a directory that disappears and comes
back."""
import json
import os
import shutil
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nanotest import TIMEOUT, ConfigServer, check, eq, expect, run  # noqa: E402

MAIN = """
import { greeting } from './lib/greet.js';
let count = 0;
export default {
  async fetch(request) {
    count++;
    return Response.json({ app: 'APP', version: 'VERSION', greeting, count });
  },
};
"""

# A syntax error: the closing brace of the object is missing.
BROKEN = "export default {\n  fetch() { return new Response('never'); },\n"


def main_js(app="web", version="v1"):
    return MAIN.replace("APP", app).replace("VERSION", version)


def greet_js(word):
    return f"export const greeting = {json.dumps(word)};\n"


def get_json(s, host):
    r = s.request("GET", "/", host=host)
    eq(r.status, 200, f"GET {host}: {r.text}")
    return json.loads(r.body)


def wait_for(cond, what, timeout=TIMEOUT):
    """Polls cond until it holds; returns the seconds it took."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.02)
    return time.monotonic() - t0


def load(s, host, stop, results):
    """Closed-loop load, one request per connection (so both worker threads get some): each
    recorded as (status, version) or ("error", why)."""
    while not stop.is_set():
        try:
            r = s.request("GET", "/", host=host, timeout=10)
            results.append((r.status, json.loads(r.body)["version"] if r.status == 200
                            else r.text))
        except (OSError, EOFError, AssertionError, ValueError) as e:
            results.append(("error", str(e)))


def inotify_watches(pid):
    """How many inotify watches the process holds (the kernel's count, over its fds)."""
    n = 0
    fdinfo = f"/proc/{pid}/fdinfo"
    for fd in os.listdir(fdinfo):
        try:
            with open(os.path.join(fdinfo, fd)) as f:
                n += sum(1 for line in f if line.startswith("inotify wd:"))
        except OSError:
            pass  # an fd closed meanwhile
    return n


def wait_watches(pid, want, what, timeout=5.0):
    """Waits until the process holds want inotify watches: dp.config_applied is logged before
    the file source moves its watches to the new config (main.c: apply_config, then
    watch_modules), so a count read right after the line can be the old one."""
    deadline = time.monotonic() + timeout
    while inotify_watches(pid) != want and time.monotonic() < deadline:
        time.sleep(0.02)
    eq(inotify_watches(pid), want, what)


@check
def module_edits_redeploy_with_no_failed_request_and_a_broken_module_is_refused():
    cfg = {"apps": [{"name": "web", "hostname": "web.test", "path": "./web.js"}]}
    files = {"web.js": main_js(), "lib/greet.js": greet_js("hello")}
    with ConfigServer(cfg, files, args=["--threads", "2"]) as s:
        eq(get_json(s, "web.test")["greeting"], "hello", "first")
        stop, results = threading.Event(), []
        threads = [threading.Thread(target=load, args=(s, "web.test", stop, results))
                   for _ in range(4)]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: len(results) >= 8, "the load is flowing")
            # The main module: a redeploy, no SIGHUP and no nano.json edit.
            t0 = time.monotonic()
            s.write_file("web.js", main_js(version="v2"))
            s.wait_log(r"dp\.config_applied trigger=module version=2 apps=1 added=0 "
                       r"redeployed=1")
            wait_for(lambda: get_json(s, "web.test")["version"] == "v2", "v2 serves")
            main_ms = (time.monotonic() - t0) * 1000
            # A module it imports: a redeploy too.
            t0 = time.monotonic()
            s.write_file("lib/greet.js", greet_js("hola"))
            s.wait_log(r"dp\.config_applied trigger=module version=3 .*redeployed=1")
            wait_for(lambda: get_json(s, "web.test")["greeting"] == "hola", "hola serves")
            import_ms = (time.monotonic() - t0) * 1000
            # A main module that does not load: refused whole, v2 serves on.
            s.write_file("web.js", BROKEN)
            s.wait_log(r"dp\.version_refused app=web trigger=module .*error_id=module_syntax "
                       r"error=[^\n]*web\.js:\d+")
            s.wait_log(r"dp\.config_rejected trigger=module version_kept=3 app=web "
                       r"error_id=module_syntax")
            time.sleep(0.3)  # the load goes on against the kept version
            r = get_json(s, "web.test")
            eq((r["version"], r["greeting"]), ("v2", "hola"), "the running version serves on")
            st = s.status()
            eq(st["config_version"], 3, "config version kept")
            eq(st["apps"][0].get("load_error", {}).get("code"), "module_syntax",
               f"/status load_error: {st['apps'][0]}")
            # Fixing it is a change like any other.
            s.write_file("web.js", main_js(version="v3"))
            s.wait_log(r"dp\.config_applied trigger=module version=4 .*redeployed=1")
            wait_for(lambda: get_json(s, "web.test")["version"] == "v3", "v3 serves")
            expect("load_error" not in s.status()["apps"][0], "load_error after the fix")
        finally:
            stop.set()
            for t in threads:
                t.join(15)
        bad = [x for x in results if x[0] != 200]
        versions = sorted({v for st, v in results if st == 200})
        print(f"watch: sent={len(results)} non_200={len(bad)} versions={versions} "
              f"main_edit_to_served_ms={main_ms:.0f} import_edit_to_served_ms={import_ms:.0f}")
        expect(not bad, f"failed requests during the swaps: {bad[:5]}")
        eq(versions, ["v1", "v2", "v3"], "versions the load saw")
        expect(main_ms < 5000 and import_ms < 5000,
               f"a module edit took {main_ms:.0f} / {import_ms:.0f} ms to serve")


BOMB_MAIN = """
import { greeting } from './lib/greet.js';
const keep = [];
export default {
  async fetch(request) {
    if (new URL(request.url).pathname === '/bomb') for (;;) keep.push({ n: keep.length, s: 'x' + keep.length });
    return Response.json({ greeting });
  },
};
"""


@check
def an_isolate_made_after_a_refused_import_edit_runs_the_versions_own_import():
    # The version's imports are the sources its config read: a later broken edit (refused)
    # never reaches an isolate made for that version afterwards (here: after a memory kill).
    cfg = {"apps": [{"name": "web", "hostname": "web.test", "path": "./web.js",
                     "limits": {"memory_mb": 32, "cpu_ms": 10000}}]}
    files = {"web.js": BOMB_MAIN, "lib/greet.js": greet_js("hello")}
    with ConfigServer(cfg, files) as s:
        eq(get_json(s, "web.test")["greeting"], "hello", "first")
        s.write_file("lib/greet.js", "export const greeting = ;\n")
        s.wait_log(r"dp\.version_refused app=web trigger=module .*error_id=module_syntax")
        r = s.request("GET", "/bomb", host="web.test", timeout=30)
        eq(r.status, 503, "the request in flight when its isolate hit the memory limit")
        s.wait_log(r"app\.isolate_discarded app=web")
        # A fresh isolate of the running version: its own greet.js, not the file on disk.
        eq(get_json(s, "web.test")["greeting"], "hello", "after the isolate was made again")
        expect("app.load_failed" not in s.log(), "a fresh isolate loaded the broken file")


ENV_MAIN = """
let count = 0;
export default { fetch(request, env) { count++; return Response.json({ env: { ...env }, count }); } };
"""


@check
def env_files_layer_and_an_edit_to_one_applies_live():
    cfg = {"apps": [{"name": "web", "hostname": "web.test", "path": "./web.js",
                     "env_files": [".env", ".env.production"], "env": {"C": "json"}}]}
    files = {"web.js": ENV_MAIN, ".env": "A=base\nB=base\nC=base\n",
             ".env.production": "B=prod\n"}
    with ConfigServer(cfg, files) as s:
        r = get_json(s, "web.test")
        eq(r["env"], {"A": "base", "B": "prod", "C": "json"}, "layered env")
        s.write_file(".env.production", "B=prod2\nD=new\n")
        wait_for(lambda: get_json(s, "web.test")["env"].get("D") == "new", "the edit applies")
        r = get_json(s, "web.test")
        eq(r["env"], {"A": "base", "B": "prod2", "C": "json", "D": "new"}, "after the edit")
        expect(r["count"] >= 3, f"module state kept (no redeploy): {r}")
        s.wait_log(r"dp\.config_applied trigger=module .*env_changed=1")
        # A broken env file refuses the reload whole; the running env serves on.
        s.write_file(".env", "A=1\nB=\"open\n")
        s.wait_log(r"dp\.config_rejected .*\.env:2")
        eq(get_json(s, "web.test")["env"]["A"], "base", "kept after a refused edit")


@check
def one_watch_per_directory_following_the_applied_config():
    # Three apps in one directory share its watch, and the module they all import is in a
    # second one: two watches, whatever the number of apps.
    apps = [{"name": n, "hostname": f"{n}.test", "path": f"./{n}.js"} for n in ("a", "b", "c")]
    files = {f"{n}.js": main_js(n) for n in ("a", "b", "c")}
    files["lib/greet.js"] = greet_js("hello")
    with ConfigServer({"apps": apps}, files) as s:
        pid = s.proc.pid
        # (A symlink above the scratch directory, /tmp on some systems, is watched too.)
        parts = s.dir.split("/")
        links = {"/".join(parts[:i - 1]) or "/" for i in range(2, len(parts) + 1)
                 if os.path.islink("/".join(parts[:i]))}
        base = len(links)
        eq(inotify_watches(pid), base + 2, "watches for nano.json's directory and lib/")
        # An app added in a directory of its own: watched once the config is applied.
        d_js = main_js("d").replace("./lib/", "../lib/")  # the same lib/
        s.write_file("more/d.js", d_js)
        s.write_config({"apps": apps + [{"name": "d", "hostname": "d.test",
                                         "path": "./more/d.js"}]})
        s.wait_log(r"dp\.config_applied trigger=file version=2 apps=4 added=1")
        wait_watches(pid, base + 3, "more/ watched")
        s.write_file("more/d.js", d_js.replace("v1", "v2"))
        s.wait_log(r"dp\.config_applied trigger=module version=3 .*redeployed=1")
        eq(get_json(s, "d.test")["version"], "v2", "d's edit")
        # Removed again: its directory is not watched any more, and its edits do nothing.
        s.write_config({"apps": apps})
        s.wait_log(r"dp\.config_applied trigger=file version=4 apps=3 .*removed=1")
        wait_watches(pid, base + 2, "more/ no longer watched")
        s.write_file("more/d.js", d_js.replace("v1", "v3"))
        # Other files beside the watched ones (an editor's swap file) do nothing either.
        s.write_file(".a.js.swp", "x")
        time.sleep(0.5)
        eq(s.status()["config_version"], 4, "no reload")
        expect("version=5" not in s.log(), "no reload")


@check
def a_symlinked_module_and_a_directory_that_disappears_and_comes_back():
    cfg = {"apps": [{"name": "link", "hostname": "link.test", "path": "./current.js"},
                    {"name": "sub", "hostname": "sub.test", "path": "./sub/app.js"},
                    {"name": "rel", "hostname": "rel.test", "path": "./cur/app.js"}]}
    files = {"releases/1/app.js": main_js("link", "r1"), "releases/2/app.js":
             main_js("link", "r2"), "sub/app.js": main_js("sub", "s1"),
             "lib/greet.js": greet_js("hello"), "releases/1/lib/greet.js": greet_js("r1"),
             "releases/2/lib/greet.js": greet_js("r2"), "sub/lib/greet.js": greet_js("sub"),
             "rels/a/app.js": main_js("rel", "a"), "rels/a/lib/greet.js": greet_js("a"),
             "rels/b/app.js": main_js("rel", "b"), "rels/b/lib/greet.js": greet_js("b")}
    s = ConfigServer(cfg, files)
    os.symlink("releases/1/app.js", os.path.join(s.dir, "current.js"))
    os.symlink("rels/a", os.path.join(s.dir, "cur"))  # a directory link, as deploys switch
    with s:
        eq(get_json(s, "link.test")["version"], "r1", "through the symlink")
        # (Its isolate made now: one made later would read its import from disk; docs/
        # nano-dp.md, "Current limits".)
        eq(get_json(s, "sub.test")["version"], "s1", "sub")
        # The target edited in place: watched where the link points.
        s.write_file("releases/1/app.js", main_js("link", "r1b"))
        s.wait_log(r"dp\.config_applied trigger=module version=2 .*redeployed=1")
        eq(get_json(s, "link.test")["version"], "r1b", "the target's edit")
        # The link switched to another release (a new link renamed over it): watched where
        # the path names it.
        tmp = os.path.join(s.dir, "current.js.tmp")
        os.symlink("releases/2/app.js", tmp)
        os.replace(tmp, os.path.join(s.dir, "current.js"))
        s.wait_log(r"dp\.config_applied trigger=module version=3 .*redeployed=1")
        r = get_json(s, "link.test")
        eq((r["version"], r["greeting"]), ("r2", "r2"), "the new release, its own import")
        # A directory link above the module switched: seen in the link's directory.
        eq(get_json(s, "rel.test")["version"], "a", "through the directory link")
        os.symlink("rels/b", tmp)
        os.replace(tmp, os.path.join(s.dir, "cur"))
        s.wait_log(r"dp\.config_applied trigger=module version=4 .*redeployed=1")
        r = get_json(s, "rel.test")
        eq((r["version"], r["greeting"]), ("b", "b"), "the release the link names now")
        # sub/ removed: the reload is refused (its module is gone) and sub serves on.
        shutil.rmtree(os.path.join(s.dir, "sub"))
        s.wait_log(r"dp\.config_rejected trigger=module version_kept=4 .*sub/app\.js")
        eq(get_json(s, "sub.test")["version"], "s1", "sub serves on")
        # ... and back, as a deploy tool puts a directory in place: seen from the parent.
        s.write_file("sub.new/app.js", main_js("sub", "s2"))
        s.write_file("sub.new/lib/greet.js", greet_js("sub"))
        os.rename(os.path.join(s.dir, "sub.new"), os.path.join(s.dir, "sub"))
        s.wait_log(r"dp\.config_applied trigger=module version=5 .*redeployed=1")
        eq(get_json(s, "sub.test")["version"], "s2", "the new sub/")
        # The new directory is watched itself.
        s.write_file("sub/lib/greet.js", greet_js("sub again"))
        s.wait_log(r"dp\.config_applied trigger=module version=6 .*redeployed=1")
        eq(get_json(s, "sub.test")["greeting"], "sub again", "an edit in the new sub/")


if __name__ == "__main__":
    run()
