"""upstream: an HTTP/1.1 origin server for NANO's outbound fetch() tests (python3 standard
library only).

    with Upstream() as up:          # 127.0.0.1, an ephemeral port, a thread per connection
        url = up.url("/echo")       # http://127.0.0.1:PORT/echo
        ...
        up.wait_event("hang-closed", timeout=10)

Every socket operation has a timeout (Upstream.IO_TIMEOUT); stop() closes the listener and
every open connection, so no handler thread outlives it. Connections are keep-alive (curl
reuses them). What the handlers saw is kept in `up.events` (a list of (name, detail) tuples)
and `up.requests` (one dict per request head read).

Endpoints (query parameters in brackets):
  /echo                 200, JSON {method, path, query, headers [[name, value]...], body
                        (latin-1 text), body_len, chunked, content_length}; reads Content-Length
                        or chunked bodies; HEAD gets the head only
  /status/N [reason]    status N with that reason phrase (default: http.HTTPStatus's)
  /redirect/S/N [loc=rel|abs|relative-dots] [to=URL]
                        a chain of N redirects with status S (301 302 303 307 308), then /echo;
                        loc=abs: an absolute Location, rel: path-absolute, dots: "../"-relative.
                        N=0 with to=URL: Location: URL (another origin, a bad scheme...)
  /redirect-noloc/S     status S without a Location
  /bytes [n, chunk, chunked=1]   n bytes (default 1024) of a repeating pattern, written in
                        `chunk`-sized pieces, with Content-Length (or chunked framing)
  /count [hash=1]       reads the request body (Content-Length or chunked) without keeping it;
                        JSON {bytes, chunked, content_length, sha256 (with hash=1)}
  /gzip /deflate        GZIP_TEXT compressed (gzip; zlib-wrapped deflate); [bad=truncated]
  /slow [n, delay]      the head, then n chunks (default 5) of 10 bytes each `delay` s apart
                        (default 0.2); event "slow-done" when all were written, "slow-closed"
                        if the client left first
  /hang                 reads the request, never answers; event "hang-closed" once the client
                        closes the connection (polled for up to 60 s)
  /reset                head with Content-Length 1000, 100 bytes, then an RST (SO_LINGER 0)
  /reset-before-head    reads the request, then an RST with nothing sent
  /drop-after-head      head with Content-Length 1000, then a FIN
  /headers-big [n]      a response head of about n KiB (default 300; n X-Filler headers)
  /early-hints          a 103 (with a Link header), then 200 with X-Final: 1
  /garbage              a response that is not HTTP, then a FIN
  /eof                  200 without Content-Length or chunked: the body ends at the FIN
  /early-response       413 before reading the request body (then drains it for 2 s)
  /set-cookie           two Set-Cookie headers (and a Vary)
No brotli in the standard library: there is no /br.
"""
import gzip
import hashlib
import json
import socket
import socketserver
import struct
import threading
import time
import urllib.parse
import zlib
from http import HTTPStatus

GZIP_TEXT = ("NANO fetch decoding test. " * 200).encode()


