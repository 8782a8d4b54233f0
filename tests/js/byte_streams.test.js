// Readable byte streams (Streams Standard §4.4, §4.7, §4.8): the BYOB reader and its `min`,
// BYOB requests, autoAllocateChunkSize, transfer of buffers, byte-stream tee, and the rules
// around them. Written from the standard's algorithms.
import { test, assert, assertEquals, assertThrows, assertRejects } from "nano:test";

const bytes = (...v) => new Uint8Array(v);
const tick = () => new Promise((r) => setTimeout(r, 0));

test("a byte stream serves default and BYOB readers; enqueue transfers the chunk's buffer", async () => {
  let controller;
  const rs = new ReadableStream({ type: "bytes", start(c) { controller = c; } });
  assert(controller instanceof ReadableByteStreamController);
  assertEquals(controller.desiredSize, 0, "a byte stream's default high water mark is 0");
  const chunk = bytes(1, 2, 3, 4);
  const buffer = chunk.buffer;
  controller.enqueue(chunk);
  assertEquals(buffer.byteLength, 0, "the enqueued chunk's buffer is detached");
  assertEquals(controller.desiredSize, -4);
  const reader = rs.getReader({ mode: "byob" });
  assert(reader instanceof ReadableStreamBYOBReader);
  const { value, done } = await reader.read(new Uint8Array(2));
  assertEquals([Array.from(value), done], [[1, 2], false]);
  const view = new Uint16Array(4);
  const second = await reader.read(view);
  assert(second.value instanceof Uint16Array, "the view's type is kept");
  assertEquals(second.value.byteLength, 2);
  assertEquals(view.byteLength, 0, "the given view's buffer was transferred");
  assertEquals(new Uint8Array(second.value.buffer, 0, 2), bytes(3, 4));
});

test("BYOB read with min waits for enough elements; partial elements stay queued", async () => {
  let controller;
  const rs = new ReadableStream({ type: "bytes", start(c) { controller = c; } });
  const reader = rs.getReader({ mode: "byob" });
  const pending = reader.read(new Uint8Array(8), { min: 5 });
  controller.enqueue(bytes(1, 2, 3));
  let settled = false;
  pending.then(() => { settled = true; });
  await tick();
  assert(!settled, "3 bytes are fewer than min 5");
  controller.enqueue(bytes(4, 5, 6));
  const r = await pending;
  assertEquals(Array.from(r.value), [1, 2, 3, 4, 5, 6]);
  // Uint16 elements: 3 bytes fill one element; the odd byte waits for its pair.
  controller.enqueue(bytes(7, 8, 9));
  const r16 = await reader.read(new Uint16Array(2));
  assertEquals(r16.value.length, 1);
  controller.enqueue(bytes(10));
  const rest = await reader.read(new Uint8Array(4));
  assertEquals(Array.from(rest.value), [9, 10]);
  await assertRejects(reader.read(new Uint8Array(4), { min: 0 }), TypeError);
  await assertRejects(reader.read(new Uint8Array(4), { min: 5 }), RangeError);
  await assertRejects(reader.read(new Uint16Array(2), { min: 3 }), RangeError);
  await assertRejects(reader.read(new Uint8Array(0)), TypeError);
  await assertRejects(reader.read(new Uint8Array(new SharedArrayBuffer(4))), TypeError);
});

test("byobRequest: respond and respondWithNewView fill the reader's view", async () => {
  const seen = [];
  const rs = new ReadableStream({
    type: "bytes",
    pull(c) {
      const req = c.byobRequest;
      assert(req instanceof ReadableStreamBYOBRequest);
      seen.push(req.view.byteLength);
      if (seen.length === 1) {
        req.view[0] = 42;
        req.view[1] = 43;
        req.respond(2);
        assertEquals(req.view, null, "an answered request lets go of its view");
        assertThrows(() => req.respond(1), TypeError);
      } else {
        const v = new Uint8Array(req.view.buffer, req.view.byteOffset, 1);
        v[0] = 44;
        req.respondWithNewView(v);
      }
    },
  });
  const reader = rs.getReader({ mode: "byob" });
  assertEquals(Array.from((await reader.read(new Uint8Array(4))).value), [42, 43]);
  assertEquals(Array.from((await reader.read(new Uint8Array(3))).value), [44]);
  assertEquals(seen, [4, 3]);
});

test("respond checks its bounds; closing with a partial element errors the stream", async () => {
  let controller;
  const rs = new ReadableStream({ type: "bytes", start(c) { controller = c; } });
  const reader = rs.getReader({ mode: "byob" });
  const pending = reader.read(new Uint16Array(2));
  await tick();
  assertThrows(() => controller.byobRequest.respond(5), RangeError);
  assertThrows(() => controller.byobRequest.respond(0), TypeError); // 0 only once closed
  // A view over a different buffer:
  assertThrows(() => controller.byobRequest.respondWithNewView(new Uint8Array(2)), RangeError);
  controller.byobRequest.view[0] = 1;
  controller.byobRequest.respond(1); // half an element: the read keeps waiting
  assertThrows(() => controller.close(), TypeError);
  await assertRejects(pending, TypeError);
  await assertRejects(reader.closed, TypeError);
});

test("close answers a pending BYOB read with an empty view once respond(0) is called", async () => {
  let controller;
  const rs = new ReadableStream({ type: "bytes", start(c) { controller = c; } });
  const reader = rs.getReader({ mode: "byob" });
  const pending = reader.read(new Uint8Array(4));
  await tick();
  controller.close();
  controller.byobRequest.respond(0);
  const r = await pending;
  assertEquals([r.done, r.value.byteLength, r.value.buffer.byteLength], [true, 0, 4]);
  const again = await reader.read(new Uint8Array(2));
  assertEquals([again.done, again.value.byteLength], [true, 0]);
});

