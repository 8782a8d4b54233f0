#!/usr/bin/env python3
"""nano-dp serving one app: hello, echo of the request, env, errors, imports, console,
waitUntil, headers, and the CLI's errors for bad input."""
import http.client
import json
import os
import re

from nanotest import TIMEOUT, Server, check, eq, expect, run, run_cli, scratch_dir

HELLO = 'export default { async fetch() { return new Response("Hello World\\n"); } };\n'

# The path of request.url, without the URL API (not part of this milestone's checks).
PATH_OF = "const pathOf = (u) => u.slice(u.indexOf('/', u.indexOf('//') + 2));\n"

ECHO = PATH_OF + """
export default {
  async fetch(request, env, ctx) {
    const path = pathOf(request.url);
    if (path === '/throw') throw new Error('handler exploded');
    if (path === '/reject') return Promise.reject(new TypeError('rejected on purpose'));
    if (path === '/not-a-response') return 'just a string';
    if (path === '/json') return Response.json(await request.json());
    if (path === '/redirect') return Response.redirect('http://example.com/next', 302);
    if (path === '/env') return Response.json({ env, frozen: Object.isFrozen(env) });
    if (path === '/headers') {
      const h = new Headers();
      h.append('x-multi', 'a');
      h.append('x-multi', 'b');
      h.append('set-cookie', 'a=1');
      h.append('set-cookie', 'b=2');
      return new Response('h', { status: 201, statusText: 'Made', headers: h });
    }
    if (path === '/bytes') return new Response(new Uint8Array([104, 105]));
    if (path === '/buffer') return new Response(new Uint8Array([111, 107]).buffer);
    if (path === '/null') return new Response(null, { status: 204 });
    return Response.json({
      method: request.method,
      url: request.url,
      headers: Object.fromEntries(request.headers),
      body: await request.text(),
    });
  },
};
"""


@check
def hello_world():
    with Server(HELLO) as s:
        r = s.request()
        eq(r.status, 200, "status")
        eq(r.text, "Hello World\n", "body")
        eq(r.header("content-type"), "text/plain;charset=UTF-8", "content-type")
        expect(r.header("date"), "a Date header")


@check
def hello_world_through_http_client():
    with Server(HELLO) as s:
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=TIMEOUT)
        try:
            for _ in range(2):  # http.client keeps the connection alive between the two
                c.request("GET", "/")
                r = c.getresponse()
                eq(r.status, 200, "status")
                eq(r.read(), b"Hello World\n", "body")
        finally:
            c.close()


@check
def echo_method_url_headers_body():
    with Server(ECHO) as s:
        r = s.request("POST", "/path?q=1", {"X-Test": "yes", "Content-Type": "application/json"},
                      '{"hello": "world"}')
        eq(r.status, 200, "status")
        got = json.loads(r.body)
        eq(got["method"], "POST", "method")
        eq(got["url"], f"http://127.0.0.1:{s.port}/path?q=1", "url")
        eq(got["headers"]["x-test"], "yes", "header")
        eq(got["headers"]["host"], f"127.0.0.1:{s.port}", "host header")
        eq(got["headers"]["content-type"], "application/json", "content-type header")
        eq(got["headers"]["content-length"], "18", "content-length header")
        eq(got["body"], '{"hello": "world"}', "body")


@check
def request_json_and_response_json():
    with Server(ECHO) as s:
        r = s.request("POST", "/json", {"Content-Type": "application/json"}, '{"a": [1, 2, {"b": null}]}')
        eq(r.status, 200, "status")
        eq(r.header("content-type"), "application/json", "content-type")
        eq(json.loads(r.body), {"a": [1, 2, {"b": None}]}, "json")


@check
def response_redirect():
    with Server(ECHO) as s:
        r = s.request("GET", "/redirect")
        eq(r.status, 302, "status")
        eq(r.header("location"), "http://example.com/next", "location")


@check
def response_bodies_of_every_kind():
    with Server(ECHO) as s:
        eq(s.request("GET", "/bytes").text, "hi", "Uint8Array body")
        eq(s.request("GET", "/buffer").text, "ok", "ArrayBuffer body")
        r = s.request("GET", "/null")
        eq(r.status, 204, "null body status")
        eq(r.body, b"", "null body")


