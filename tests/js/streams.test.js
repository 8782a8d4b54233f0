// ReadableStream, its default reader and controller, tee, from, async iteration, strategies.
import { test, assert, assertEquals, assertThrows, assertRejects } from "nano:test";

test("enqueue, close and read in order; the reader locks the stream", async () => {
  const rs = new ReadableStream({ start(c) { c.enqueue("a"); c.enqueue("b"); c.close(); } });
  const reader = rs.getReader();
  assert(rs.locked);
  assertThrows(() => rs.getReader(), TypeError);
  assertEquals(await reader.read(), { value: "a", done: false });
  assertEquals(await reader.read(), { value: "b", done: false });
  assertEquals(await reader.read(), { value: undefined, done: true });
  await reader.closed;
  reader.releaseLock();
  assert(!rs.locked);
});

test("pull is called as the queue drains; desiredSize follows the strategy", async () => {
  let pulls = 0;
  let controller;
  const rs = new ReadableStream({
    start(c) { controller = c; },
    pull(c) { pulls++; c.enqueue(pulls); if (pulls === 3) c.close(); },
  }, new CountQueuingStrategy({ highWaterMark: 2 }));
  await new Promise((r) => setTimeout(r, 0));
  assertEquals(controller.desiredSize, 0, "pulled up to the high water mark");
  const got = [];
  for await (const x of rs) got.push(x);
  assertEquals(got, [1, 2, 3]);
  assertEquals(new ByteLengthQueuingStrategy({ highWaterMark: 16 }).size(new Uint8Array(5)), 5);
});

test("errors reach pending reads and closed; cancel runs the source's cancel", async () => {
  let controller;
  const rs = new ReadableStream({ start(c) { controller = c; } });
  const reader = rs.getReader();
  const pending = reader.read();
  controller.error(new RangeError("bad"));
  await assertRejects(pending, RangeError);
  await assertRejects(reader.closed, RangeError);
  let cancelled;
  const rs2 = new ReadableStream({ cancel(reason) { cancelled = reason; } });
  await rs2.cancel("stop");
  assertEquals(cancelled, "stop");
  assertThrows(() => new ReadableStream(null), TypeError);
  assertThrows(() => new ReadableStream({}, { highWaterMark: -1 }), RangeError);
});

test("tee gives both branches every chunk; cancel needs both", async () => {
  let reasons;
  const rs = new ReadableStream({
    start(c) { c.enqueue(1); c.enqueue(2); c.close(); },
    cancel(r) { reasons = r; },
  });
  const [a, b] = rs.tee();
  const all = async (s) => { const out = []; for await (const x of s) out.push(x); return out; };
  assertEquals(await all(a), [1, 2]);
  assertEquals(await all(b), [1, 2]);
  const [c, d] = new ReadableStream({ cancel(r) { reasons = r; } }).tee();
  await Promise.all([c.cancel("x"), d.cancel("y")]);
  assertEquals(reasons, ["x", "y"]);
});

test("ReadableStream.from iterables and async iterables; iteration preventCancel", async () => {
  async function* gen() { yield 1; yield 2; }
  const got = [];
  for await (const x of ReadableStream.from(gen())) got.push(x);
  for await (const x of ReadableStream.from(["a"])) got.push(x);
  assertEquals(got, [1, 2, "a"]);
  const rs = ReadableStream.from([1, 2, 3]);
  for await (const x of rs.values({ preventCancel: true })) { if (x === 1) break; }
  const rest = [];
  for await (const x of rs) rest.push(x);
  assertEquals(rest, [2, 3]);
  assertThrows(() => ReadableStream.from(5), TypeError);
});

test("a ReadableStream of bytes is a Request/Response body; clone tees it", async () => {
  const bytes = (s) => new TextEncoder().encode(s);
  const stream = () => new ReadableStream({ start(c) { c.enqueue(bytes("he")); c.enqueue(bytes("llo")); c.close(); } });
  const res = new Response(stream());
  const copy = res.clone();
  assertEquals([await res.text(), await copy.text(), res.bodyUsed], ["hello", "hello", true]);
  // No duplex: accepted as "half", as Workers and Deno do (a documented deviation).
  assertEquals(await new Request("http://h/", { method: "POST", body: stream() }).text(), "hello");
  assertThrows(() => new Request("http://h/", { method: "POST", body: stream(), duplex: "full" }), TypeError);
  assertEquals(await new Request("http://h/", { method: "POST", body: stream(), duplex: "half" }).text(), "hello");
  await assertRejects(new Response(new ReadableStream({ start(c) { c.enqueue("not bytes"); c.close(); } })).text(), TypeError);
  const locked = stream();
  locked.getReader();
  assertThrows(() => new Response(locked), TypeError);
});

