#!/usr/bin/env python3
"""Hostile clients on one connection (issue 18, item 5), each against app A on a node with
one worker thread while the bystander app B is requested on the same thread (hostile.py):

- a client that pipelines requests for 1 MiB responses as fast as it can and never reads:
  the server stops taking its requests while their answers wait unsent, nano-dp's RSS
  stays bounded, B is unaffected, and each such connection is closed by --write-timeout;
- a client that stops reading a streamed response: the write timeout closes the connection,
  the app's stream is cancelled and the request leaves /status in_flight;
- a slow but steady reader of large pipelined responses (GET and HEAD mixed) gets every
  byte in order, however long after the idle and write timeouts the transfer ends;
- a client that half-closes right after its request still gets the whole response;
- a client that sends part of a request body and stops gets a 408 after --idle-timeout, and
  the request the app was reading it for ends;
- a client that trickles a body (a few bytes now and then, never idle long enough for the
  idle timeout) gets a 408 once it falls behind --body-min-rate after --body-timeout, and
  /metrics counts it; a body that keeps the rate, or that waits because the app has not read
  it yet, is never cut.
"""
import errno
import fcntl
import re
import socket
import struct
import termios
import time

from hostile import RSS_MIB, Bystander, log_figure, rss_mib, two_apps
from nanotest import Conn, build_request, check, eq, expect, run

MIB = 1024 * 1024
# A short write timeout, so that the cases end in seconds (the default is 30 s).
WT = ["--write-timeout", "1s"]
# Room for a first request that allocates 24 MiB on a busy machine: CPU is not what these
# cases are about.
A_LIMITS = {"cpu_ms": 2000}

A_APP = r"""
const big = new Uint8Array(1 << 20).fill(120);
let started = 0, cancelled = 0;
export default {
  async fetch(request) {
    const url = new URL(request.url);
    switch (url.pathname) {
      case '/big':
        return new Response(big);
      case '/sized':
        return new Response(new Uint8Array(Number(url.searchParams.get('bytes'))));
      case '/endless': {
        started++;
        const chunk = new Uint8Array(65536).fill(122);
        return new Response(new ReadableStream({
          pull(c) { c.enqueue(chunk.slice()); },
          cancel() { cancelled++; },
        }));
      }
      case '/counts':
        return Response.json({ started, cancelled });
      case '/upload':
        return new Response('got ' + (await request.text()).length);
      case '/upload-later':
        await new Promise((r) => setTimeout(r, 2500));
        return new Response('got ' + (await request.text()).length);
      default:
        return new Response('a ok');
    }
  },
};
"""


def unread_bytes(sock):
    """Bytes delivered to sock and not read yet (what the server managed to write)."""
    buf = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    return struct.unpack("i", buf)[0]


