"""Hostile tenants against DecompressionStream and Headers (issue 18 items 4 and 7).

A 1 MB gzip bomb (1 GiB of zeros) sent to an app that decompresses it, read by the app or
streamed back to a client that reads slowly or not at all; a request with 8,000 headers to an
app that iterates them. Each runs against app A on one worker thread while the bystander app B
is requested on the same thread (hostile.py): B must get only 200s with a low p99, and
nano-dp's RSS must stay bounded.
"""
import json
import os
import struct
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nanotest import SANITIZED, Conn, build_request, check, eq, expect, run  # noqa: E402
from hostile import RSS_MIB, Bystander, log_figure, rss_mib, timed_request, two_apps  # noqa: E402

MIB = 1 << 20
CPU_MS = 50  # the multi-tenant default (docs/config.md#limits); ConfigServer raises it under ASan

A_APP = """
export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === '/count') {
      // Decompresses the body as it arrives and counts the bytes.
      let n = 0;
      for await (const c of request.body.pipeThrough(new DecompressionStream('gzip'))) n += c.byteLength;
      return new Response(String(n));
    }
    if (url.pathname === '/count-whole') {
      // The whole body written to the stream as one chunk, the output counted.
      const ds = new DecompressionStream('gzip');
      const writer = ds.writable.getWriter();
      writer.write(await request.bytes()).catch(() => {});
      writer.close().catch(() => {});
      let n = 0;
      for await (const c of ds.readable) n += c.byteLength;
      return new Response(String(n));
    }
    if (url.pathname === '/echo') {
      // The whole body written to the stream as one chunk, the output streamed back.
      const bytes = await request.bytes();
      const ds = new DecompressionStream('gzip');
      const writer = ds.writable.getWriter();
      writer.write(bytes).catch(() => {});
      writer.close().catch(() => {});
      return new Response(ds.readable);
    }
    if (url.pathname === '/headers') {
      // Each way of iterating the request's headers, timed inside the app.
      const t0 = performance.now();
      let n = 0, len = 0;
      for (const [name, value] of request.headers) { n++; len += name.length + value.length; }
      request.headers.forEach((value, name) => { len += name.length; });
      for (const entry of request.headers.entries()) len += entry[1].length;
      const hit = request.headers.get('h-none') === null && request.headers.has('host');
      return Response.json({ n, len, hit, ms: performance.now() - t0 });
    }
    return new Response('a ok');
  },
};
"""


def gzip_bomb(mib):
    """A gzip member of `mib` MiB of zeros, ~1 KB per MiB: one raw deflate segment for 1 MiB
    ended by a full flush (byte-aligned, the compressor's state reset, so every repetition
    is the same bytes), repeated; then the last block and the trailer."""
    zeros = bytes(MIB)
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = co.compress(zeros) + co.flush(zlib.Z_FULL_FLUSH)
    end = co.flush()
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    return header + segment * mib + end + struct.pack("<II", crc, (mib * MIB) & 0xFFFFFFFF)


_BOMB = []


def bomb():
    """The 1 GiB bomb, built once (and checked once, small, against Python's gzip)."""
    if not _BOMB:
        eq(len(zlib.decompress(gzip_bomb(3), 31)), 3 * MIB, "the bomb's construction")
        _BOMB.append(gzip_bomb(1024))
    return _BOMB[0]


def post(path, body, host="a.test"):
    return build_request("POST", path, {"Content-Type": "application/gzip"}, body, host=host)


@check
def gzip_bomb_read_by_the_app_is_stopped_at_the_cpu_limit():
    data = bomb()
    log_figure(f"bomb: {len(data)} bytes of gzip for {1024 * MIB} bytes")
    with two_apps(A_APP) as s:
        # A small body goes through whole: the app works, and the output is all there.
        small = zlib.compress(b"hello, gzip " * 5000, wbits=31)
        for path in ("/count", "/count-whole"):
            r, _ = timed_request(s, path, method="POST", body=small)
            eq((r.status, r.text), (200, str(12 * 5000)), f"a small gzip body to {path}")
        with Bystander(s) as b:
            # The body piped through as it arrives (64 KiB chunks of it, each 64 MiB of
            # output), then the whole body as one chunk (1 GiB of output from one write).
            for path in ("/count", "/count-whole"):
                # The bystander's pace before each attack: each may hold B up to A's CPU
                # limit once, and p99 is over all of B's requests.
                time.sleep(0.6)
                r, took = timed_request(s, path, method="POST", body=data)
                log_figure(f"bomb to {path}: {getattr(r, 'status', r)} after "
                           f"{took * 1000:.0f} ms (cpu_ms {CPU_MS}); "
                           f"RSS {rss_mib(s.proc.pid):.0f} MiB")
                expect(getattr(r, "status", None) == 500, f"the bomb was not stopped: {r}")
                expect(took < 1.0 + CPU_MS / 1000 or SANITIZED,
                       f"the 500 came after {took:.2f} s")
            time.sleep(0.6)  # and after them
        s.wait_count(r"app\.cpu_limit app=a", 2, timeout=5)
        b.check()
        # No request of B waited for the whole decompression (p99 would hide one that did).
        worst = max(x[1] for x in b.results)
        expect(worst < 1.0 or SANITIZED, f"a request of B waited {worst:.2f} s")
        # A is still there for its next request.
        r, _ = timed_request(s, "/")
        eq((r.status, r.text), (200, "a ok"), "A after the bomb")


