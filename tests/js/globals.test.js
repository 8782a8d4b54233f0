// The small globals: structuredClone, atob/btoa, crypto, navigator, performance, console.
import { test, assert, assertEquals, assertThrows, assertMatch, assertStrictEquals, assertRejects } from "nano:test";

test("structuredClone copies Map, Set, Date, RegExp, typed arrays and errors", () => {
  const src = { m: new Map([[1, { d: new Date(5) }]]), s: new Set([1]), r: /x/gi,
    u: new Uint8Array([1, 2]), e: new RangeError("bad") };
  src.self = src;
  const c = structuredClone(src);
  assert(c !== src && c.self === c, "cycles are kept");
  assertEquals(c.m.get(1).d.getTime(), 5);
  assert(c.s.has(1) && c.r.flags === "gi" && c.u[1] === 2);
  assert(c.e instanceof RangeError && c.e.message === "bad");
});

test("structuredClone transfers ArrayBuffers and refuses what cannot be cloned", () => {
  const ab = new ArrayBuffer(4);
  const c = structuredClone(ab, { transfer: [ab] });
  assertEquals([ab.byteLength, c.byteLength], [0, 4]);
  const e = assertThrows(() => structuredClone(() => 1), DOMException);
  assertEquals(e.name, "DataCloneError");
  assertThrows(() => structuredClone(Symbol("s")), DOMException);
  const buf = new ArrayBuffer(1);
  assertThrows(() => structuredClone(buf, { transfer: [buf, buf] }), DOMException);
  assertThrows(() => structuredClone(), TypeError);
});

test("btoa/atob round trips and forgiving-base64 rules", () => {
  assertEquals(btoa("hello"), "aGVsbG8=");
  assertEquals(btoa("\xff\xfe"), "//4=");
  assertEquals(atob("aGVsbG8="), "hello");
  assertEquals(atob(" aGVs bG8 "), "hello");
  assertEquals(atob("YQ"), "a");
  assertThrows(() => btoa("€"), DOMException);
  assertThrows(() => atob("a"), DOMException);
  assertThrows(() => atob("a===" ), DOMException);
});

