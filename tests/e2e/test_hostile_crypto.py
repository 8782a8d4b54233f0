"""Hostile tenants and crypto.subtle's thread pool (issue 19): the libuv pool's threads serve
every app of the process, so one app's long crypto work must not keep another app's crypto
jobs waiting. nano-dp runs here with a pool of two threads (UV_THREADPOOL_SIZE=2), which app
A's isolate alone can fill (it may run two jobs at once); the bystander app B digests 1 MiB
per request, which is a pool job too. PBKDF2 runs in slices, each queued behind the jobs
already waiting, and long jobs that cannot be sliced (RSA key generation) take at most half
the pool; so B's digests wait at most a slice, and B keeps its p99 (hostile.py)."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nanotest import SANITIZED, Conn, build_request, check, eq, expect, run  # noqa: E402
from hostile import Bystander, log_figure, timed_request, two_apps  # noqa: E402

SLOW = 5 if SANITIZED else 1

A_APP = """
const utf8 = (s) => new TextEncoder().encode(s);
export default {
  async fetch(request) {
    const path = new URL(request.url).pathname;
    if (path === '/pbkdf2') {
      // Two derivations at once: the isolate's two places on the pool. 10,000,000
      // iterations each: seconds of work, far past this app's 2 s wall limit.
      const key = await crypto.subtle.importKey('raw', utf8('pw'), 'PBKDF2', false, ['deriveBits']);
      const derive = () => crypto.subtle.deriveBits(
        { name: 'PBKDF2', hash: 'SHA-512', salt: utf8('salt'), iterations: 10000000 }, key, 512);
      await Promise.all([derive(), derive()]);
      return new Response('derived');
    }
    if (path === '/rsa') {
      // Two RSA-4096 generations at once: a second or more each, and they cannot be sliced.
      const gen = () => crypto.subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 4096,
        publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, false, ['sign', 'verify']);
      await Promise.all([gen(), gen()]);
      return new Response('generated');
    }
    if (path === '/owasp') {
      // What an app storing passwords does (OWASP's 2023 advice: 600,000 iterations).
      const key = await crypto.subtle.importKey('raw', utf8('pw'), 'PBKDF2', false, ['deriveBits']);
      const bits = await crypto.subtle.deriveBits(
        { name: 'PBKDF2', hash: 'SHA-256', salt: utf8('salt'), iterations: 600000 }, key, 256);
      return new Response(String(bits.byteLength));
    }
    return new Response('a');
  },
};
"""

# Each request digests 1 MiB + 1 byte: a job on the thread pool.
B_DIGEST = """
const big = new Uint8Array((1 << 20) + 1);
let n = 0;
export default {
  async fetch() {
    big[0] = n++ & 0xff;
    const d = new Uint8Array(await crypto.subtle.digest('SHA-256', big));
    return new Response('b ok ' + d[0]);
  },
};
"""


class pool_of(object):
    """Sets UV_THREADPOOL_SIZE for the nano-dp processes started inside."""

    def __init__(self, n):
        self.n = str(n)

    def __enter__(self):
        self.old = os.environ.get("UV_THREADPOOL_SIZE")
        os.environ["UV_THREADPOOL_SIZE"] = self.n

    def __exit__(self, *exc):
        if self.old is None:
            del os.environ["UV_THREADPOOL_SIZE"]
        else:
            os.environ["UV_THREADPOOL_SIZE"] = self.old


def fire_all(s, path, n, results):
    """n concurrent requests for path on app A, each on its own connection; results gets
    (status or error, seconds) per request."""
    def one(i):
        r, dt = timed_request(s, path, timeout=30)
        results[i] = (r.status if hasattr(r, "status") else r, dt)
    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    return threads


@check
def a_pbkdf2_flood_does_not_keep_another_apps_digests_waiting():
    with pool_of(2), two_apps(A_APP, a_limits={"wall_time": 2}, b_source=B_DIGEST) as s:
        results = [None] * 4
        with Bystander(s, interval=0.01) as b:
            threads = fire_all(s, "/pbkdf2", 4, results)
            time.sleep(2)  # the flood runs: four requests, eight derivations queued
            for t in threads:
                t.join(10 * SLOW)
        b.check()
        # A's requests end at its wall limit (2 s), not after seconds of derivation.
        for status, dt in results:
            expect(status in (500, 503, 504), f"A answered {status} after {dt:.1f} s")
            expect(dt < 2 + 2 * SLOW, f"A's request took {dt:.1f} s")
        log_figure(f"A's requests: {[(st, round(dt, 2)) for st, dt in results]}")
        eq(s.request(path="/", host="b.test").status, 200, "B after the flood")


@check
def an_rsa_key_generation_flood_leaves_half_the_pool_to_others():
    # RSA generations hold a pool thread for seconds: with a pool of two, at most one runs
    # them, so B's digests always find the other thread.
    with pool_of(2), two_apps(A_APP, a_limits={"wall_time": 2}, b_source=B_DIGEST) as s:
        results = [None] * 3
        with Bystander(s, interval=0.01) as b:
            threads = fire_all(s, "/rsa", 3, results)
            time.sleep(2)
            for t in threads:
                t.join(10 * SLOW)
        b.check()
        for status, dt in results:
            expect(status in (200, 500, 503, 504), f"A answered {status} after {dt:.1f} s")
        log_figure(f"A's requests: {[(st, round(dt, 2)) for st, dt in results]}")


@check
def the_slices_of_a_long_derivation_cost_its_request_no_cpu_time():
    # 600,000 iterations run in about 150 slices; the request's CPU budget (50 ms by default)
    # pays only for its own JS, not for the pool's work or the slices' comings and goings.
    with pool_of(2), two_apps(A_APP) as s:
        for _ in range(2):
            r, dt = timed_request(s, "/owasp")
            eq(getattr(r, "status", r), 200, f"after {dt:.2f} s; log:\n{s.log()[-2000:]}")
            eq(r.text, "32", "derived bytes")


if __name__ == "__main__":
    run()
