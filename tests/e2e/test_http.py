#!/usr/bin/env python3
"""nano-dp's HTTP/1.1 handling on raw sockets: malformed input, keep-alive, pipelining,
chunked bodies, HEAD, size limits, HTTP/1.0."""
from nanotest import Conn, ConfigServer, Server, build_request, check, eq, expect, run

ECHO = """
const pathOf = (u) => u.slice(u.indexOf('/', u.indexOf('//') + 2));
export default {
  async fetch(request) {
    const body = await request.text();
    return new Response(`${request.method} ${pathOf(request.url)} ${body.length} ${body}`,
                        { headers: { 'x-path': pathOf(request.url) } });
  },
};
"""


@check
def garbage_gets_400_and_server_keeps_serving():
    with Server(ECHO) as s:
        with Conn(s.port) as c:
            c.send(b"GARBAGE\r\n\r\n")
            r = c.read_response()
            eq(r.status, 400, "status")
            eq(r.header("connection"), "close", "connection header")
            expect(c.is_closed(), "the server closes the connection after a 400")
        eq(s.request("GET", "/after").status, 200, "a new connection is served")


@check
def malformed_heads_get_400():
    bad = [
        b"GET / HTTP/1.1\r\n\r\n",                                     # no Host on 1.1
        b"GET / HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n",             # space in a name
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: abc\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ]
    with Server(ECHO) as s:
        for raw in bad:
            with Conn(s.port) as c:
                c.send(raw)
                r = c.read_response()
                eq(r.status, 400, f"status for {raw!r}")
                expect(c.is_closed(), f"closed after {raw!r}")
        eq(s.request().status, 200, "still serving")


URL_ECHO = "export default { fetch(request) { return new Response(request.url); } };\n"


