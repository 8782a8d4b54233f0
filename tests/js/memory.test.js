// ArrayBuffer memory against the isolate's memory limit (issue 18). `nano-dp test` gives no
// limit, so ArrayBuffers are capped alone at the default 128 MiB (runtime.h, heap_limit_mb).
import { test, assert, assertEquals, assertThrows } from "nano:test";

const MIB = 1 << 20;
const LIMIT_MIB = 128;

// Keeps arrays of `size` bytes until one is refused (or twice the limit is kept, which
// fails); returns them for the caller to drop.
function fill(size, kept = []) {
  const max = kept.length + (2 * LIMIT_MIB * MIB) / size;
  try {
    while (kept.length < max) kept.push(new Uint8Array(size));
  } catch (e) {
    assert(e instanceof RangeError, `refused with ${e}`);
    return kept;
  }
  throw new Error(`${kept.length} arrays of ${size} bytes were kept, none refused`);
}

// Kept until refused at each size in turn: the limit is then full to within 4 KiB.
function fillUp() {
  const kept = [];
  for (const size of [MIB, 64 * 1024, 4096]) fill(size, kept);
  return kept;
}

test("new Uint8Array(2**32) is a RangeError at once", () => {
  const t0 = performance.now();
  assertThrows(() => new Uint8Array(2 ** 32), RangeError, "Array buffer allocation failed");
  assertThrows(() => new ArrayBuffer(2 ** 32 - 1), RangeError);
  const ms = performance.now() - t0;
  assert(ms < 500, `the refusals took ${ms} ms`);
});

test("what is kept stops at the limit, and is given back once dropped", () => {
  let kept = fill(16 * MIB);
  const n = kept.length;
  assert(n >= LIMIT_MIB / 16 - 1 && n <= LIMIT_MIB / 16, `kept ${n} x 16 MiB`);
  kept = null;
  // Garbage is collected before a refusal: the same again fits.
  kept = fill(16 * MIB);
  assertEquals(kept.length, n);
});

test("garbage never counts: 4 GiB allocated and dropped in 32 MiB pieces", () => {
  assertThrows(() => new Uint8Array((LIMIT_MIB + 1) * MIB), RangeError);
  let sum = 0;
  for (let i = 0; i < 128; i++) {
    const a = new Uint8Array(32 * MIB);
    a[i] = i;
    sum += a[i];
  }
  assertEquals(sum, (127 * 128) / 2);
});

test("a copy made by slice is counted like any allocation", () => {
  const big = new Uint8Array(100 * MIB);
  assertThrows(() => big.slice(), RangeError);
  assertEquals(big.subarray(0, 10).slice().length, 10);
});

test("natives at the limit throw a RangeError instead of aborting the process", async () => {
  let kept = fillUp();
  const big = "x".repeat(MIB);
  assertThrows(() => new TextEncoder().encode(big), RangeError);
  for (const read of [
    () => new Response(big).arrayBuffer(),
    () => new Blob([big]).arrayBuffer(),
    () => new Response(new Blob([new Uint8Array(1000)]).stream()
      .pipeThrough(new CompressionStream("gzip"))).arrayBuffer(),
  ]) {
    let error = null;
    try {
      await read();
    } catch (e) {
      error = e;
    }
    assert(error instanceof RangeError, `expected a RangeError, got ${error}`);
  }
  assertThrows(() => structuredClone(new Uint8Array(MIB)), RangeError);
  kept = null;
  assertEquals(new TextEncoder().encode(big).length, MIB);
});
