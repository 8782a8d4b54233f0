#!/usr/bin/env python3
"""An app that calls each ES2023-ES2026 built-in nano-dp adds to V8 10.2 (core-js in the
snapshot, docs/engine-gaps.md) answers the same as on deno.

The app reports, per built-in, what it returned (or the error it threw) as JSON. nano-dp's
report must equal engine_gaps.expected.json, which is what deno answered. Where deno is
installed (on PATH, $NANO_DENO, or bench's peers in /tmp/nano-bench-peers), the same module is
also served by `deno serve` in the same run and its report must equal the file too, so the
file stays deno's word."""
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request

from nanotest import Server, check, eq, expect, run, scratch_dir

HERE = os.path.dirname(os.path.abspath(__file__))
EXPECTED_FILE = os.path.join(HERE, "engine_gaps.expected.json")

APP = r"""
const cases = {
  "Array.prototype.toSorted": () => [3, 1, 2].toSorted(),
  "Array.prototype.toReversed": () => [1, 2, 3].toReversed(),
  "Array.prototype.toSpliced": () => [1, 2, 3, 4].toSpliced(1, 2, "x"),
  "Array.prototype.with": () => [1, 2, 3].with(-1, 9),
  "Array.prototype.with out of range": () => [1].with(5, 0),
  "TypedArray.prototype.toSorted": () => Array.from(new Int16Array([5, -1, 3]).toSorted()),
  "TypedArray.prototype.toReversed": () => Array.from(new Uint8Array([1, 2]).toReversed()),
  "TypedArray.prototype.with": () => Array.from(new Float64Array([1, 2]).with(0, 0.5)),
  "Object.groupBy": () => Object.groupBy(["ant", "bee", "cat", "ape"], (w) => w[0]),
  "Map.groupBy": () => [...Map.groupBy([1, 2, 3, 4], (n) => n % 2 === 0)],
  "Promise.withResolvers": async () => {
    const { promise, resolve } = Promise.withResolvers();
    setTimeout(() => resolve("later"), 1);
    return await promise;
  },
  "Promise.try": async () => [await Promise.try((a, b) => a + b, 2, 3),
    await Promise.try(() => { throw new RangeError("r"); }).catch((e) => e.name)],
  "String.prototype.isWellFormed": () => ["ok", "a\uD800b"].map((s) => s.isWellFormed()),
  "String.prototype.toWellFormed": () => "a\uD800b\uDFFF".toWellFormed(),
  "ArrayBuffer.prototype.transfer": () => {
    const a = new Uint8Array([1, 2, 3, 4]).buffer;
    const b = a.transfer(6);
    return [a.detached, a.byteLength, b.byteLength, Array.from(new Uint8Array(b))];
  },
  "ArrayBuffer.prototype.transferToFixedLength": () => {
    const a = new Uint8Array([7, 8]).buffer;
    const b = a.transferToFixedLength(1);
    return [a.detached, Array.from(new Uint8Array(b))];
  },
  "ArrayBuffer.prototype.detached": () => new ArrayBuffer(1).detached,
  "Set.prototype.union": () => [...new Set([1, 2]).union(new Set([2, 3]))],
  "Set.prototype.intersection": () => [...new Set([1, 2, 3]).intersection(new Set([3, 2]))],
  "Set.prototype.difference": () => [...new Set([1, 2, 3]).difference(new Set([2]))],
  "Set.prototype.symmetricDifference": () => [...new Set([1, 2]).symmetricDifference(new Set([2, 3]))],
  "Set.prototype.isSubsetOf": () => new Set([1]).isSubsetOf(new Set([1, 2])),
  "Set.prototype.isSupersetOf": () => new Set([1]).isSupersetOf(new Set([1, 2])),
  "Set.prototype.isDisjointFrom": () => new Set([1]).isDisjointFrom(new Set([2])),
  "Set methods with a set-like": () => [...new Set([1, 2, 3]).intersection(new Map([[2, "b"]]))],
  "Iterator": () => [typeof Iterator, Object.getPrototypeOf([].values()) instanceof Object,
    [].values() instanceof Iterator],
  "Iterator.from": () => Iterator.from({ next() { return { done: true }; } }).toArray(),
  "Iterator.prototype helpers": () => {
    function* nat() { let i = 0; for (;;) yield i++; }
    return nat().drop(1).filter((n) => n % 2).map((n) => n * n).take(3).toArray();
  },
  "Iterator.prototype.flatMap": () => [1, 2].values().flatMap((n) => [n, -n]).toArray(),
  "Iterator.prototype.reduce": () => [1, 2, 3].values().reduce((a, b) => a + b),
  "Iterator.prototype.some/every/find": () => [[1, 2].values().some((n) => n > 1),
    [1, 2].values().every((n) => n > 1), [1, 2, 3].values().find((n) => n > 1)],
  "Iterator.prototype.forEach": () => { const out = []; [1, 2].values().forEach((n) => out.push(n)); return out; },
  "Iterator.prototype.take negative": () => [].values().take(-1),
  "RegExp.escape": () => RegExp.escape("1.5*x+y"),
  "Math.f16round": () => [Math.f16round(5.0005), Math.f16round(1e6)],
  "Math.sumPrecise": () => [Math.sumPrecise([1e20, 0.1, -1e20]), Math.sumPrecise([])],
  "DataView.prototype.getFloat16/setFloat16": () => {
    const dv = new DataView(new ArrayBuffer(4));
    dv.setFloat16(0, 3.14159);
    dv.setFloat16(2, -0.5, true);
    return [dv.getFloat16(0), dv.getFloat16(2, true), dv.getUint16(0)];
  },
  "Array.fromAsync": async () => Array.fromAsync((async function* () { yield 1; yield 2; })()),
  "Error.isError": () => [Error.isError(new SyntaxError()), Error.isError({ name: "Error" })],
  "Uint8Array.fromBase64": () => Array.from(Uint8Array.fromBase64("SGk_", { alphabet: "base64url" })),
  "Uint8Array.fromHex": () => Array.from(Uint8Array.fromHex("00ff10")),
  "Uint8Array.fromHex odd": () => Uint8Array.fromHex("abc"),
  "Uint8Array.prototype.toBase64": () => new Uint8Array([251, 255]).toBase64({ omitPadding: true }),
  "Uint8Array.prototype.toHex": () => new Uint8Array([0, 171]).toHex(),
  "Uint8Array.prototype.setFromBase64": () => {
    const t = new Uint8Array(4);
    const r = t.setFromBase64("AQID");
    return [r.read, r.written, Array.from(t)];
  },
  "Uint8Array.prototype.setFromHex": () => {
    const t = new Uint8Array(2);
    return [t.setFromHex("0a0b0c"), Array.from(t)];
  },
  "Symbol.dispose/asyncDispose": () => [typeof Symbol.dispose, typeof Symbol.asyncDispose,
    Symbol.dispose.description, Symbol.keyFor(Symbol.dispose)],
  "DisposableStack": () => {
    const log = [];
    const s = new DisposableStack();
    s.use({ [Symbol.dispose]() { log.push("used"); } });
    s.defer(() => log.push("deferred"));
    s.adopt("held", (v) => log.push("adopted " + v));
    s.dispose();
    return [log, s.disposed];
  },
  "AsyncDisposableStack": async () => {
    const log = [];
    const s = new AsyncDisposableStack();
    s.defer(async () => log.push("async deferred"));
    await s.disposeAsync();
    return [log, s.disposed];
  },
  "SuppressedError": () => {
    const e = new SuppressedError(1, 2, "m");
    return [e.name, e.message, e.error, e.suppressed, e instanceof Error];
  },
  "not constructors": () => [Promise.withResolvers, Array.prototype.toSorted,
    Iterator.prototype.map, Set.prototype.union].map((f) => {
    try { new f(); return "constructed"; } catch (e) { return e.name; }
  }),
};

async function report() {
  const out = {};
  for (const [name, fn] of Object.entries(cases)) {
    try {
      out[name] = { value: await fn() };
    } catch (e) {
      out[name] = { error: e && e.name };
    }
  }
  return JSON.parse(JSON.stringify(out));
}

export default { async fetch() { return Response.json(await report()); } };
"""