@check
def multi_value_headers():
    with Server(ECHO) as s:
        r = s.request("GET", "/headers")
        eq(r.status, 201, "status")
        eq(r.reason, "Made", "status text")
        eq(r.all("x-multi"), ["a, b"], "joined header")
        eq(r.all("set-cookie"), ["a=1", "b=2"], "set-cookie lines kept apart")


@check
def env_from_vars_and_env_files():
    d = scratch_dir()
    env_file = os.path.join(d, ".env")
    with open(env_file, "w") as f:
        f.write('# settings\nexport FROM_FILE="quoted value"\nSINGLE=\'a b\'\n'
                'OVERRIDDEN=file # comment\nESCAPED="line1\\nline2"\n')
    with Server(ECHO, ["--env-file", env_file, "--var", "OVERRIDDEN=var", "--var", "EXTRA=x=y"]) as s:
        got = json.loads(s.request("GET", "/env").body)
        eq(got["frozen"], True, "env is frozen")
        eq(got["env"], {"FROM_FILE": "quoted value", "SINGLE": "a b", "OVERRIDDEN": "var",
                        "ESCAPED": "line1\nline2", "EXTRA": "x=y"}, "env")


@check
def throwing_handler_then_good_request():
    with Server(ECHO) as s:
        r = s.request("GET", "/throw")
        eq(r.status, 500, "status after throw")
        expect("handler exploded" not in r.text, "error details are not sent to the client")
        eq(s.request("GET", "/").status, 200, "next request")
        s.wait_log(r"Error: handler exploded\n\s+at ")  # logged with its stack


@check
def rejected_promise_and_non_response():
    with Server(ECHO) as s:
        eq(s.request("GET", "/reject").status, 500, "rejected promise")
        s.wait_log(r"TypeError: rejected on purpose")
        eq(s.request("GET", "/not-a-response").status, 500, "not a Response")
        eq(s.request("GET", "/").status, 200, "still serving")


@check
def relative_imports():
    lib = "export const greet = (n) => `hi ${n}`;\nexport { helper } from './sub/helper.js';\n"
    helper = "export function helper() { return import.meta.url.endsWith('/sub/helper.js'); }\n"
    app = ("import { greet, helper } from './lib.js';\n"
           "export default { async fetch() {\n"
           "  const dyn = await import('./lib.js');\n"
           "  return new Response(`${greet('you')} ${helper()} ${dyn.greet === greet}`); } };\n")
    s = Server(app, files={"lib.js": lib})
    os.makedirs(os.path.join(s.dir, "sub"))
    with open(os.path.join(s.dir, "sub", "helper.js"), "w") as f:
        f.write(helper)
    with s:
        eq(s.request().text, "hi you true true", "imports")


@check
def console_goes_to_the_log_with_the_app_name():
    app = ("export default { async fetch() { console.log('marker-xyz', { n: 1 });\n"
           "  console.error('bad-thing'); return new Response('ok'); } };\n")
    with Server(app, ["--name", "shop"]) as s:
        eq(s.request().status, 200, "status")
        s.wait_log(r"info app\.console app=shop console=log marker-xyz \{ n: 1 \}")
        s.wait_log(r"error app\.console app=shop console=error bad-thing")


@check
def wait_until_outlives_the_response():
    app = ("export default { async fetch(req, env, ctx) {\n"
           "  ctx.waitUntil(new Promise((r) => setTimeout(() => { console.log('after-response'); r(); }, 200)));\n"
           "  return new Response('sent'); } };\n")
    with Server(app) as s:
        r = s.request()
        eq(r.text, "sent", "body")
        expect("after-response" not in s.log(), "waitUntil work finishes after the response")
        s.wait_log(r"after-response")


@check
def module_with_syntax_error_exits_2():
    s = Server("export default { fetch( {\n")
    try:
        code, out, err = run_cli([s.path])
        eq(code, 2, "exit code")
        expect(s.path in err and "SyntaxError" in err, f"stderr names the file: {err!r}")
    finally:
        s.stop()


@check
def module_without_fetch_exits_2():
    s = Server("export default {};\n")
    try:
        code, _, err = run_cli([s.path])
        eq(code, 2, "exit code")
        expect("fetch" in err, f"stderr says what is missing: {err!r}")
        code, _, err = run_cli([os.path.join(s.dir, "missing.js")])
        eq(code, 2, "missing module exit code")
        expect("missing.js" in err, f"stderr names the missing file: {err!r}")
    finally:
        s.stop()


