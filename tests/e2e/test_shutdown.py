#!/usr/bin/env python3
"""nano-dp's graceful shutdown (docs/nano-dp.md#shutdown): SIGTERM drains in-flight requests and
waitUntil work and exits 0; --drain-timeout forces the rest closed and exits 1; idle
keep-alive connections close at once; a second SIGINT exits at once."""
import signal
import socket
import threading
import time

from nanotest import ConfigServer, Conn, Server, build_request, check, eq, expect, run

SLOW = """
const pathOf = (u) => u.slice(u.indexOf('/', u.indexOf('//') + 2));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export default {
  async fetch(request, env, ctx) {
    const path = pathOf(request.url);
    if (path === '/slow') {
      console.log('slow-start'); await sleep(1000); return new Response('slow done');
    }
    if (path === '/very-slow') {
      console.log('slow-start'); await sleep(10000); return new Response('too late');
    }
    if (path === '/wait-until') {
      ctx.waitUntil(sleep(700).then(() => console.log('background-finished')));
      return new Response('sent');
    }
    return new Response('fast');
  },
};
"""


def fire(port, path, results, i):
    try:
        with Conn(port, timeout=10) as c:
            c.send(build_request("GET", path))
            r = c.read_response()
            results[i] = (r.status, r.text, r.header("connection"))
    except Exception as e:  # recorded, checked by the caller
        results[i] = ("error", repr(e), None)


