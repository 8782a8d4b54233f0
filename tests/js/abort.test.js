// AbortController, AbortSignal (DOM §3) and DOMException (WebIDL §3.14.1).
import { test, assert, assertEquals, assertThrows, assertStrictEquals } from "nano:test";

test("abort() sets aborted and the default AbortError reason, once", () => {
  const ac = new AbortController();
  let events = 0;
  ac.signal.addEventListener("abort", (e) => { events++; assert(e.isTrusted); });
  assertEquals(ac.signal.aborted, false);
  ac.abort();
  ac.abort("again");
  assertEquals(events, 1);
  assert(ac.signal.reason instanceof DOMException);
  assertEquals(ac.signal.reason.name, "AbortError");
  assertThrows(() => ac.signal.throwIfAborted(), DOMException);
});

test("abort(reason) keeps the reason as given", () => {
  const ac = new AbortController();
  const reason = { why: 1 };
  ac.abort(reason);
  assertStrictEquals(ac.signal.reason, reason);
  try { ac.signal.throwIfAborted(); } catch (e) { assertStrictEquals(e, reason); }
});

test("AbortSignal cannot be constructed; abort() makes an aborted one", () => {
  assertThrows(() => new AbortSignal(), TypeError);
  const s = AbortSignal.abort("r");
  assertEquals([s.aborted, s.reason], [true, "r"]);
});

test("AbortSignal.timeout aborts with a TimeoutError", async () => {
  const s = AbortSignal.timeout(10);
  await new Promise((r) => s.addEventListener("abort", r));
  assertEquals(s.reason.name, "TimeoutError");
  assertThrows(() => AbortSignal.timeout(-1), TypeError);
});

test("AbortSignal.any follows its sources, flattening dependent ones", () => {
  const a = new AbortController();
  const b = new AbortController();
  const any = AbortSignal.any([a.signal, b.signal]);
  const nested = AbortSignal.any([any]);
  let order = [];
  any.onabort = () => order.push("any");
  nested.onabort = () => order.push("nested");
  b.abort("b");
  assertEquals([any.aborted, any.reason, nested.aborted, nested.reason], [true, "b", true, "b"]);
  assertEquals(order, ["any", "nested"]);
  assertEquals(AbortSignal.any([AbortSignal.abort(7)]).reason, 7);
  assertThrows(() => AbortSignal.any([{}]), TypeError);
});

test("onabort is an event handler attribute", () => {
  const ac = new AbortController();
  let n = 0;
  ac.signal.onabort = () => n++;
  assertEquals(typeof ac.signal.onabort, "function");
  ac.abort();
  assertEquals(n, 1);
});

test("DOMException name, message, legacy code and constants", () => {
  const e = new DOMException("msg", "NotFoundError");
  assertEquals([e.name, e.message, e.code], ["NotFoundError", "msg", 8]);
  assertEquals(new DOMException().name, "Error");
  assertEquals(new DOMException("x", "Custom").code, 0);
  assertEquals(DOMException.ABORT_ERR, 20);
  assertEquals(e.DATA_CLONE_ERR, 25);
  assert(e instanceof Error, "inherits from Error.prototype");
  assertEquals(String(e), "NotFoundError: msg");
  assert(typeof e.stack === "string");
  assertThrows(() => DOMException.prototype.name, TypeError);
});

test("aborting does not go through iterators the app replaced", () => {
  const setIteratorPrototype = Object.getPrototypeOf(new Set()[Symbol.iterator]());
  const arrayIteratorPrototype = Object.getPrototypeOf([][Symbol.iterator]());
  const setNext = setIteratorPrototype.next;
  const arrayNext = arrayIteratorPrototype.next;
  const seen = [];
  const ac = new AbortController();
  const request = new Request("http://h/", { signal: ac.signal }); // follows ac.signal
  const any = AbortSignal.any([ac.signal]);
  ac.signal.addEventListener("abort", () => seen.push("listener"));
  any.addEventListener("abort", () => seen.push("any"));
  setIteratorPrototype.next = () => { throw new Error("set iterator used"); };
  try {
    ac.abort("why");
  } finally {
    setIteratorPrototype.next = setNext;
  }
  assertEquals([seen, request.signal.aborted, request.signal.reason, any.reason],
    [["listener", "any"], true, "why", "why"]);
  // AbortSignal.any takes any iterable of signals, through its iterator (a sequence).
  let steps = 0;
  arrayIteratorPrototype.next = function () { steps++; return arrayNext.call(this); };
  let dependent;
  try {
    dependent = AbortSignal.any([new AbortController().signal]);
  } finally {
    arrayIteratorPrototype.next = arrayNext;
  }
  assertEquals([steps, dependent.aborted], [2, false]);
  assertThrows(() => AbortSignal.any([{}]), TypeError);
  assertThrows(() => AbortSignal.any(1), TypeError);
});
