// MessageChannel, MessagePort, MessageEvent and BroadcastChannel (HTML §9.4-9.5).
import { test, assert, assertEquals, assertThrows } from "nano:test";

const nextMessage = (port) => new Promise((resolve) => { port.onmessage = resolve; });

test("messages are structured clones delivered in order as tasks", async () => {
  const { port1, port2 } = new MessageChannel();
  const seen = [];
  const done = new Promise((resolve) => {
    port2.onmessage = (e) => { seen.push(e.data); if (seen.length === 2) resolve(); };
  });
  const obj = { n: 1 };
  port1.postMessage(obj);
  obj.n = 2; // the clone was taken at postMessage
  port1.postMessage(new Map([[1, "one"]]));
  assertEquals(seen.length, 0, "not synchronous");
  await done;
  assertEquals(seen[0], { n: 1 });
  assertEquals(seen[1].get(1), "one");
  port1.close();
});

test("a port's queue waits for start() when using addEventListener", async () => {
  const { port1, port2 } = new MessageChannel();
  let got = null;
  port2.addEventListener("message", (e) => { got = e.data; });
  port1.postMessage("queued");
  await new Promise((r) => setTimeout(r, 5));
  assertEquals(got, null);
  port2.start();
  await new Promise((r) => setTimeout(r, 5));
  assertEquals(got, "queued");
  port1.close();
});

test("ArrayBuffers and ports can be transferred", async () => {
  const { port1, port2 } = new MessageChannel();
  const inner = new MessageChannel();
  const ab = new ArrayBuffer(8);
  const p = nextMessage(port2);
  port1.postMessage({ ab }, [ab, inner.port2]);
  const e = await p;
  assertEquals([ab.byteLength, e.data.ab.byteLength, e.ports.length], [0, 8, 1]);
  const back = nextMessage(inner.port1);
  e.ports[0].postMessage("through the moved port");
  assertEquals((await back).data, "through the moved port");
  assertThrows(() => port1.postMessage(1, [port1]), DOMException);
  port1.close();
  inner.port1.close();
});

test("MessageEvent init and trusted messages", () => {
  const e = new MessageEvent("message", { data: 5, origin: "o", lastEventId: "7" });
  assertEquals([e.data, e.origin, e.lastEventId, e.source, e.ports.length, e.isTrusted], [5, "o", "7", null, 0, false]);
  assert(Object.isFrozen(e.ports));
  assertThrows(() => new MessageEvent("m", { ports: [1] }), TypeError);
  assertThrows(() => new MessagePort(), TypeError);
});

test("BroadcastChannel reaches other channels of the same name only", async () => {
  const a = new BroadcastChannel("room");
  const b = new BroadcastChannel("room");
  const other = new BroadcastChannel("elsewhere");
  let otherGot = false;
  other.onmessage = () => { otherGot = true; };
  let selfGot = false;
  a.onmessage = () => { selfGot = true; };
  const p = nextMessage(b);
  a.postMessage({ hi: 1 });
  assertEquals((await p).data, { hi: 1 });
  await new Promise((r) => setTimeout(r, 5));
  assertEquals([selfGot, otherGot], [false, false]);
  a.close();
  assertThrows(() => a.postMessage(1), DOMException);
  b.close();
  other.close();
});

test("messages and clones do not use globals or iterators the app replaced", async () => {
  const arrayIteratorPrototype = Object.getPrototypeOf([][Symbol.iterator]());
  const mapIteratorPrototype = Object.getPrototypeOf(new Map()[Symbol.iterator]());
  const saved = [arrayIteratorPrototype.next, mapIteratorPrototype.next, globalThis.structuredClone,
    globalThis.setTimeout, Map.prototype.set];
  const broken = () => { throw new Error("replaced piece used"); };
  const { port1, port2 } = new MessageChannel();
  const received = new Promise((resolve) => { port2.onmessage = (e) => resolve(e.data); });
  const buffer = new ArrayBuffer(4);
  const transfer = new Set([buffer]);
  const value = new Map([["blob", new Blob(["x"])]]);
  let clone;
  arrayIteratorPrototype.next = broken;
  mapIteratorPrototype.next = broken;
  globalThis.structuredClone = broken;
  globalThis.setTimeout = broken;
  Map.prototype.set = broken;
  try {
    port1.postMessage({ n: 1, buffer }, { transfer });
    // A Blob inside makes structuredClone walk the value in JS.
    clone = saved[2](value);
  } finally {
    // Not a destructuring assignment: that would use the replaced array iterator.
    arrayIteratorPrototype.next = saved[0];
    mapIteratorPrototype.next = saved[1];
    globalThis.structuredClone = saved[2];
    globalThis.setTimeout = saved[3];
    Map.prototype.set = saved[4];
  }
  const data = await received;
  assertEquals([data.n, data.buffer.byteLength, buffer.byteLength], [1, 4, 0]);
  assertEquals([clone instanceof Map, clone.get("blob").size], [true, 1]);
  port1.close();
});