class _Conn:
    """Buffered reads from one client socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self):
        # Small reads keep the buffer (copied on every take) small.
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def line(self, limit=1 << 20):
        while b"\r\n" not in self.buf:
            if len(self.buf) > limit:
                raise ValueError("line too long")
            self.fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exact(self, n):
        while len(self.buf) < n:
            self.fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def stream(self, n, sink):
        """Passes n bytes to sink(piece) without keeping them."""
        if self.buf:
            piece, self.buf = self.buf[:n], self.buf[n:]
            sink(piece)
            n -= len(piece)
        view = bytearray(1 << 20)
        mv = memoryview(view)
        while n > 0:
            got = self.sock.recv_into(view, min(n, len(view)))
            if got == 0:
                raise EOFError
            sink(mv[:got])
            n -= got


class _Handler(socketserver.BaseRequestHandler):
    def setup(self):
        self.up = self.server.upstream
        self.request.settimeout(Upstream.IO_TIMEOUT)
        with self.up._lock:
            self.up._conns.add(self.request)
            self.up.connections += 1

    def finish(self):
        with self.up._lock:
            self.up._conns.discard(self.request)

    def handle(self):
        c = _Conn(self.request)
        try:
            while self._one(c):
                pass
        except (EOFError, OSError, ValueError):
            pass

    # --- request reading ---
    def _head(self, c):
        line = c.line().decode("latin-1")
        if not line:
            line = c.line().decode("latin-1")
        method, target, version = line.split(" ", 2)
        headers = []
        while True:
            h = c.line()
            if not h:
                break
            k, v = h.decode("latin-1").split(":", 1)
            headers.append((k.strip(), v.strip()))
        return method, target, version, headers

    def _body(self, c, headers, sink):
        """Reads the body per its framing into sink; returns (length, chunked, cl)."""
        lower = {k.lower(): v for k, v in headers}
        te = lower.get("transfer-encoding", "")
        cl = lower.get("content-length")
        if "chunked" in te.lower():
            total = 0
            while True:
                size = int(c.line().split(b";")[0], 16)
                if size == 0:
                    while c.line():
                        pass
                    return total, True, cl
                c.stream(size, sink)
                total += size
                c.exact(2)
        if cl is not None:
            n = int(cl)
            c.stream(n, sink)
            return n, False, cl
        return 0, False, None

    # --- response writing ---
    def _send(self, status, headers=(), body=b"", reason=None, head_only=False):
        reason = reason if reason is not None else _reason(status)
        lines = [f"HTTP/1.1 {status} {reason}"]
        names = {k.lower() for k, _ in headers}
        for k, v in headers:
            lines.append(f"{k}: {v}")
        if "content-length" not in names and "transfer-encoding" not in names \
                and status not in (204, 304) and not 100 <= status < 200:
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.request.sendall(head if head_only else head + body)

    def _one(self, c):
        try:
            method, target, version, headers = self._head(c)
        except EOFError:
            return False
        parts = urllib.parse.urlsplit(target)
        path = parts.path
        query = dict(urllib.parse.parse_qsl(parts.query))
        up = self.up
        record = {"method": method, "path": path, "query": query, "headers": headers,
                  "t": time.monotonic()}
        with up._lock:
            up.requests.append(record)
        head_only = method == "HEAD"

        if path == "/count":
            h = hashlib.sha256() if query.get("hash") == "1" else None
            n, chunked, cl = self._body(c, headers, h.update if h else (lambda piece: None))
            up.event("count", n)
            body = json.dumps({"bytes": n, "chunked": chunked, "content_length": cl,
                               "sha256": h.hexdigest() if h else None}).encode()
            self._send(200, [("Content-Type", "application/json")], body, head_only=head_only)
            return True

        if path == "/early-response":
            # Answers before reading the body, then drains what comes for up to 2 s.
            self._send(413, [("Content-Type", "text/plain"), ("Connection", "close")],
                       b"too large")
            self.request.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + 2
            self.request.settimeout(0.2)
            while time.monotonic() < deadline:
                try:
                    if not self.request.recv(65536):
                        break
                except socket.timeout:
                    continue
                except OSError:
                    break
            up.event("early-done", path)
            return False

        data = []
        n, chunked, cl = self._body(c, headers, lambda piece: data.append(bytes(piece)))
        body_in = b"".join(data)
        record["body"] = body_in

        if path == "/echo" or path.startswith("/echo/"):
            out = json.dumps({"method": method, "path": path, "query": query,
                              "target": target, "headers": headers,
                              "body": body_in.decode("latin-1"), "body_len": n,
                              "chunked": chunked, "content_length": cl}).encode()
            self._send(200, [("Content-Type", "application/json"), ("X-Upstream", up.name)],
                       out, head_only=head_only)
            return True

        if path.startswith("/status/"):
            status = int(path.split("/")[2])
            body = b"" if status in (204, 304) or status < 200 else f"status {status}".encode()
            self._send(status, [("Content-Type", "text/plain")], body,
                       reason=query.get("reason"), head_only=head_only)
            return True

        if path.startswith("/redirect/"):
            _, _, status, left = path.split("/")[:4]
            status, left = int(status), int(left)
            if left <= 0 and "to" in query:
                loc = query["to"]
            elif left <= 0:
                loc = "/echo/final"
            else:
                kind = query.get("loc", "rel")
                rest = f"{left - 1}" + (f"?{parts.query}" if parts.query else "")
                if kind == "abs":
                    loc = f"{up.base}/redirect/{status}/{rest}"
                elif kind == "dots":
                    loc = f"../{status}/{rest}"
                else:
                    loc = f"/redirect/{status}/{rest}"
                if left == 1:
                    loc = {"abs": f"{up.base}/echo/final", "dots": "../../echo/final"}.get(
                        kind, "/echo/final")
            self._send(status, [("Location", loc), ("Content-Type", "text/plain")],
                       b"redirecting", head_only=head_only)
            return True

        if path.startswith("/redirect-noloc/"):
            self._send(int(path.split("/")[2]), [("Content-Type", "text/plain")], b"no location",
                       head_only=head_only)
            return True

        if path == "/bytes":
            total = int(query.get("n", "1024"))
            piece = int(query.get("chunk", str(1 << 20)))
            block = (bytes(range(256)) * (piece // 256 + 1))[:piece]
            if query.get("chunked") == "1":
                self._send(200, [("Content-Type", "application/octet-stream"),
                                 ("Transfer-Encoding", "chunked")], head_only=True)
            else:
                self._send(200, [("Content-Type", "application/octet-stream"),
                                 ("Content-Length", str(total))], head_only=True)
            if head_only:
                return True
            left = total
            while left > 0:
                k = min(left, piece)
                if query.get("chunked") == "1":
                    self.request.sendall(b"%x\r\n" % k + block[:k] + b"\r\n")
                else:
                    self.request.sendall(block[:k])
                left -= k
            if query.get("chunked") == "1":
                self.request.sendall(b"0\r\n\r\n")
            up.event("bytes-done", total)
            return True

        if path in ("/gzip", "/deflate"):
            if path == "/gzip":
                payload, coding = gzip.compress(GZIP_TEXT), query.get("coding", "gzip")
            else:
                payload, coding = zlib.compress(GZIP_TEXT), "deflate"
            if query.get("bad") == "truncated":
                payload = payload[:len(payload) // 2]
            self._send(200, [("Content-Type", "text/plain"), ("Content-Encoding", coding)],
                       payload, head_only=head_only)
            return True

        if path == "/slow":
            count = int(query.get("n", "5"))
            delay = float(query.get("delay", "0.2"))
            self._send(200, [("Content-Type", "text/plain"),
                             ("Content-Length", str(10 * count))], head_only=True)
            try:
                for i in range(count):
                    time.sleep(delay)
                    self.request.sendall(b"%09d\n" % i)
            except OSError:
                up.event("slow-closed", path)
                return False
            up.event("slow-done", path)
            return True

        if path == "/hang":
            up.event("hang-start", query.get("id"))
            deadline = time.monotonic() + 60
            self.request.settimeout(0.2)
            while time.monotonic() < deadline and not up._stopping:
                try:
                    if self.request.recv(65536) == b"":
                        up.event("hang-closed", query.get("id"))
                        return False
                except socket.timeout:
                    continue
                except OSError:
                    up.event("hang-closed", query.get("id"))
                    return False
            return False

        if path == "/reset":
            self._send(200, [("Content-Type", "text/plain"), ("Content-Length", "1000")],
                       head_only=True)
            self.request.sendall(b"r" * 100)
            time.sleep(0.1)
            _rst(self.request)
            return False

        if path == "/reset-before-head":
            _rst(self.request)
            return False

        if path == "/drop-after-head":
            self._send(200, [("Content-Type", "text/plain"), ("Content-Length", "1000")],
                       head_only=True)
            time.sleep(0.05)
            self.request.shutdown(socket.SHUT_RDWR)
            return False

        if path == "/early-hints":
            self.request.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n")
            time.sleep(0.05)
            self._send(200, [("Content-Type", "text/plain"), ("X-Final", "1")], b"after hints",
                       head_only=head_only)
            return True

        if path == "/garbage":
            self.request.sendall(b"THIS IS NOT HTTP\r\n\r\n")
            self.request.shutdown(socket.SHUT_WR)
            return False

        if path == "/eof":
            self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                 b"Connection: close\r\n\r\n" + b"e" * 5000)
            self.request.shutdown(socket.SHUT_WR)
            return False

        if path == "/headers-big":
            filler = "f" * 1000
            hdrs = [(f"X-Filler-{i}", filler) for i in range(int(query.get("n", "300")))]
            self._send(200, hdrs, b"big head", head_only=head_only)
            return True

        if path == "/set-cookie":
            self._send(200, [("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; HttpOnly"),
                             ("Vary", "Accept"), ("Vary", "Origin")], b"cookies",
                       head_only=head_only)
            return True

        self._send(404, [("Content-Type", "text/plain")], b"no such upstream path",
                   head_only=head_only)
        return True


def _reason(status):
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Whatever"


def _rst(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512


class Upstream:
    IO_TIMEOUT = 10.0

    def __init__(self, name="up"):
        self.name = name
        self.events = []
        self.requests = []
        self.connections = 0
        self._conns = set()
        self._lock = threading.Lock()
        self._stopping = False
        self._server = None
        self._thread = None
        self.port = None

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def url(self, path="/"):
        return self.base + path

    def event(self, name, detail=None):
        with self._lock:
            self.events.append((name, detail))

    def seen(self, name):
        with self._lock:
            return [d for n, d in self.events if n == name]

    def wait_event(self, name, count=1, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.seen(name)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"upstream {self.name}: event {name!r} seen {len(self.seen(name))}"
                             f" times, not {count}, within {timeout}s; events: {self.events}")

    def requests_to(self, path):
        with self._lock:
            return [r for r in self.requests if r["path"] == path]

    def start(self):
        self._server = _TCPServer(("127.0.0.1", 0), _Handler)
        self._server.upstream = self
        self._server.timeout = 0.5
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stopping = True
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=self.IO_TIMEOUT)
        with self._lock:
            conns = list(self._conns)
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def closed_port():
    """A loopback port nothing listens on (bound, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