test("WritableStream: writes in order, backpressure via desiredSize/ready, close and abort", async () => {
  const written = [];
  let closed = false;
  const ws = new WritableStream({
    write(chunk) { written.push(chunk); return new Promise((r) => setTimeout(r, 1)); },
    close() { closed = true; },
  }, new CountQueuingStrategy({ highWaterMark: 2 }));
  const writer = ws.getWriter();
  assertEquals(writer.desiredSize, 2);
  writer.write("a");
  writer.write("b");
  assertEquals(writer.desiredSize, 0);
  await writer.ready;
  await writer.write("c");
  await writer.close();
  assertEquals([written, closed], [["a", "b", "c"], true]);
  await assertRejects(writer.write("late"), TypeError);
  let abortReason;
  const ab = new WritableStream({ abort(r) { abortReason = r; } });
  await ab.abort("stop");
  assertEquals(abortReason, "stop");
  const sink = new WritableStream({ start(c) { assert(c.signal instanceof AbortSignal); } });
  assert(!sink.locked);
});

test("TransformStream through pipeThrough and pipeTo; flush; errors propagate", async () => {
  const upper = new TransformStream({
    transform(chunk, c) { c.enqueue(chunk.toUpperCase()); },
    flush(c) { c.enqueue("!"); },
  });
  const out = [];
  await ReadableStream.from(["a", "b"]).pipeThrough(upper)
    .pipeTo(new WritableStream({ write(c) { out.push(c); } }));
  assertEquals(out, ["A", "B", "!"]);
  const failing = new TransformStream({ transform() { throw new RangeError("no"); } });
  await assertRejects(ReadableStream.from([1]).pipeThrough(failing).pipeTo(new WritableStream()), RangeError);
  const identity = new TransformStream();
  const w = identity.writable.getWriter();
  w.write("x");
  w.close();
  const got = [];
  for await (const c of identity.readable) got.push(c);
  assertEquals(got, ["x"]);
});

test("pipeTo honours preventClose and an AbortSignal", async () => {
  let closed = false;
  const ws = new WritableStream({ close() { closed = true; } });
  await ReadableStream.from([1]).pipeTo(ws, { preventClose: true });
  assertEquals(closed, false);
  assert(!ws.locked);
  const ac = new AbortController();
  let cancelled;
  const rs = new ReadableStream({ cancel(r) { cancelled = r; } });
  const p = rs.pipeTo(new WritableStream(), { signal: ac.signal });
  ac.abort("enough");
  await assertRejects(p);
  assertEquals(cancelled, "enough");
});

test("TextEncoderStream and TextDecoderStream, with characters split across chunks", async () => {
  const encoded = [];
  const enc = new TextEncoderStream();
  const w = enc.writable.getWriter();
  w.write("h\ud83d");
  w.write("\ude00é");
  w.close();
  for await (const c of enc.readable) encoded.push(...c);
  assertEquals(encoded, [0x68, 0xf0, 0x9f, 0x98, 0x80, 0xc3, 0xa9]);
  const dec = new TextDecoderStream("utf-8", { fatal: true });
  assertEquals([dec.encoding, dec.fatal, dec.ignoreBOM], ["utf-8", true, false]);
  const dw = dec.writable.getWriter();
  dw.write(new Uint8Array([0x68, 0xf0, 0x9f]));
  dw.write(new Uint8Array([0x98, 0x80]));
  dw.close();
  let text = "";
  for await (const s of dec.readable) text += s;
  assertEquals(text, "h😀");
  const lone = new TextEncoderStream();
  const lw = lone.writable.getWriter();
  lw.write("\ud800");
  lw.close();
  const bytes = [];
  for await (const c of lone.readable) bytes.push(...c);
  assertEquals(bytes, [0xef, 0xbf, 0xbd]);
});

test("Request and Response bodies are readable as streams", async () => {
  const res = new Response("hello");
  const reader = res.body.getReader();
  const { value } = await reader.read();
  assertEquals(new TextDecoder().decode(value), "hello");
  assertEquals((await reader.read()).done, true);
  assert(res.bodyUsed);
  assertEquals([new Response(null).body, new Request("http://h/").body], [null, null]);
  const used = new Response("x");
  await used.text();
  assert(used.bodyUsed && used.body instanceof ReadableStream && used.body.locked);
  assertEquals(await new Response(new Response("pass through").body).text(), "pass through");
});