test("crypto.getRandomValues and randomUUID", () => {
  const a = crypto.getRandomValues(new Uint32Array(8));
  assert(a.some((x) => x !== 0));
  assertThrows(() => crypto.getRandomValues(new Float32Array(1)), DOMException);
  assertThrows(() => crypto.getRandomValues(new Uint8Array(65537)), DOMException);
  assertMatch(crypto.randomUUID(), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert(crypto.randomUUID() !== crypto.randomUUID());
});

test("crypto's methods check their own brand, not instanceof", () => {
  const fake = Object.create(Crypto.prototype);
  assertThrows(() => Crypto.prototype.randomUUID.call(fake), TypeError);
  assertThrows(() => Crypto.prototype.getRandomValues.call(fake, new Uint8Array(1)), TypeError);
  Object.defineProperty(Crypto, Symbol.hasInstance, { value: () => false, configurable: true });
  try {
    assertEquals(crypto.randomUUID().length, 36);
  } finally {
    delete Crypto[Symbol.hasInstance];
  }
});

test("random values: every size and type, only inside the view, never repeated", () => {
  // Sizes around the pooled limit (256 bytes) and across many pool refills.
  const seen = new Set();
  for (let round = 0; round < 40; round++) {
    for (const n of [1, 2, 3, 15, 16, 17, 255, 256, 257, 300]) {
      const backing = new Uint8Array(n + 8);
      const view = backing.subarray(4, 4 + n);
      crypto.getRandomValues(view);
      for (let i = 0; i < 4; i++) assert(backing[i] === 0 && backing[n + 4 + i] === 0, "wrote outside the view");
      if (n >= 16) {
        const key = Array.from(view.subarray(0, 16)).join(",");
        assert(!seen.has(key), "random bytes repeated");
        seen.add(key);
      }
    }
  }
  // Every byte value turns up in 64 KiB taken 16 bytes at a time (chance of a miss ~1e-108).
  const counts = new Uint32Array(256);
  for (let i = 0; i < 4096; i++) for (const b of crypto.getRandomValues(new Uint8Array(16))) counts[b]++;
  assert(counts.every((c) => c > 0), "a byte value never came up");
  // Wider and signed element types get their bits: negatives occur, and high halves are used.
  const i16 = crypto.getRandomValues(new Int16Array(128));
  const u32 = crypto.getRandomValues(new Uint32Array(64));
  const i32 = crypto.getRandomValues(new Int32Array(64));
  const b64 = crypto.getRandomValues(new BigInt64Array(8));
  assert(i16.some((x) => x < 0) && i16.some((x) => x > 0));
  assert(u32.some((x) => x > 0x80000000) && i32.some((x) => x < 0));
  assert(b64.some((x) => x !== 0n));
  assertEquals(crypto.getRandomValues(new Uint8Array(0)).length, 0);
  const uuids = new Set();
  for (let i = 0; i < 5000; i++) {
    const u = crypto.randomUUID();
    assertMatch(u, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    uuids.add(u);
  }
  assertEquals(uuids.size, 5000);
});

test("btoa/atob of every byte, at lengths around the native stack buffer", () => {
  for (const n of [0, 1, 2, 3, 767, 768, 1023, 1024, 1025, 3000, 100000]) {
    let s = "";
    for (let i = 0; i < n; i++) s += String.fromCharCode((i * 7 + n) & 255);
    const b = btoa(s);
    assertEquals(b.length, 4 * Math.ceil(n / 3));
    assertEquals(atob(b), s);
    // Whitespace anywhere is dropped; missing padding is accepted.
    assertEquals(atob(` ${b.replace(/=+$/, "")}\t\n\f\r`), s);
  }
  for (const bad of ["=", "==", "a=b=", "ab=c", "abc==", "ab===", "\u00e9AAA", "\u0100AAA", "AA\vA",
    "A", "AAAAA", "a b c d e"]) {
    assertThrows(() => atob(bad), DOMException, undefined, JSON.stringify(bad));
  }
  assertEquals([atob("ab=="), atob("abc="), atob("ab"), atob(""), atob("  ")], ["i", "i\xb7", "i", "", ""]);
  assertEquals(btoa(String.fromCharCode(0, 128, 255)), "AID/");
  assertThrows(() => atob(undefined), DOMException); // "undefined": 9 characters
  assertThrows(() => btoa("\u0100"), DOMException);
});

test("navigator", () => {
  assertMatch(navigator.userAgent, /^nano\//);
  assert(navigator.hardwareConcurrency >= 1);
});

test("performance: now, timeOrigin, marks and measures", () => {
  const t = performance.now();
  assert(t >= 0 && performance.now() >= t);
  assert(Math.abs(performance.timeOrigin + performance.now() - Date.now()) < 50);
  performance.clearMarks();
  performance.clearMeasures();
  const a = performance.mark("a", { startTime: 5, detail: { k: 1 } });
  assertEquals([a.entryType, a.name, a.duration, a.detail], ["mark", "a", 0, { k: 1 }]);
  performance.mark("b", { startTime: 15 });
  const m = performance.measure("a-to-b", "a", "b");
  assertEquals(m.duration, 10);
  assertEquals(performance.measure("opt", { start: 1, duration: 2 }).duration, 2);
  assertEquals(performance.getEntriesByType("mark").map((e) => e.name), ["a", "b"]);
  assertEquals(performance.getEntriesByName("a-to-b")[0], m);
  assertThrows(() => performance.measure("x", "no-such-mark"), DOMException);
  performance.clearMarks("a");
  assertEquals(performance.getEntriesByType("mark").length, 1);
  assertEquals(Object.keys(performance.toJSON()), ["timeOrigin"]);
});

test("PerformanceObserver sees new marks in a later task", async () => {
  const got = await new Promise((resolve) => {
    const o = new PerformanceObserver((list, obs) => { obs.disconnect(); resolve(list.getEntries()); });
    o.observe({ type: "mark" });
    performance.mark("observed");
  });
  assertEquals(got.map((e) => e.name), ["observed"]);
  assert(PerformanceObserver.supportedEntryTypes.includes("measure"));
});

test("PerformanceObserver entryTypes is a sequence<DOMString>: any iterable, not a string", async () => {
  const got = await new Promise((resolve) => {
    const o = new PerformanceObserver((list, obs) => { obs.disconnect(); resolve(list.getEntries()); });
    o.observe({ entryTypes: new Set(["mark", "no-such-type"]) });
    performance.mark("from-a-set");
  });
  assertEquals(got.map((e) => e.name), ["from-a-set"]);
  assertThrows(() => new PerformanceObserver(() => {}).observe({ entryTypes: "mark" }), TypeError);
  assertThrows(() => new PerformanceObserver(() => {}).observe({ entryTypes: [Symbol("x")] }), TypeError);
});

test("console is a namespace with every method", () => {
  assertEquals(Object.prototype.toString.call(console), "[object console]");
  for (const m of ["log", "info", "warn", "error", "debug", "trace", "assert", "dir", "dirxml",
    "table", "count", "countReset", "group", "groupCollapsed", "groupEnd", "time", "timeLog",
    "timeEnd", "clear"]) {
    assertStrictEquals(typeof console[m], "function", m);
  }
  assertEquals(Object.getOwnPropertyNames(Object.getPrototypeOf(console)).length, 0);
});

test("timers: ordering, arguments, clearTimeout and setInterval", async () => {
  const seen = [];
  setTimeout((x) => seen.push(x), 20, "late");
  setTimeout((x) => seen.push(x), 0, "early");
  const dropped = setTimeout(() => seen.push("never"), 5);
  clearTimeout(dropped);
  let n = 0;
  await new Promise((resolve) => {
    const id = setInterval(() => { if (++n === 3) { clearInterval(id); resolve(); } }, 1);
  });
  await new Promise((r) => setTimeout(r, 30));
  assertEquals(seen, ["early", "late"]);
  assertEquals(n, 3);
});

test("a cleared timer lets go of its callback at once; a stale id cancels nothing", async () => {
  // 20,000 cleared timers each holding 16 KiB: 312 MiB if a cleared timer kept its callback
  // until its deadline, past the 128 MiB that ArrayBuffers may hold here.
  for (let i = 0; i < 20000; i++) {
    const big = new Uint8Array(16384);
    clearTimeout(setTimeout(() => big.length, 1e9));
  }
  const stale = setTimeout(() => {}, 1e9);
  clearTimeout(stale);
  let fired = false;
  const ids = new Set();
  await new Promise((resolve) => {
    const id = setTimeout(() => { fired = true; resolve(); }, 1);
    ids.add(id);
    clearTimeout(stale); // the slot it had may be this timer's now
    clearInterval(stale);
  });
  assert(fired, "a stale id cancelled a later timer");
  for (let i = 0; i < 100; i++) ids.add(setTimeout(() => {}, 0));
  assertEquals(ids.size, 101);
  for (const id of ids) assert(Number.isSafeInteger(id) && id > 0, `id ${id}`);
  assert(!ids.has(stale));
});

test("queueMicrotask runs before timers", async () => {
  const order = [];
  setTimeout(() => order.push("timer"), 0);
  queueMicrotask(() => order.push("micro"));
  await new Promise((r) => setTimeout(r, 5));
  assertEquals(order, ["micro", "timer"]);
  assertThrows(() => queueMicrotask(1), TypeError);
});

test("structuredClone copies Blob, File and DOMException, keeping shared references", async () => {
  const blob = new Blob(["x"], { type: "a/b" });
  const file = new File(["yy"], "n.txt", { lastModified: 7 });
  const c = structuredClone({ blob, again: blob, list: [file], e: new DOMException("m", "AbortError") });
  assert(c.blob === c.again && c.blob !== blob);
  assertEquals([c.blob.type, await c.blob.text()], ["a/b", "x"]);
  assertEquals([c.list[0].name, c.list[0].lastModified, c.e.name, c.e.message], ["n.txt", 7, "AbortError", "m"]);
  assert(c.e instanceof DOMException);
  const e = assertThrows(() => structuredClone({ u: new URL("http://h/") }), DOMException);
  assertEquals(e.name, "DataCloneError");
});

// (module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))
const addModule = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 7, 1, 96, 2, 127, 127, 1, 127,
  3, 2, 1, 0, 7, 7, 1, 3, 97, 100, 100, 0, 0, 10, 9, 1, 7, 0, 32, 0, 32, 1, 106, 11]);

test("WebAssembly compiles and instantiates from bytes, synchronously and not", async () => {
  const sync = new WebAssembly.Instance(new WebAssembly.Module(addModule));
  assertEquals(sync.exports.add(2, 3), 5);
  const { instance } = await WebAssembly.instantiate(addModule);
  assertEquals(instance.exports.add(40, 2), 42);
  const module = await WebAssembly.compile(addModule);
  assertEquals(WebAssembly.Module.exports(module), [{ name: "add", kind: "function" }]);
  await assertRejects(WebAssembly.compile(new Uint8Array([1, 2, 3])), WebAssembly.CompileError);
});

test("reportError dispatches an ErrorEvent that listeners can cancel", () => {
  let seen = null;
  const listener = (e) => { seen = e; e.preventDefault(); };
  addEventListener("error", listener);
  const err = new Error("reported");
  reportError(err);
  removeEventListener("error", listener);
  assert(seen instanceof ErrorEvent && seen.error === err && seen.isTrusted);
  assertThrows(() => reportError(), TypeError);
});