@check
def gzip_bomb_streamed_to_a_client_that_does_not_read_holds_bounded_memory():
    data = bomb()
    with two_apps(A_APP) as s:
        with Bystander(s) as b:
            rss0 = rss_mib(s.proc.pid)
            c = Conn(s.port, timeout=10)
            c.send(post("/echo", data))
            # Not reading at all: the server may only fill the socket's buffers.
            t0 = time.monotonic()
            peak = rss0
            while time.monotonic() - t0 < 2.0:
                peak = max(peak, rss_mib(s.proc.pid))
                time.sleep(0.05)
            log_figure(f"non-reader: RSS {rss0:.0f} MiB before, {peak:.0f} MiB peak over 2 s")
            # Then a slow reader: 4 MiB, 256 KiB at a time with pauses; all zeros, in order.
            c.sock.settimeout(10)
            got = b""
            head = b""
            while b"\r\n\r\n" not in head:
                head += c.sock.recv(4096)
            head, got = head.split(b"\r\n\r\n", 1)
            expect(head.startswith(b"HTTP/1.1 200"), f"the echo response: {head[:100]!r}")
            read = len(got)
            t1 = time.monotonic()
            while read < 4 * MIB:
                chunk = c.sock.recv(256 * 1024)
                if not chunk:
                    break  # the server may end the stream (a CPU limit counted per request)
                got += chunk
                read += len(chunk)
                if len(got) > MIB:
                    only_zeros(got)
                    got = b""
                time.sleep(0.02)
                peak = max(peak, rss_mib(s.proc.pid))
            log_figure(f"slow reader: {read} bytes in {time.monotonic() - t1:.1f} s, "
                       f"RSS peak {peak:.0f} MiB")
            expect(read >= MIB, f"the slow reader got only {read} bytes")
            c.close()  # gone mid-stream: the stream is cancelled, the codec state freed
            time.sleep(0.3)
            r, _ = timed_request(s, "/")
            eq((r.status, r.text), (200, "a ok"), "A after the client left")
        # The old code's one call held ~400 MiB here before it was stopped; now it is what
        # the socket buffers and one 64 KiB chunk hold.
        expect(peak < RSS_MIB / 2, f"nano-dp grew to {peak:.0f} MiB while a client did not read")
        b.check()


def only_zeros(raw):
    """Checks that a stretch of a chunked body (size lines and data, possibly cut at either
    end) carries only zeros: between CRLFs there are zeros or a chunk's hex size."""
    for part in raw.split(b"\r\n"):
        if part.strip(b"\x00") and not all(c in b"0123456789abcdefABCDEF" for c in part):
            raise AssertionError(f"a non-zero byte in the body near {part[:40]!r}")


def many_headers(n):
    """n distinct header names of three characters, in no sorted order, each with the value
    "1": 8 bytes a line, so 8,000 fit in the 64 KiB request head limit."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    names = []
    for i in range(n):
        j = (i * 7919) % (36 ** 3)
        names.append(digits[j // 1296] + digits[(j // 36) % 36] + digits[j % 36])
    return [(name, "1") for name in names]


@check
def eight_thousand_headers_iterate_well_under_the_cpu_limit():
    headers = many_headers(8000)
    expect(len({h[0] for h in headers}) == 8000, "distinct names")
    # A limit of 1 s, not the 50 ms default: a cost quadratic in the number of headers (64M
    # steps) still blows it, while a busy machine (another suite beside this one) does not
    # turn the first, not yet optimized, iteration (~45-65 ms of wall time on the idle VM)
    # into a failure. How fast it is belongs to bench/, not to a test.
    with two_apps(A_APP, {"cpu_ms": 1000}) as s:
        # A serves ordinary traffic first (its isolate and the code on this path exist).
        r, _ = timed_request(s, "/headers", headers=headers[:20])
        eq(r.status, 200, "a request with 20 headers")
        with Bystander(s) as b:
            req = build_request("GET", "/headers", headers, host="a.test")
            log_figure(f"8,000 headers: a request head of {len(req)} bytes")
            # Five times (each request's Headers is new: nothing is cached between them).
            in_app = []
            for i in range(5):
                # The bystander's pace between them: each may hold B while it runs, and p99
                # is over all of B's requests.
                time.sleep(0.4)
                with Conn(s.port, timeout=10) as c:
                    t0 = time.monotonic()
                    c.send(req)
                    r = c.read_response()
                    took = time.monotonic() - t0
                # A 200 means the request stayed under its CPU limit (a 500 if it had not).
                expect(r.status == 200, f"8,000 headers, request {i + 1}: {r}")
                got = json.loads(r.text)
                eq(got["n"], 8000 + 1, "headers seen (with Host)")
                eq(got["hit"], True, "get() and has()")
                in_app.append(got["ms"])
                log_figure(f"8,000 headers, request {i + 1}: 3 iterations, a get() and a has() "
                           f"in {got['ms']:.1f} ms in the app, {took * 1000:.0f} ms for the "
                           f"request (cpu_ms 1000)")
            time.sleep(0.2)
        b.check()


if __name__ == "__main__":
    run()