@check
def host_framing_and_version_are_strict():
    cases = [
        # (request bytes, status): a Host that would steer routing or break request.url
        (b"GET /public HTTP/1.1\r\nHost: a.test:80/admin?\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a:xyz\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: user@a.test\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a..test\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400),
        (b"GET http://user@b.test/x HTTP/1.1\r\nHost: a.test\r\n\r\n", 400),
        (b"OPTIONS * HTTP/1.1\r\nHost: a.test\r\n\r\n", 400),  # never handed to an app
        (b"GET / HTTP/2.0\r\nHost: a.test\r\n\r\n", 505),
        (b"GET / HTTP/1.1\r\nHost: a.test\r\n\rX", 400),  # CR then not LF ends no head
        (b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: xchunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    ]
    with Server(URL_ECHO) as s:
        for raw, want in cases:
            with Conn(s.port) as c:
                c.send(raw)
                r = c.read_response()
                eq(r.status, want, f"status for {raw!r} ({r.text!r})")
                expect(c.is_closed(), f"closed after {raw!r}")
        # What is accepted: names, IPv4, [IPv6], ports; the URL is what routing used.
        for host in ("a.test", "a.test:8080", "127.0.0.1:1", "[::1]:8787", "A-b_c~d.test."):
            with Conn(s.port) as c:
                c.send(f"GET /p HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                r = c.read_response()
                eq((r.status, r.text), (200, f"http://{host.lower()}/p"), f"Host: {host}")
        # Absolute-form: its authority is the host (routing and request.url agree).
        with Conn(s.port) as c:
            c.send(b"GET http://b.test/x?q=1 HTTP/1.1\r\nHost: a.test\r\n\r\n")
            r = c.read_response()
            eq((r.status, r.text), (200, "http://b.test/x?q=1"), "absolute-form")
        eq(s.request().status, 200, "still serving")


@check
def chunk_framing_is_strict_and_nothing_is_smuggled():
    # Framing a strict front proxy reads differently (llhttp's strict mode): any two bytes
    # after chunk data, a bare CR in a chunk-size line. The app reads the body, so the error
    # comes before its answer.
    cases = [
        b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabcXY0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\rX\r\nabc\r\n0\r\n\r\n",
    ]
    with Server(ECHO) as s:
        for raw in cases:
            with Conn(s.port) as c:
                c.send(raw)
                r = c.read_response()
                eq(r.status, 400, f"status for {raw!r} ({r.text!r})")
                expect(c.is_closed(), f"closed after {raw!r}")
        eq(s.request().status, 200, "still serving")
        expect("/smuggled" not in s.log(), "the request packed behind bad chunk framing ran")


@check
def chunk_extensions_are_bounded():
    with Server(ECHO, ["--max-body-size", "64KiB"]) as s:
        # Short extensions are read and ignored.
        with Conn(s.port) as c:
            c.send(b"POST /e HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"3;name=value\r\nabc\r\n0\r\n\r\n")
            r = c.read_response()
            eq((r.status, r.text), (200, "POST /e 3 abc"), "a chunk with short extensions")
        # One chunk-size line with 5 KiB of extensions: 400, read no further.
        with Conn(s.port) as c:
            c.send(b"POST /e HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"1;" + b"e" * 5000 + b"\r\nx\r\n0\r\n\r\n")
            r = c.read_response()
            eq(r.status, 400, f"5 KiB of extensions ({r.text!r})")
        # Many chunks each within the bound: their extensions count as body bytes.
        with Conn(s.port) as c:
            c.send(b"POST /e HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"1;" + b"e" * 4000 + b"\r\nx\r\n"
            try:
                for _ in range(40):  # 160 KB of extensions against a 64 KiB body limit
                    c.send(chunk)
                c.send(b"0\r\n\r\n")
            except OSError:
                pass  # the server answered and closed while we were still sending
            r = c.read_response()
            eq(r.status, 413, f"extensions past max_body ({r.text!r})")
        eq(s.request().status, 200, "still serving")


@check
def a_head_not_received_in_time_gets_408():
    import time
    with Server(URL_ECHO, ["--head-timeout", "1"]) as s:
        with Conn(s.port, timeout=10) as c:
            c.send(b"GET /slow HTTP/1.1\r\nHost: a.test\r\nX-Slow: ")  # and nothing more
            t0 = time.monotonic()
            r = c.read_response()
            took = time.monotonic() - t0
            eq(r.status, 408, f"a head that stopped coming ({r.text!r})")
            expect(0.8 <= took <= 5, f"answered {took:.2f} s after the partial head")
            expect(c.is_closed(), "closed after the 408")
        eq(s.request().status, 200, "still serving")


@check
def absolute_form_routes_by_its_authority():
    cfg = {"apps": [{"name": "a", "hostname": "a.test", "path": "./a.js"},
                    {"name": "b", "hostname": "b.test", "path": "./b.js"}]}
    files = {"a.js": 'export default { fetch(r) { return new Response("a " + r.url); } };\n',
             "b.js": 'export default { fetch(r) { return new Response("b " + r.url); } };\n'}
    with ConfigServer(cfg, files) as s:
        with Conn(s.port) as c:
            c.send(b"GET http://b.test/x HTTP/1.1\r\nHost: a.test\r\n\r\n")
            r = c.read_response()
            eq((r.status, r.text), (200, "b http://b.test/x"), "routed by the target's authority")


@check
def keep_alive_serves_many_requests_on_one_connection():
    with Server(ECHO) as s:
        with Conn(s.port) as c:
            for i in range(5):
                c.send(build_request("GET", f"/k{i}"))
                r = c.read_response()
                eq(r.status, 200, "status")
                eq(r.text, f"GET /k{i} 0 ", "body")
                expect(r.header("connection") is None, "no Connection: close")


@check
def pipelined_requests_answer_in_order():
    with Server(ECHO) as s:
        with Conn(s.port) as c:
            c.send(b"".join(build_request("POST" if i % 2 else "GET", f"/p{i}",
                                          body=f"b{i}" if i % 2 else None) for i in range(6)))
            for i in range(6):
                r = c.read_response()
                want = f"POST /p{i} 2 b{i}" if i % 2 else f"GET /p{i} 0 "
                eq(r.text, want, f"response {i}")


@check
def chunked_request_body():
    with Server(ECHO) as s:
        with Conn(s.port) as c:
            c.send(b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5\r\nhello\r\n1;ext=x\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n")
            eq(c.read_response().text, "POST /c 11 hello world", "body")
            # and the connection is still usable
            c.send(build_request("GET", "/next"))
            eq(c.read_response().text, "GET /next 0 ", "next request")


@check
def body_arriving_slowly_in_pieces():
    with Server(ECHO) as s:
        with Conn(s.port) as c:
            raw = build_request("PUT", "/slow", body="abcdefghij")
            for i in range(0, len(raw), 7):
                c.send(raw[i:i + 7])
            eq(c.read_response().text, "PUT /slow 10 abcdefghij", "body")


@check
def head_request_has_headers_and_no_body():
    with Server(ECHO) as s:
        with Conn(s.port) as c:
            c.send(build_request("HEAD", "/h"))
            r = c.read_response(head_only=True)
            eq(r.status, 200, "status")
            eq(r.header("content-length"), str(len("HEAD /h 0 ")), "content-length")
            c.send(build_request("GET", "/after-head"))
            r = c.read_response()
            eq(r.text, "GET /after-head 0 ", "no stray body bytes before the next response")


@check
def head_over_the_limit_gets_431():
    with Server(ECHO, ["--max-head-size", "1024"]) as s:
        with Conn(s.port) as c:
            c.send(build_request("GET", "/", {"X-Big": "a" * 2000}))
            r = c.read_response()
            eq(r.status, 431, "status")
            expect(c.is_closed(), "closed")
        eq(s.request("GET", "/", {"X-Small": "a" * 100}).status, 200, "a small head is fine")


@check
def body_over_the_limit_gets_413():
    with Server(ECHO, ["--max-body-size", "100"]) as s:
        with Conn(s.port) as c:
            c.send(build_request("POST", "/", body="x" * 101))
            r = c.read_response()
            eq(r.status, 413, "status by Content-Length")
            expect(c.is_closed(), "closed")
        with Conn(s.port) as c:
            c.send(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"40\r\n" + b"y" * 64 + b"\r\n40\r\n" + b"y" * 64 + b"\r\n0\r\n\r\n")
            r = c.read_response()
            eq(r.status, 413, "status by chunked size")
        eq(s.request("POST", "/", body="x" * 100).status, 200, "exactly the limit is fine")


@check
def http10_request_is_answered_and_closed():
    with Server(ECHO) as s:
        with Conn(s.port) as c:
            c.send(b"GET /old HTTP/1.0\r\n\r\n")
            r = c.read_response()
            eq(r.status, 200, "status")
            eq(r.text, "GET /old 0 ", "body")
            expect(c.is_closed(), "closed after an HTTP/1.0 response")


@check
def connection_close_is_honoured():
    with Server(ECHO) as s:
        with Conn(s.port) as c:
            c.send(build_request("GET", "/bye", {"Connection": "close"}))
            r = c.read_response()
            eq(r.header("connection"), "close", "echoed")
            expect(c.is_closed(), "closed")


@check
def expect_100_continue():
    with Server(ECHO) as s:
        with Conn(s.port) as c:
            c.send(b"POST /e HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
            r = c.read_response()
            eq(r.status, 100, "interim response")
            c.send(b"abc")
            eq(c.read_response().text, "POST /e 3 abc", "final response")


@check
def client_disconnect_mid_request_does_not_hurt():
    with Server(ECHO) as s:
        for _ in range(3):
            c = Conn(s.port)
            c.send(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nabc")
            c.close()
        eq(s.request().status, 200, "still serving")


HEADERS_APP = """
const many = (n) => Array.from({ length: n }, (_, i) => [`x-h${i}`, `v${i}`]);
export default {
  async fetch(request) {
    const path = new URL(request.url).pathname;
    if (path === '/framing') {
      const h = new Headers([['content-length', '999'], ['transfer-encoding', 'gzip'],
                             ['connection', 'upgrade'], ['keep-alive', 'timeout=1'],
                             ['date', 'Thu, 01 Jan 1970 00:00:00 GMT'], ['x-kept', 'yes']]);
      h.append('set-cookie', 'a=1');
      h.append('set-cookie', 'b=2');
      return new Response('caf\u00e9 \u2713', { status: 201, statusText: 'Made It', headers: h });
    }
    if (path === '/lone') return new Response('x\\uD800y');
    if (path === '/literal') {
      // Literals of app code: V8 may keep them two bytes wide though every character fits one.
      return new Response('lit', { status: 202, statusText: 'Taken Literally',
                                   headers: { 'x-lit': 'free', 'content-type': 'application/json' } });
    }
    if (path === '/latin') return new Response(JSON.stringify({ t: 'caf\\u00e9', n: 1 }));
    const n = Number(new URL(request.url).searchParams.get('n'));
    if (path === '/stream') {
      const body = new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode('s')); c.close(); } });
      return new Response(body, { headers: many(n) });
    }
    return new Response(null, { status: 204, headers: many(n) });
  },
};
"""


@check
def app_headers_reach_the_client_and_framing_stays_the_servers():
    with Server(HEADERS_APP) as s:
        with Conn(s.port) as c:
            c.send(build_request("GET", "/framing"))
            r = c.read_response()
            eq(r.status, 201, "status")
            eq(r.reason, "Made It", "status text")
            eq(r.body, "caf\u00e9 \u2713".encode(), "body as UTF-8")
            eq(r.all("content-length"), [str(len("caf\u00e9 \u2713".encode()))], "server's length")
            eq(r.all("transfer-encoding"), [], "no app transfer-encoding")
            eq(r.all("connection"), [], "no app connection")
            eq(r.all("keep-alive"), [], "no app keep-alive")
            eq(r.all("date"), ["Thu, 01 Jan 1970 00:00:00 GMT"], "the app's date only")
            eq(r.all("set-cookie"), ["a=1", "b=2"], "both cookies, in order")
            eq(r.header("x-kept"), "yes", "plain header")
            c.send(build_request("GET", "/after"))
            eq(c.read_response().status, 204, "the connection is still in step")
        r = s.request("GET", "/literal")
        eq((r.status, r.reason, r.body), (202, "Taken Literally", b"lit"), "literal response")
        eq((r.header("x-lit"), r.header("content-type")), ("free", "application/json"),
           "literal headers")
        eq(s.request("GET", "/lone").body, b"x\xef\xbf\xbdy", "a lone surrogate becomes U+FFFD")
        eq(s.request("GET", "/latin").body, '{"t":"caf\u00e9","n":1}'.encode(), "Latin-1 as UTF-8")
        # 0 to 3 headers go as plain arguments, more through one array: both ways, whole
        # and streamed responses.
        for n in (0, 1, 2, 3, 4, 40):
            for path in ("/none", "/stream"):
                r = s.request("GET", f"{path}?n={n}")
                want = [(f"x-h{i}", f"v{i}") for i in range(n)]
                got = [(k, v) for k, v in r.headers if k.startswith("x-h")]
                eq(got, want, f"{path} with {n} headers")
                eq(len(r.all("date")), 1, f"{path} with {n} headers: one date")


@check
def literal_headers_equal_to_json_env_strings_are_sent():
    # V8 keeps strings its JSON parser internalized two bytes wide, and app literals equal to
    # them are the same strings: a JSON var with "free" in it makes the literal 'free' wide.
    cfg = {"apps": [{"name": "lit", "hostname": "lit.test", "path": "./app.js",
                     "env": {"FLAGS": {"tier": "free", "application/json": 1}}}]}
    with ConfigServer(cfg, {"app.js": HEADERS_APP}) as s:
        r = s.request("GET", "/literal", host="lit.test")
        eq((r.status, r.reason), (202, "Taken Literally"), "status")
        eq((r.header("x-lit"), r.header("content-type")), ("free", "application/json"), "headers")


if __name__ == "__main__":
    run()