def find_deno():
    for cand in (os.environ.get("NANO_DENO"), shutil.which("deno"),
                 "/tmp/nano-bench-peers/node_modules/.bin/deno"):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def deno_report(deno, module_dir):
    port = free_port()
    p = subprocess.Popen([deno, "serve", "--quiet", "--host", "127.0.0.1", "--port", str(port),
                          os.path.join(module_dir, "app.js")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    return json.loads(r.read())
            except OSError:
                if time.time() > deadline or p.poll() is not None:
                    raise AssertionError("deno serve did not answer: " +
                                         (p.stderr.read().decode(errors="replace")
                                          if p.poll() is not None else "timeout"))
                time.sleep(0.2)
    finally:
        p.kill()
        p.wait()


def differences(got, want):
    keys = sorted(set(got) | set(want))
    return {k: {"got": got.get(k), "want": want.get(k)} for k in keys if got.get(k) != want.get(k)}


@check
def each_built_in_answers_as_on_deno():
    with open(EXPECTED_FILE, encoding="utf-8") as f:
        expected = json.load(f)
    with Server(APP) as s:
        r = s.request()
        eq(r.status, 200, "status")
        got = json.loads(r.body)
    diff = differences(got, expected)
    expect(not diff, f"nano-dp differs from deno's answers: {json.dumps(diff)[:2000]}")
    expect(len(expected) >= 50, f"the expectations cover {len(expected)} cases")


@check
def deno_still_answers_what_the_file_says():
    deno = find_deno()
    if deno is None:
        print("  (deno not installed: the file is checked against nano-dp only)")
        return
    d = scratch_dir()
    with open(os.path.join(d, "app.js"), "w", encoding="utf-8") as f:
        f.write(APP)
    got = deno_report(deno, d)
    if os.environ.get("NANO_UPDATE_EXPECTED") == "1":
        with open(EXPECTED_FILE, "w", encoding="utf-8") as f:
            f.write(json.dumps(got, indent=1, ensure_ascii=True, sort_keys=True) + "\n")
        print(f"  wrote {EXPECTED_FILE} from deno's answers")
        return
    with open(EXPECTED_FILE, encoding="utf-8") as f:
        expected = json.load(f)
    diff = differences(got, expected)
    expect(not diff, f"deno now answers differently: {json.dumps(diff)[:2000]}")


if __name__ == "__main__":
    run()