def refused_or_unanswered(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(build_request("GET", "/"))
            return s.recv(100) == b""
    except (ConnectionRefusedError, ConnectionResetError, socket.timeout):
        return True


@check
def sigterm_lets_20_slow_requests_finish_then_exits_0():
    with Server(SLOW) as s:
        results = [None] * 20
        threads = [threading.Thread(target=fire, args=(s.port, "/slow", results, i)) for i in range(20)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        s.wait_count(r"slow-start", 20, timeout=5)  # all 20 wait in the handler
        t_sig = time.monotonic()
        s.signal(signal.SIGTERM)
        s.wait_log(r"dp\.shutdown_begin signal=SIGTERM")
        expect(refused_or_unanswered(s.port), "no new connections after SIGTERM")
        for t in threads:
            t.join(timeout=15)
        code = s.wait_exit(timeout=10)
        elapsed = time.monotonic() - t_sig
        for i, r in enumerate(results):
            eq(r, (200, "slow done", "close"), f"request {i}")
        eq(code, 0, "exit code")
        expect(elapsed < 3, f"exited {elapsed:.1f}s after SIGTERM")
        s.wait_log(r"dp\.shutdown_begin .*active_conns=20")
        s.wait_log(r"dp\.shutdown_done")


@check
def drain_timeout_forces_close_and_exit_1():
    with Server(SLOW, ["--drain-timeout", "1"]) as s:
        results = [None]
        t = threading.Thread(target=fire, args=(s.port, "/very-slow", results, 0))
        t.start()
        s.wait_log(r"slow-start", timeout=5)
        t_sig = time.monotonic()
        s.signal(signal.SIGTERM)
        code = s.wait_exit(timeout=10)
        elapsed = time.monotonic() - t_sig
        t.join(timeout=5)
        eq(code, 1, "exit code")
        expect(0.8 <= elapsed <= 3.0, f"exited {elapsed:.2f}s after SIGTERM (want about 1s)")
        s.wait_log(r"dp\.shutdown_forced .*requests=1")
        eq(results[0][0], "error", "the cut-off client sees the connection close")


@check
def idle_keep_alive_connection_is_closed_and_exit_is_prompt():
    with Server(SLOW) as s:
        with Conn(s.port) as c:
            c.send(build_request("GET", "/"))
            eq(c.read_response().text, "fast", "first response")
            t_sig = time.monotonic()
            s.signal(signal.SIGTERM)
            expect(c.is_closed(timeout=3), "the idle connection is closed")
            eq(s.wait_exit(timeout=5), 0, "exit code")
            expect(time.monotonic() - t_sig < 1.5, "prompt exit")


@check
def wait_until_work_is_awaited_before_exit():
    with Server(SLOW) as s:
        eq(s.request("GET", "/wait-until").text, "sent", "response")
        s.signal(signal.SIGTERM)
        eq(s.wait_exit(timeout=5), 0, "exit code")
        s.wait_log(r"background-finished")
        log = s.log()
        expect(log.index("background-finished") < log.index("dp.shutdown_done"),
               "waitUntil finished before the process said it was done")


@check
def second_sigint_exits_at_once():
    with Server(SLOW) as s:
        results = [None]
        t = threading.Thread(target=fire, args=(s.port, "/very-slow", results, 0))
        t.start()
        s.wait_log(r"slow-start", timeout=5)
        s.signal(signal.SIGINT)
        s.wait_log(r"dp\.shutdown_begin signal=SIGINT")
        t_sig = time.monotonic()
        s.signal(signal.SIGINT)
        eq(s.wait_exit(timeout=5), 130, "exit code")
        expect(time.monotonic() - t_sig < 1.0, "at once")
        t.join(timeout=5)


@check
def progress_is_logged_while_draining():
    with Server(SLOW, ["--drain-timeout", "3"]) as s:
        results = [None]
        t = threading.Thread(target=fire, args=(s.port, "/very-slow", results, 0))
        t.start()
        s.wait_log(r"slow-start", timeout=5)
        s.signal(signal.SIGTERM)
        s.wait_log(r"dp\.shutdown_waiting conns=1 active_conns=1 requests=1", timeout=3)
        eq(s.wait_exit(timeout=6), 1, "exit code")
        t.join(timeout=5)




# An SSE endpoint that streams until the app's `shutdown` event ends it.
SSE = """
const streams = new Set();
let deadline = 0;
addEventListener('shutdown', (e) => {
  deadline = e.deadline;
  console.log(`shutdown-event streams=${streams.size} deadline_in_ms=${e.deadline - Date.now()}`);
  for (const s of streams) s.end();
});
export default {
  fetch(request) {
    if (!request.url.endsWith('/sse')) return new Response('fast');
    let timer, controller;
    const stream = {
      end() {
        clearInterval(timer);
        controller.enqueue(new TextEncoder().encode('event: bye\\ndata: shutting down\\n\\n'));
        controller.close();
        streams.delete(stream);
      },
    };
    const body = new ReadableStream({
      start(c) {
        controller = c;
        streams.add(stream);
        c.enqueue(new TextEncoder().encode('data: hello\\n\\n'));
        timer = setInterval(() => c.enqueue(new TextEncoder().encode('data: tick\\n\\n')), 200);
      },
    });
    return new Response(body, { headers: { 'content-type': 'text/event-stream' } });
  },
};
"""

NEVER_SETTLES = """
addEventListener('shutdown', (e) => {
  console.log('shutdown-event-never-settles');
  e.waitUntil(new Promise(() => {}));
});
export default { fetch() { return new Response('ok'); } };
"""


def read_sse(port, out):
    """Reads an SSE response to its end; out gets (status, body text, seconds it took)."""
    t0 = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(build_request("GET", "/sse"))
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
                if data.endswith(b"0\r\n\r\n"):  # the chunked body's end
                    break
            out.append((data.split(b" ", 2)[1].decode(), data.decode(errors="replace"),
                        time.monotonic() - t0))
    except Exception as e:  # recorded, checked by the caller
        out.append(("error", repr(e), time.monotonic() - t0))


@check
def shutdown_event_fires_as_the_drain_begins_so_an_sse_stream_can_end():
    with Server(SSE, ["--drain-timeout", "20"]) as s:
        out = []
        t = threading.Thread(target=read_sse, args=(s.port, out))
        t.start()
        time.sleep(0.6)  # a few ticks
        t_sig = time.monotonic()
        s.signal(signal.SIGTERM)
        code = s.wait_exit(timeout=15)
        elapsed = time.monotonic() - t_sig
        t.join(timeout=5)
        eq(code, 0, "exit code: the drain finished")
        expect(elapsed < 3, f"exited {elapsed:.2f}s after SIGTERM (drain timeout 20 s)")
        m = s.wait_log(r"shutdown-event streams=(\d+) deadline_in_ms=(\d+)")
        eq(m.group(1), "1", "the stream was open when the event fired")
        expect(15000 < int(m.group(2)) <= 20000, f"deadline is the drain timeout: {m.group(2)}")
        status, body, _ = out[0]
        eq(status, "200", f"SSE status ({body[:200]})")
        expect("data: tick" in body and "event: bye" in body, f"a clean end: {body[-200:]!r}")
        s.wait_log(r"app\.shutdown_event app=\S+ worker=0 .*why=process in_flight=1")


@check
def a_shutdown_handler_that_never_settles_is_cut_at_the_deadline():
    with Server(NEVER_SETTLES, ["--drain-timeout", "1"]) as s:
        eq(s.request().text, "ok", "the isolate exists")
        t_sig = time.monotonic()
        s.signal(signal.SIGTERM)
        code = s.wait_exit(timeout=10)
        elapsed = time.monotonic() - t_sig
        eq(code, 1, "exit code: the drain timed out")
        expect(0.8 <= elapsed <= 3.5, f"exited {elapsed:.2f}s after SIGTERM (want about 1s)")
        s.wait_log(r"shutdown-event-never-settles")


NAMED = """
addEventListener('shutdown', (e) => console.log(`shutdown-event-of NAME`));
export default { fetch() { return new Response('NAME'); } };
"""


@check
def an_idle_app_with_no_isolate_gets_no_event():
    cfg = {"apps": [{"name": "used", "hostname": "used.test", "path": "./used.js"},
                    {"name": "idle", "hostname": "idle.test", "path": "./idle.js"}]}
    files = {"used.js": NAMED.replace("NAME", "used"), "idle.js": NAMED.replace("NAME", "idle")}
    with ConfigServer(cfg, files) as s:
        eq(s.request("GET", "/", host="used.test").text, "used", "used")
        s.signal(signal.SIGTERM)
        eq(s.wait_exit(timeout=10), 0, "exit code")
        log = s.log()
        eq((log.count("shutdown-event-of used"), log.count("shutdown-event-of idle")), (1, 0),
           "events: one for the app with an isolate, none for the idle one")


if __name__ == "__main__":
    run()