def is_reset(sock):
    """True once the peer has closed or reset the connection: a pending socket error, or a
    send (of an empty line, which HTTP/1.1 servers skip between requests) that fails."""
    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
        return True
    try:
        sock.send(b"\r\n", socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    except OSError as e:
        return e.errno in (errno.ECONNRESET, errno.EPIPE)
    return False


def warm(server):
    """A's isolate is made before the bystander starts: its cold start is not the attack."""
    with Conn(server.port) as c:
        c.send(build_request("GET", "/", host="a.test"))
        eq(c.read_response().text, "a ok", "a warm-up")


def app_in_flight(server, name="a"):
    apps = server.status()["apps"]
    if isinstance(apps, dict):
        return apps[name]["in_flight"]
    return next(a["in_flight"] for a in apps if a["name"] == name)


class NonReader:
    """One connection that writes `request` over and over, as fast as the server takes it,
    and never reads. Returns from attack() when the server resets it or `until` passes."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setblocking(False)
        self.sent = 0
        self.max_unread = 0
        self.t0 = time.monotonic()
        self.last_send = self.t0
        self.closed_at = None

    def attack(self, request, until, pid):
        out = b""
        while time.monotonic() < until:
            if len(out) < 64 * 1024:
                out += request * 256
            try:
                n = self.sock.send(out)
                out = out[n:]
                self.sent += n
                self.last_send = time.monotonic()
                continue
            except BlockingIOError:
                pass  # the server does not take more: wait, never read
            except OSError as e:
                if e.errno not in (errno.ECONNRESET, errno.EPIPE):
                    raise
                self.closed_at = time.monotonic()
                return
            self.max_unread = max(self.max_unread, unread_bytes(self.sock))
            if is_reset(self.sock):
                self.closed_at = time.monotonic()
                return
            if rss_mib(pid) > RSS_MIB:
                return  # the server is buffering without bound: stop before it hurts the host
            time.sleep(0.01)

    def close(self):
        self.sock.close()


@check
def pipelining_non_reader_is_held_back_and_closed_by_the_write_timeout():
    """Requests for 1 MiB answers, GET and HEAD mixed, written for 6 s on connection after
    connection (a new one each time the server closes the last), none of them read."""
    attack_s = 6.0
    with two_apps(A_APP, A_LIMITS, args=WT) as s:
        request = (build_request("GET", "/big", host="a.test")
                   + build_request("HEAD", "/big", host="a.test"))
        conns = []
        warm(s)
        with Bystander(s) as b:
            end = time.monotonic() + attack_s
            while time.monotonic() < end and rss_mib(s.proc.pid) <= RSS_MIB:
                c = NonReader(s.port)
                conns.append(c)
                c.attack(request, end, s.proc.pid)
                c.close()
        b.check()
        closed = [c for c in conns if c.closed_at is not None]
        log_figure(f"attacker: {len(conns)} connections, {sum(c.sent for c in conns)} bytes of "
                   f"requests sent, at most {max(c.max_unread for c in conns)} bytes of answers "
                   f"delivered to one connection; nano-dp RSS peak {b.max_rss:.0f} MiB")
        expect(closed, "no attacking connection was closed by the write timeout")
        stall = [c.closed_at - c.last_send for c in closed]
        log_figure(f"closed by the write timeout (1 s): {len(closed)} connections, "
                   f"{min(stall):.2f}-{max(stall):.2f} s after their last request bytes were "
                   f"taken")
        # No progress for 1 s, noticed by the connection's timer within another second.
        expect(max(stall) < 2.5, f"a non-reading connection stayed open {max(stall):.2f} s "
                                 f"after its last write")
        # Requests that were never parsed are not in flight; the node serves A as before.
        eq(app_in_flight(s), 0, "a's in-flight requests after the attack")
        with Conn(s.port) as c:
            c.send(build_request("GET", "/", host="a.test"))
            eq(c.read_response().text, "a ok", "a after the attack")


@check
def write_timeout_cancels_a_stalled_stream_and_releases_the_request():
    with two_apps(A_APP, A_LIMITS, args=WT) as s:
        warm(s)
        with Bystander(s) as b:
            sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
            sock.sendall(build_request("GET", "/endless", host="a.test"))
            t0 = time.monotonic()
            max_unread = 0
            while not is_reset(sock) and time.monotonic() - t0 < 10:
                max_unread = max(max_unread, unread_bytes(sock))
                time.sleep(0.02)
            closed_after = time.monotonic() - t0
            sock.close()
        b.check()
        log_figure(f"stalled stream: {max_unread} bytes delivered, connection closed "
                   f"{closed_after:.2f} s after the request (write timeout 1 s)")
        expect(closed_after < 3.5, f"the stalled connection was not closed ({closed_after:.2f} s)")
        deadline = time.monotonic() + 3
        while app_in_flight(s) != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        eq(app_in_flight(s), 0, "a's in-flight requests once the connection closed")
        with Conn(s.port) as c:
            c.send(build_request("GET", "/counts", host="a.test"))
            eq(c.read_response().text, '{"started":1,"cancelled":1}', "the stream's cancel()")
        s.wait_log(r"access .*app=a .*path=/endless .*aborted=1")


@check
def slow_reader_of_large_pipelined_answers_gets_every_byte():
    """Idle and write timeouts of 1 s; the answers take several seconds to read, at about
    10 MiB/s, with no pause of 1 s."""
    with two_apps(A_APP, A_LIMITS, args=WT + ["--idle-timeout", "1s"]) as s:
        sized = 24 * MIB
        plan = [("GET", f"/sized?bytes={sized}", sized), ("HEAD", f"/sized?bytes={sized}", 0),
                ("GET", "/big", MIB), ("HEAD", "/big", 0), ("GET", "/", 4)]
        with Conn(s.port, timeout=10) as c:
            c.send(b"".join(build_request(m, p, host="a.test") for m, p, _ in plan))
            time.sleep(0.5)
            t0 = time.monotonic()
            got = 0
            for method, path, size in plan:
                head = c.read_response(head_only=True)
                eq(head.status, 200, f"{method} {path}")
                length = int(head.header("content-length"))
                eq(length, size if method == "GET" else (MIB if path == "/big" else sized),
                   f"{method} {path} content-length")
                if method == "HEAD":
                    continue
                while got < length:  # read in 256 KiB pieces, 40 a second
                    n = min(length - got, 256 * 1024)
                    c._exact(n)
                    got += n
                    time.sleep(0.025)
                got = 0
            took = time.monotonic() - t0
            eq(c.buf, b"", "bytes after the last answer")
        log_figure(f"slow reader: {sized + MIB + 4} bytes in {took:.1f} s, none lost")


@check
def half_closed_client_gets_the_whole_answer():
    with two_apps(A_APP, A_LIMITS) as s:
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        sock.sendall(build_request("GET", f"/sized?bytes={16 * MIB}", host="a.test"))
        sock.shutdown(socket.SHUT_WR)
        time.sleep(0.5)  # the server reads the end of input before the answer has left
        data = b""
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            data += chunk
        sock.close()
        head, _, body = data.partition(b"\r\n\r\n")
        expect(head.startswith(b"HTTP/1.1 200"), head[:100])
        eq(len(body), 16 * MIB, "body bytes before the server closed")


@check
def stalled_upload_gets_408_after_the_idle_timeout():
    with two_apps(A_APP, A_LIMITS, args=["--idle-timeout", "1s"]) as s:
        warm(s)
        with Bystander(s) as b:
            with Conn(s.port, timeout=10) as c:
                c.send(build_request("POST", "/upload", {"Content-Length": "100000"},
                                     host="a.test")
                       + b"x" * 1000)  # then nothing
                t0 = time.monotonic()
                r = c.read_response()
                took = time.monotonic() - t0
        b.check()
        log_figure(f"stalled upload: {r.status} after {took:.2f} s (idle timeout 1 s)")
        eq(r.status, 408, "status for a body that stopped coming")
        expect(took < 2.5, f"the 408 took {took:.2f} s")
        deadline = time.monotonic() + 3
        while app_in_flight(s) != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        eq(app_in_flight(s), 0, "a's in-flight requests after the 408")


def refused(server, reason):
    """nano_http_refused_total{reason=...} of the node's /metrics."""
    text = server.status("/metrics").text
    m = re.search(r'^nano_http_refused_total\{reason="%s"\} (\d+)$' % reason, text, re.M)
    expect(m is not None, f"no nano_http_refused_total for {reason} in /metrics")
    return int(m.group(1))


RATE = ["--body-timeout", "1s", "--body-min-rate", "1000", "--idle-timeout", "5s"]


@check
def trickled_upload_gets_408_once_behind_the_minimum_rate():
    with two_apps(A_APP, A_LIMITS, args=RATE) as s:
        warm(s)
        eq(refused(s, "body_too_slow"), 0, "none refused yet")
        with Bystander(s) as b:
            with Conn(s.port, timeout=10) as c:
                c.send(build_request("POST", "/upload", {"Content-Length": "100000"},
                                     host="a.test"))
                t0 = time.monotonic()
                # 20 bytes every 0.2 s: 100 B/s, never idle for the 5 s idle timeout. The
                # deadline is 1 s + 1 s per 1000 bytes: about 1.1 s in.
                status, took = None, None
                c.sock.settimeout(0.2)
                while time.monotonic() - t0 < 8:
                    try:
                        c.sock.sendall(b"y" * 20)
                    except OSError:
                        break
                    try:
                        data = c.sock.recv(4096)
                    except socket.timeout:
                        continue
                    took = time.monotonic() - t0
                    status = data[:12]
                    break
        b.check()
        log_figure(f"trickled upload: {status!r} after {took} s (grace 1 s, 1000 B/s)")
        eq(status, b"HTTP/1.1 408", "a body behind the minimum rate")
        expect(took is not None and took < 3, f"the 408 took {took} s")
        eq(refused(s, "body_too_slow"), 1, "counted in /metrics")
        deadline = time.monotonic() + 3
        while app_in_flight(s) != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        eq(app_in_flight(s), 0, "a's in-flight requests after the 408")


@check
def a_body_at_the_rate_or_held_by_the_app_is_not_cut():
    with two_apps(A_APP, A_LIMITS, args=RATE) as s:
        warm(s)
        # 3,000 B/s for 3 s: above 1000 B/s all along, so it completes long past the grace.
        with Conn(s.port, timeout=10) as c:
            c.send(build_request("POST", "/upload", {"Content-Length": "9000"}, host="a.test"))
            for _ in range(30):
                c.send(b"z" * 300)
                time.sleep(0.1)
            r = c.read_response()
            eq((r.status, r.text), (200, "got 9000"), "a steady body")
        eq(refused(s, "body_too_slow") + refused(s, "body_idle"), 0, "none refused")
    # 16 MiB sent at once to an app that reads it only after 2.5 s: reading is held back
    # meanwhile (the app's time, not the client's), then the rest comes fast. At 1 MiB/s the
    # 64 KiB read before the hold buy 1.06 s: counting the hold would make it a 408.
    with two_apps(A_APP, A_LIMITS, args=["--body-timeout", "1s", "--body-min-rate", "1MiB"]) as s:
        warm(s)
        with Conn(s.port, timeout=20) as c:
            body = b"w" * (16 * MIB)
            c.send(build_request("POST", "/upload-later", {"Content-Length": str(len(body))},
                                 host="a.test") + body)
            r = c.read_response()
            eq((r.status, r.text), (200, f"got {len(body)}"), "a body the app read late")
        eq(refused(s, "body_too_slow") + refused(s, "body_idle"), 0, "none refused")


@check
def metrics_count_refusals_by_reason():
    with two_apps(A_APP, A_LIMITS) as s:
        warm(s)
        before = {k: refused(s, k) for k in ("host", "version", "transfer_coding", "malformed")}
        for raw in (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
                    b"GET / HTTP/2.0\r\nHost: a.test\r\n\r\n",
                    b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: xchunked\r\n\r\n",
                    b"GET / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"):
            with Conn(s.port) as c:
                c.send(raw)
                r = c.read_response()
                expect(r.status >= 400, f"{raw!r}: {r.status}")
        for k, want in (("host", 1), ("version", 1), ("transfer_coding", 1), ("malformed", 1)):
            eq(refused(s, k) - before[k], want, f"refusals counted as {k}")


if __name__ == "__main__":
    run()