test("WritableStreamDefaultController.signal aborts with the abort reason", async () => {
  let signal;
  const ws = new WritableStream({
    start(c) { signal = c.signal; },
    write() { return new Promise(() => {}); }, // never finishes: abort must not wait for it
  });
  const writer = ws.getWriter();
  writer.write("a");
  await new Promise((r) => setTimeout(r, 0));
  assert(signal instanceof AbortSignal && !signal.aborted);
  writer.abort("why");
  assert(signal.aborted, "the controller's signal aborts at once");
  assertEquals(signal.reason, "why");
});

test("pipeTo: preventAbort keeps the destination writable; preventCancel keeps the source", async () => {
  const err = new Error("source failed");
  const bad = new ReadableStream({ start(c) { c.error(err); } });
  const ws = new WritableStream();
  await assertRejects(bad.pipeTo(ws, { preventAbort: true }), Error);
  const writer = ws.getWriter();
  await writer.write("still writable");
  let canceled = false;
  const rs = new ReadableStream({ cancel() { canceled = true; } });
  const broken = new WritableStream({ start(c) { c.error(new TypeError("sink failed")); } });
  await assertRejects(rs.pipeTo(broken, { preventCancel: true }), TypeError);
  assert(!canceled && !rs.locked, "the source was neither canceled nor left locked");
  await assertRejects(rs.pipeTo(new WritableStream({ start(c) { c.error(new TypeError("x")); } })), TypeError);
  assert(canceled, "without preventCancel the source is canceled");
});

test("streams are transferable: structuredClone and postMessage move them", async () => {
  const rs = new ReadableStream({ start(c) { c.enqueue({ a: 1 }); c.enqueue("two"); c.close(); } });
  const copy = structuredClone({ rs }, { transfer: [rs] }).rs;
  assert(copy instanceof ReadableStream && copy !== rs);
  assert(rs.locked, "the original stays locked to its transferred copy");
  const got = [];
  for await (const x of copy) got.push(x);
  assertEquals(got, [{ a: 1 }, "two"]);
  assertThrows(() => structuredClone(rs, { transfer: [rs] }), DOMException); // locked
  assertThrows(() => structuredClone(new ReadableStream()), DOMException); // not serializable
  class Sub extends ReadableStream {}
  const sub = new Sub();
  assertEquals(Object.getPrototypeOf(structuredClone(sub, { transfer: [sub] })), ReadableStream.prototype);

  const written = [];
  const ws = new WritableStream({ write(c) { written.push(c); } });
  const writer = structuredClone(ws, { transfer: [ws] }).getWriter();
  await writer.write({ b: 2 });
  await writer.close();
  assertEquals(written, [{ b: 2 }]);

  const ts = new TransformStream({ transform(c, ctl) { ctl.enqueue(String(c).toUpperCase()); } });
  const tcopy = structuredClone(ts, { transfer: [ts] });
  const w = tcopy.writable.getWriter();
  w.write("hi");
  w.close();
  const out = [];
  for await (const x of tcopy.readable) out.push(x);
  assertEquals(out, ["HI"]);
  const t2 = new TransformStream();
  assertThrows(() => structuredClone([t2, t2.readable], { transfer: [t2, t2.readable] }), DOMException);

  const { port1, port2 } = new MessageChannel();
  const received = new Promise((resolve) => { port2.onmessage = (e) => resolve(e.data); });
  const sent = new ReadableStream({ start(c) { c.enqueue("over a port"); c.close(); } });
  port1.postMessage(sent, [sent]);
  const arrived = await received;
  const chunks = [];
  for await (const x of arrived) chunks.push(x);
  assertEquals(chunks, ["over a port"]);
  port1.close();
});

test("streams settle their pending requests without the array iterator the app may replace", async () => {
  let controller;
  const rs = new ReadableStream({ start(c) { controller = c; } });
  const reader = rs.getReader();
  const reads = [reader.read(), reader.read()];
  const arrayIteratorPrototype = Object.getPrototypeOf([][Symbol.iterator]());
  const next = arrayIteratorPrototype.next;
  arrayIteratorPrototype.next = () => { throw new Error("array iterator used"); };
  try {
    controller.close();
  } finally {
    arrayIteratorPrototype.next = next;
  }
  const results = await Promise.all(reads);
  assertEquals(results.map((r) => r.done), [true, true]);
  // A transfer list is a sequence: any iterable of objects.
  const buffer = new ArrayBuffer(8);
  const copy = structuredClone(buffer, { transfer: new Set([buffer]) });
  assertEquals([copy.byteLength, buffer.byteLength], [8, 0]);
});

