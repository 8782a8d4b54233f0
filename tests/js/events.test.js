// Event, EventTarget, CustomEvent, ErrorEvent, PromiseRejectionEvent (DOM §2, HTML §8.1).
import { test, assert, assertEquals, assertThrows, assertStrictEquals } from "nano:test";

test("Event defaults and init dictionary", () => {
  const e = new Event("ping");
  assertEquals([e.type, e.bubbles, e.cancelable, e.composed, e.defaultPrevented, e.isTrusted],
    ["ping", false, false, false, false, false]);
  assertEquals(e.eventPhase, Event.NONE);
  assertStrictEquals(e.target, null);
  const f = new Event("x", { bubbles: true, cancelable: true, composed: true });
  assertEquals([f.bubbles, f.cancelable, f.composed], [true, true, true]);
  assert(typeof e.timeStamp === "number" && e.timeStamp >= 0);
});

test("Event needs a type and new", () => {
  assertThrows(() => new Event(), TypeError);
  assertThrows(() => Event("x"), TypeError);
  assertThrows(() => new Event("x", 5), TypeError);
});

test("isTrusted is an own unforgeable accessor", () => {
  const e = new Event("x");
  const d = Object.getOwnPropertyDescriptor(e, "isTrusted");
  assertEquals([typeof d.get, d.configurable, d.enumerable], ["function", false, true]);
});

test("listeners run in order with the event, this and currentTarget", () => {
  const et = new EventTarget();
  const seen = [];
  et.addEventListener("a", function (e) { seen.push(["f", this === et, e.currentTarget === et, e.eventPhase]); });
  et.addEventListener("a", { handleEvent(e) { seen.push(["obj", e.target === et]); } });
  assert(et.dispatchEvent(new Event("a")));
  assertEquals(seen, [["f", true, true, Event.AT_TARGET], ["obj", true]]);
});

test("duplicate listeners are added once; capture makes them distinct", () => {
  const et = new EventTarget();
  let n = 0;
  const f = () => n++;
  et.addEventListener("a", f);
  et.addEventListener("a", f);
  et.addEventListener("a", f, true);
  et.dispatchEvent(new Event("a"));
  assertEquals(n, 2);
  et.removeEventListener("a", f, { capture: true });
  et.dispatchEvent(new Event("a"));
  assertEquals(n, 3);
});

test("once, passive and signal options", () => {
  const et = new EventTarget();
  let n = 0;
  et.addEventListener("a", () => n++, { once: true });
  et.dispatchEvent(new Event("a"));
  et.dispatchEvent(new Event("a"));
  assertEquals(n, 1);
  et.addEventListener("p", (e) => e.preventDefault(), { passive: true });
  assert(et.dispatchEvent(new Event("p", { cancelable: true })), "passive cannot cancel");
  const ac = new AbortController();
  et.addEventListener("s", () => n++, { signal: ac.signal });
  ac.abort();
  et.dispatchEvent(new Event("s"));
  assertEquals(n, 1);
  assertThrows(() => et.addEventListener("s", null, { signal: null }), TypeError);
});

test("preventDefault only on cancelable events; returnValue mirrors it", () => {
  const et = new EventTarget();
  et.addEventListener("c", (e) => e.preventDefault());
  assertEquals(et.dispatchEvent(new Event("c", { cancelable: true })), false);
  assertEquals(et.dispatchEvent(new Event("c")), true);
  const e = new Event("r", { cancelable: true });
  e.returnValue = false;
  assertEquals(e.defaultPrevented, true);
});

test("stopImmediatePropagation stops later listeners", () => {
  const et = new EventTarget();
  const seen = [];
  et.addEventListener("a", (e) => { seen.push(1); e.stopImmediatePropagation(); });
  et.addEventListener("a", () => seen.push(2));
  et.dispatchEvent(new Event("a"));
  assertEquals(seen, [1]);
});

test("a throwing listener is reported and later listeners still run", () => {
  const et = new EventTarget();
  let reported = null;
  const onError = (e) => { reported = e.error; e.preventDefault(); };
  addEventListener("error", onError);
  let ran = false;
  et.addEventListener("a", () => { throw new RangeError("boom"); });
  et.addEventListener("a", () => { ran = true; });
  et.dispatchEvent(new Event("a"));
  removeEventListener("error", onError);
  assert(ran);
  assert(reported instanceof RangeError);
});

test("dispatching an event twice at once is an InvalidStateError", () => {
  const et = new EventTarget();
  const e = new Event("a");
  let err;
  et.addEventListener("a", () => { try { et.dispatchEvent(e); } catch (x) { err = x; } });
  et.dispatchEvent(e);
  assert(err instanceof DOMException);
  assertEquals(err.name, "InvalidStateError");
  assertThrows(() => et.dispatchEvent({ type: "a" }), TypeError);
});

test("CustomEvent detail and ErrorEvent fields", () => {
  assertEquals(new CustomEvent("c", { detail: { x: 1 } }).detail, { x: 1 });
  assertStrictEquals(new CustomEvent("c").detail, null);
  const err = new Error("e");
  const ev = new ErrorEvent("error", { message: "m", filename: "f.js", lineno: 3, colno: 4, error: err });
  assertEquals([ev.message, ev.filename, ev.lineno, ev.colno], ["m", "f.js", 3, 4]);
  assertStrictEquals(ev.error, err);
  assert(ev instanceof Event);
});

test("PromiseRejectionEvent requires a promise", () => {
  assertThrows(() => new PromiseRejectionEvent("unhandledrejection", {}), TypeError);
  const p = Promise.resolve();
  const e = new PromiseRejectionEvent("unhandledrejection", { promise: p, reason: 1 });
  assertStrictEquals(e.promise, p);
  assertEquals(e.reason, 1);
});

test("the global object is an EventTarget with event handler attributes", async () => {
  assert(globalThis instanceof EventTarget);
  assertStrictEquals(self, globalThis);
  let got = null;
  globalThis.onunhandledrejection = (e) => { got = e.reason; e.preventDefault(); };
  Promise.reject(42);
  await new Promise((r) => setTimeout(r, 0));
  globalThis.onunhandledrejection = null;
  assertEquals(got, 42);
});

test("onerror receives (message, filename, lineno, colno, error); true cancels", async () => {
  let args = null;
  globalThis.onerror = (...a) => { args = a; return true; };
  setTimeout(() => { throw new TypeError("from a timer"); }, 0);
  await new Promise((r) => setTimeout(r, 5));
  globalThis.onerror = null;
  assertEquals(args[0], "Uncaught from a timer");
  assert(args[4] instanceof TypeError);
});

test("Object.prototype.toString tags", () => {
  assertEquals(Object.prototype.toString.call(new Event("x")), "[object Event]");
  assertEquals(Object.prototype.toString.call(new EventTarget()), "[object EventTarget]");
  assertEquals(Object.prototype.toString.call(new CustomEvent("x")), "[object CustomEvent]");
});