TOP_LEVEL_LOGS = """
console.log("top level ran");
const words = Array.from({ length: 200 }, (_, i) => "word" + i);
function pick(i) { return words[i % words.length]; }
export default { fetch(request) { return new Response(pick(7) + "\\n"); } };
"""


@check
def single_app_runs_its_top_level_once_per_thread_and_compiles_once():
    # The start-up check is the first worker's own load, so the top level runs once per
    # worker thread (not once more for a throwaway check), and the second thread consumes the
    # code the first compiled.
    with Server(TOP_LEVEL_LOGS, ["--threads", "2"]) as s:
        s.wait_count(r"top level ran", 2)
        s.wait_count(r"dp\.app_loaded app=\S+ worker=\d", 2)
        for _ in range(6):
            eq(s.request().text, "word7\n", "answer")
        eq(s.log().count("top level ran"), 2, "top-level runs for 2 threads and 6 requests")
        cc = s.status()["compile_cache"]
        eq((cc["misses"], cc["stores"], cc["hits"], cc["rejects"]), (1, 1, 1, 0),
           f"one compile, one use of it: {cc}")


@check
def default_threads_follow_the_cpus_it_may_run_on():
    # Pinned to one CPU (taskset, a cpuset container), the default is one worker, not one per
    # CPU of the machine: extra workers would only compete for that CPU.
    cpus = os.sched_getaffinity(0)
    if len(cpus) < 2:
        print("  (one CPU here: the default cannot differ; skipped)")
        return
    class DefaultThreads(Server):
        def command(self):  # Server passes --threads 1 unless told
            return [a for a in super().command() if a not in ("--threads", "1")]

    os.sched_setaffinity(0, {min(cpus)})
    try:
        s = DefaultThreads(TOP_LEVEL_LOGS)
        s.start()
    finally:
        os.sched_setaffinity(0, cpus)
    try:
        expect(re.search(r"dp\.listening addr=\S+ threads=1\b", s.log()), f"one worker: {s.log()}")
        eq(s.status()["threads"], 1, "threads in /status")
    finally:
        s.stop()
    with DefaultThreads(TOP_LEVEL_LOGS) as s:
        eq(s.status()["threads"], len(cpus), "one worker per CPU without a mask")


@check
def code_dir_keeps_compiled_code_across_restarts():
    d = scratch_dir()
    with Server(TOP_LEVEL_LOGS, ["--code-dir", d]) as s:
        eq(s.request().text, "word7\n", "first run")
        cc = s.status()["compile_cache"]
        eq((cc["misses"], cc["stores"], cc["disk_reads"]), (1, 1, 0), f"first run: {cc}")
    files = os.listdir(os.path.join(d, "v8"))
    eq(len(files), 1, f"one entry file: {files}")
    expect(files[0].endswith(".v8cache"), files[0])
    with Server(TOP_LEVEL_LOGS, ["--code-dir", d]) as s:
        eq(s.request().text, "word7\n", "after the restart")
        cc = s.status()["compile_cache"]
        eq((cc["misses"], cc["stores"], cc["disk_reads"], cc["rejects"]), (0, 0, 1, 0),
           f"restart: {cc}")
    # A garbage file in its place is ignored (logged) and replaced; the app serves.
    with open(os.path.join(d, "v8", files[0]), "wb") as f:
        f.write(b"\0" * 4096)
    with Server(TOP_LEVEL_LOGS, ["--code-dir", d]) as s:
        eq(s.request().text, "word7\n", "with a damaged entry")
        s.wait_log(r"rt\.compile_cache_file_ignored")
        cc = s.status()["compile_cache"]
        eq((cc["misses"], cc["stores"], cc["disk_reads"]), (1, 1, 0), f"damaged: {cc}")
    # Not a directory: a clear one-line error, exit 2.
    not_dir = os.path.join(d, "file")
    with open(not_dir, "w") as f:
        f.write("x")
    s = Server(HELLO)
    try:
        code, _, err = run_cli([s.path, "--port", "0", "--code-dir", not_dir])
        eq(code, 2, "--code-dir naming a file")
        expect("--code-dir" in err and "not a directory" in err, err)
        eq(err.count("\n"), 1, "one line")
    finally:
        s.stop()