test("autoAllocateChunkSize gives default readers a BYOB request too", async () => {
  const sizes = [];
  const rs = new ReadableStream({
    type: "bytes",
    autoAllocateChunkSize: 16,
    pull(c) {
      sizes.push(c.byobRequest.view.byteLength);
      c.byobRequest.view.set([7, 8, 9]);
      c.byobRequest.respond(3);
      c.close();
    },
  });
  const reader = rs.getReader();
  const r = await reader.read();
  assertEquals([Array.from(r.value), r.value.buffer.byteLength, sizes], [[7, 8, 9], 16, [16]]);
  assertEquals((await reader.read()).done, true);
  assertThrows(() => new ReadableStream({ type: "bytes", autoAllocateChunkSize: 0 }), TypeError);
  assertThrows(() => new ReadableStream({ type: "bytes" }, { size: () => 1 }), RangeError);
});

test("enqueue rejects empty, detached and non-view chunks; error and cancel reach the reader", async () => {
  let controller;
  let canceled;
  const rs = new ReadableStream({
    type: "bytes",
    start(c) { controller = c; },
    cancel(reason) { canceled = reason; },
  });
  assertThrows(() => controller.enqueue(new Uint8Array(0)), TypeError);
  assertThrows(() => controller.enqueue(new ArrayBuffer(4)), TypeError);
  const chunk = bytes(1);
  structuredClone(chunk.buffer, { transfer: [chunk.buffer] });
  assertThrows(() => controller.enqueue(chunk), TypeError);
  const reader = rs.getReader({ mode: "byob" });
  const pending = reader.read(new Uint8Array(2));
  await reader.cancel("stop");
  assertEquals(canceled, "stop");
  assertEquals(await pending, { value: undefined, done: true }, "cancel ends a pending BYOB read");
  const errored = new ReadableStream({ type: "bytes", start(c) { c.error(new RangeError("x")); } });
  await assertRejects(errored.getReader({ mode: "byob" }).read(new Uint8Array(1)), RangeError);
});

test("releaseLock rejects pending BYOB reads; BYOB readers need a byte stream", async () => {
  const rs = new ReadableStream({ type: "bytes" });
  const reader = rs.getReader({ mode: "byob" });
  const pending = reader.read(new Uint8Array(1));
  reader.releaseLock();
  await assertRejects(pending, TypeError);
  await assertRejects(reader.closed, TypeError);
  assert(!rs.locked);
  assertThrows(() => new ReadableStream().getReader({ mode: "byob" }), TypeError);
  assertThrows(() => rs.getReader({ mode: "other" }), TypeError);
  assertThrows(() => new ReadableStreamBYOBReader(new ReadableStream()), TypeError);
});

test("tee of a byte stream gives each branch its own copy of every chunk", async () => {
  const rs = new ReadableStream({
    type: "bytes",
    start(c) { c.enqueue(bytes(1, 2)); c.enqueue(bytes(3)); c.close(); },
  });
  const [a, b] = rs.tee();
  const ra = a.getReader({ mode: "byob" });
  const rb = b.getReader();
  // The default reader pulls first: the source's first chunk goes to both branches.
  const second = await rb.read();
  const first = await ra.read(new Uint8Array(8));
  assertEquals([Array.from(first.value), Array.from(second.value)], [[1, 2], [1, 2]]);
  assert(first.value.buffer !== second.value.buffer, "the branches do not share a buffer");
  first.value[0] = 99;
  assertEquals(second.value[0], 1);
  assertEquals(Array.from((await rb.read()).value), [3]);
  assertEquals(Array.from((await ra.read(new Uint8Array(8))).value), [3]);
  assertEquals((await rb.read()).done, true);
});

test("Blob.stream() is a byte stream readable with a BYOB reader", async () => {
  const blob = new Blob(["hello ", "bytes"]);
  const reader = blob.stream().getReader({ mode: "byob" });
  let text = "";
  for (;;) {
    const { value, done } = await reader.read(new Uint8Array(4));
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  assertEquals(text, "hello bytes");
});

test("a Response body is a byte stream: BYOB reads and cancel make it unusable", async () => {
  const res = new Response("abcdef");
  const reader = res.body.getReader({ mode: "byob" });
  const { value } = await reader.read(new Uint8Array(4));
  assertEquals(new TextDecoder().decode(value), "abcd");
  reader.releaseLock();
  const other = new Response("x");
  await other.body.cancel();
  await assertRejects(other.text(), TypeError);
  assert(other.bodyUsed);
});

test("type 'owning' clones enqueued chunks, moving what the transfer list names", async () => {
  const buffer = new Uint8Array([1, 2, 3]).buffer;
  const rs = new ReadableStream({
    type: "owning",
    start(c) { c.enqueue({ buffer }, { transfer: [buffer] }); c.close(); },
  });
  assertEquals(buffer.byteLength, 0, "transferred");
  const { value } = await rs.getReader().read();
  assertEquals(Array.from(new Uint8Array(value.buffer)), [1, 2, 3]);
  const plain = new ReadableStream({
    start(c) { assertThrows(() => c.enqueue(buffer, { transfer: [new ArrayBuffer(1)] }), TypeError); },
  });
  void plain;
});