test("abort() settles when the transform it waits for rejects", async () => {
  const failure = new Error("transform failed");
  const ts = new TransformStream({
    transform() { return new Promise((_, reject) => setTimeout(() => reject(failure), 10)); },
  });
  ts.readable.getReader().read().catch(() => {});
  await new Promise((r) => setTimeout(r, 0));
  const writer = ts.writable.getWriter();
  writer.write(1).catch(() => {});
  await new Promise((r) => setTimeout(r, 0));
  const outcome = await Promise.race([
    writer.abort(new Error("abort")).then(() => "resolved", (e) => e),
    new Promise((r) => setTimeout(() => r("still pending"), 500)),
  ]);
  assertEquals(outcome, failure);
});

test("a WritableStream's abort does not go through AbortController.prototype", async () => {
  const abort = AbortController.prototype.abort;
  const signal = Object.getOwnPropertyDescriptor(AbortController.prototype, "signal");
  AbortController.prototype.abort = () => { throw new Error("patched abort used"); };
  Object.defineProperty(AbortController.prototype, "signal", {
    get() { throw new Error("patched signal used"); }, configurable: true,
  });
  try {
    let seen;
    const ws = new WritableStream({ start(c) { seen = c.signal; } });
    await ws.abort("stop");
    assertEquals([seen.aborted, seen.reason], [true, "stop"]);
  } finally {
    AbortController.prototype.abort = abort;
    Object.defineProperty(AbortController.prototype, "signal", signal);
  }
});

test("pipes, tees and byte streams do not call an app's replacement of queueMicrotask", async () => {
  const original = globalThis.queueMicrotask;
  let calls = 0;
  globalThis.queueMicrotask = () => { calls++; throw new Error("replaced"); };
  try {
    const source = () => new ReadableStream({
      start(c) { for (let i = 0; i < 5; i++) c.enqueue(i); c.close(); },
    });
    const got = [];
    await source().pipeThrough(new TransformStream({ transform(x, c) { c.enqueue(x * 2); } }))
      .pipeTo(new WritableStream({ write(x) { got.push(x); } }));
    assertEquals(got, [0, 2, 4, 6, 8]);
    const [a, b] = source().tee();
    const ra = [], rb = [];
    for await (const x of a) ra.push(x);
    for await (const x of b) rb.push(x);
    assertEquals(ra, [0, 1, 2, 3, 4]);
    assertEquals(rb, [0, 1, 2, 3, 4]);
    const bytes = new ReadableStream({
      type: "bytes",
      start(c) { c.enqueue(new Uint8Array([1, 2, 3])); c.close(); },
    });
    const [x, y] = bytes.tee();
    assertEquals([...new Uint8Array(await new Response(x).arrayBuffer())], [1, 2, 3]);
    assertEquals([...new Uint8Array(await new Response(y).arrayBuffer())], [1, 2, 3]);
    assertEquals(calls, 0);
  } finally {
    globalThis.queueMicrotask = original;
  }
});

test("a transform that returns a promise is waited for; one that throws errors both sides", async () => {
  const order = [];
  const ts = new TransformStream({
    async transform(x, c) {
      await new Promise((r) => setTimeout(r, 1));
      order.push(`t${x}`);
      c.enqueue(x);
    },
  });
  const out = [];
  await new ReadableStream({ start(c) { [1, 2, 3].forEach((x) => c.enqueue(x)); c.close(); } })
    .pipeThrough(ts).pipeTo(new WritableStream({ write(x) { out.push(x); order.push(`w${x}`); } }));
  assertEquals(out, [1, 2, 3]);
  assertEquals(order.filter((s) => s[0] === "t"), ["t1", "t2", "t3"]);
  const boom = new Error("boom");
  const bad = new TransformStream({ transform() { throw boom; } });
  // (A write waits until the readable side is read: its high water mark is 0.)
  const read = bad.readable.getReader().read();
  const writer = bad.writable.getWriter();
  await assertRejects(() => writer.write(1));
  await assertRejects(() => read);
});