THROWS = """
export default {
  fetch(request) {
    console.log('quote " backslash \\\\ tab \\t nul \\0 del \\x7f bell \\x07 \\u00e9 \\ud800');
    throw new Error("boom");
  },
};
"""


@check
def json_log_lines_are_valid_utf8_json_and_one_request_id_format():
    import socket
    s = Server(THROWS, ["--log-format", "json", "--status-listen", "off"])
    s.start(expect_listen=False)
    try:
        m = s.wait_log(r'"event":"dp\.listening".*"addr":"127\.0\.0\.1:(\d+)"')
        s.port = int(m.group(1))
        # Bytes that are not UTF-8 in the target: refused by the strict parser (RFC 9112:
        # the target is ASCII), and the log stays valid.
        with socket.create_connection(("127.0.0.1", s.port), timeout=TIMEOUT) as sock:
            sock.sendall(b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            expect(sock.recv(100).startswith(b"HTTP/1.1 400"), "a non-ASCII target is a 400")
        r = s.request("GET", "/throws")
        eq(r.status, 500, "the handler threw")
        s.wait_log(r'"event":"access"')
        s.wait_log(r'"event":"app.error"')
        raw = "".join(s._log)  # the pump decodes strictly as UTF-8: it would have failed
        lines = [json.loads(l) for l in raw.splitlines() if l.startswith("{")]
        access = [l for l in lines if l.get("event") == "access"][0]
        error = [l for l in lines if l.get("event") == "app.error"][0]
        console = [l for l in lines if l.get("event") == "app.console"][0]
        expect('quote " backslash \\' in json.dumps(console) or "quote" in str(console),
               f"console line: {console}")
        expect(isinstance(access.get("request_id"), str), f"request_id is a string: {access}")
        eq(error.get("request_id"), access.get("request_id"),
           f"one request id in both lines: {error} {access}")
    finally:
        s.stop()


@check
def bad_env_file_line_exits_2_naming_file_and_line():
    d = scratch_dir()
    env_file = os.path.join(d, "bad.env")
    with open(env_file, "w") as f:
        f.write("GOOD=1\nthis line is wrong\n")
    app = os.path.join(d, "app.js")
    with open(app, "w") as f:
        f.write(HELLO)
    code, _, err = run_cli([app, "--port", "0", "--env-file", env_file])
    eq(code, 2, "exit code")
    expect(f"{env_file}:2:" in err, f"stderr names FILE:LINE: {err!r}")
    eq(err.count("\n"), 1, "one line")


@check
def cli_errors_and_help():
    code, _, err = run_cli(["app.js", "--drain-timeout", "301"])
    eq(code, 2, "--drain-timeout 301")
    expect("300" in err, f"says the limit: {err!r}")
    code, _, err = run_cli(["app.js", "--no-such-flag"])
    eq(code, 2, "unknown flag")
    expect("--no-such-flag" in err, err)
    code, _, err = run_cli([])
    eq(code, 2, "no app")
    code, out, _ = run_cli(["--help"])
    eq(code, 0, "--help")
    expect(out.startswith("Usage: nano-dp"), out)
    code, out, _ = run_cli(["--version"])
    eq(code, 0, "--version")
    expect(out.startswith("nano-dp "), out)


@check
def port_in_use_is_a_clear_error():
    with Server(HELLO) as s:
        code, _, err = run_cli([s.path, "--port", str(s.port)])
        eq(code, 1, "exit code")
        expect(str(s.port) in err, f"stderr names the address: {err!r}")


@check
def readable_stream_response_body():
    app = ("export default { async fetch() {\n"
           "  const enc = new TextEncoder(); let i = 0;\n"
           "  return new Response(new ReadableStream({ pull(c) {\n"
           "    if (i < 3) c.enqueue(enc.encode(`chunk${i++} `)); else c.close(); } }),\n"
           "    { headers: { 'content-type': 'text/plain' } }); } };\n")
    with Server(app) as s:
        r = s.request()
        eq(r.status, 200, "status")
        eq(r.text, "chunk0 chunk1 chunk2 ", "body")


if __name__ == "__main__":
    run()
