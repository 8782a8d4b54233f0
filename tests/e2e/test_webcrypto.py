#!/usr/bin/env python3
"""crypto.subtle's slow work runs on the libuv thread pool (issue 19): while one request derives a
key with millions of iterations, generates an RSA-4096 key or digests 64 MiB, the same worker
thread keeps serving other requests; the results are right; a client that leaves, or a forced
shutdown, while the work runs neither crashes nor hangs the server."""
import hashlib
import signal
import threading
import time

from nanotest import Conn, Server, build_request, check, eq, expect, run

ITERATIONS = 4000000

APP = """
const pathOf = (u) => u.slice(u.indexOf('/', u.indexOf('//') + 2));
const utf8 = (s) => new TextEncoder().encode(s);
const hex = (b) => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, '0')).join('');
export default {
  async fetch(request) {
    const path = pathOf(request.url);
    if (path === '/slow' || path === '/slower') {
      console.log('pbkdf2-start');
      const key = await crypto.subtle.importKey('raw', utf8('password'), 'PBKDF2', false, ['deriveBits']);
      const bits = await crypto.subtle.deriveBits(
        { name: 'PBKDF2', hash: 'SHA-256', salt: utf8('salt'), iterations: path === '/slow' ? %d : 10000000 },
        key, 256);
      console.log('pbkdf2-done');
      return new Response(hex(bits));
    }
    if (path === '/rsa') {
      console.log('rsa-start');
      const { publicKey, privateKey } = await crypto.subtle.generateKey({ name: 'RSA-PSS',
        modulusLength: 4096, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, true,
        ['sign', 'verify']);
      const data = utf8('signed');
      const sig = await crypto.subtle.sign({ name: 'RSA-PSS', saltLength: 32 }, privateKey, data);
      const ok = await crypto.subtle.verify({ name: 'RSA-PSS', saltLength: 32 }, publicKey, sig, data);
      return new Response(`${publicKey.algorithm.modulusLength} ${sig.byteLength} ${ok}`);
    }
    if (path === '/digest') {
      const big = new Uint8Array(32 << 20);
      for (let i = 0; i < big.length; i += 4096) big[i] = i >>> 12;
      console.log('digest-start');
      // On the pool, a timer set now fires before the digest settles; done here, it could not.
      let fired = false;
      setTimeout(() => { fired = true; }, 0);
      const d = await crypto.subtle.digest('SHA-512', big);
      return new Response(`${hex(d)} ${fired}`);
    }
    return new Response('fast');
  },
};
""" % ITERATIONS


def fire(port, path, results, i):
    try:
        with Conn(port, timeout=30) as c:
            c.send(build_request("GET", path))
            r = c.read_response()
            results[i] = (r.status, r.text, time.monotonic())
    except Exception as e:  # recorded, checked by the caller
        results[i] = ("error", repr(e), time.monotonic())


def served_meanwhile(s, path, start_log, results):
    """Fires path, waits for its start log, then times five /fast requests while it runs."""
    t = threading.Thread(target=fire, args=(s.port, path, results, 0))
    t.start()
    s.wait_log(start_log, timeout=10)
    served = []
    for _ in range(5):
        t0 = time.monotonic()
        r = s.request(path="/fast")
        eq(r.status, 200, "fast status")
        served.append((time.monotonic() - t0, time.monotonic()))
    t.join(timeout=60)
    return served


@check
def a_long_pbkdf2_does_not_stop_other_requests_on_its_thread():
    want = hashlib.pbkdf2_hmac("sha256", b"password", b"salt", ITERATIONS, 32).hex()
    with Server(APP) as s:  # one worker thread
        results = [None]
        served = served_meanwhile(s, "/slow", r"pbkdf2-start", results)
        status, body, t_slow = results[0]
        eq(status, 200, f"slow request: {body}")
        eq(body, want, "PBKDF2-HMAC-SHA-256 output (hashlib's)")
        expect(all(dt < 0.5 for dt, _ in served), f"fast requests took {[round(d, 3) for d, _ in served]}s")
        expect(served[-1][1] < t_slow, "the fast requests were answered before the derivation ended")


@check
def rsa_4096_generation_and_a_32_mib_digest_do_not_stop_other_requests():
    big = bytearray(32 << 20)
    for i in range(0, len(big), 4096):
        big[i] = (i >> 12) & 0xFF
    want = hashlib.sha512(big).hexdigest()
    with Server(APP, ["--memory-limit", "256"]) as s:  # one worker thread
        for path, start, check_body in (
                ("/rsa", r"rsa-start", lambda b: eq(b, "4096 512 true", "RSA-4096 key, signature, verify")),
                ("/digest", r"digest-start", lambda b: eq(b, want + " true", "SHA-512 of 32 MiB (hashlib's), a timer fired meanwhile"))):
            results = [None]
            served = served_meanwhile(s, path, start, results)
            status, body, t_slow = results[0]
            eq(status, 200, f"{path}: {body}")
            check_body(body)
            expect(all(dt < 0.5 for dt, _ in served),
                   f"{path}: fast requests took {[round(d, 3) for d, _ in served]}s")


@check
def a_client_leaving_mid_derivation_then_a_forced_shutdown_do_not_crash():
    with Server(APP, ["--drain-timeout", "1"]) as s:
        with Conn(s.port) as c:
            c.send(build_request("GET", "/slow"))
            s.wait_log(r"pbkdf2-start", timeout=5)
        eq(s.request(path="/fast").text, "fast", "served after the client left")
        s.wait_log(r"pbkdf2-done", timeout=30)  # the abandoned work completes and settles
        eq(s.request(path="/fast").text, "fast", "served after the abandoned work ended")
        # Now one derivation in flight (10,000,000 iterations: seconds, longer than the 1 s
        # drain) when a forced shutdown frees the isolate under it.
        results = [None]
        t = threading.Thread(target=fire, args=(s.port, "/slower", results, 0))
        t.start()
        s.wait_count(r"pbkdf2-start", 2, timeout=5)
        s.signal(signal.SIGTERM)
        code = s.wait_exit(timeout=30)
        t.join(timeout=10)
        eq(code, 1, f"exit code (forced after the drain timeout); log:\n{s.log()}")
        s.wait_log(r"dp\.shutdown_forced")


if __name__ == "__main__":
    run()
