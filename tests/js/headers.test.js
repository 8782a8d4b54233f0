// Headers init conversion (WebIDL record and sequence, Fetch "fill") and name/value checks:
// the fast paths must give exactly what the spec's steps give, side effects included.
import { test, assert, assertEquals, assertThrows } from "nano:test";

const entries = (h) => [...h];

test("names are lowercased and values trimmed of HTTP whitespace only", () => {
  const h = new Headers();
  h.append("X-Mixed-Case", " \t a\tb \r\n");
  h.append("x-empty", "");
  h.append("x-latin1", "caf\u00e9");
  assertEquals(entries(h), [["x-empty", ""], ["x-latin1", "caf\u00e9"], ["x-mixed-case", "a\tb"]]);
  assertEquals(h.get("X-MIXED-CASE"), "a\tb");
  // Other whitespace (a form feed, a no-break space) is part of the value.
  h.set("x-ws", "\f1\u00a0");
  assertEquals(h.get("x-ws"), "\f1\u00a0");
});

test("invalid names and values are TypeErrors", () => {
  const h = new Headers();
  for (const name of ["", "a b", "a:b", "caf\u00e9", "\u0100", "a\n", "(x)"]) {
    assertThrows(() => h.append(name, "v"), TypeError, undefined);
    assertThrows(() => h.has(name), TypeError, undefined);
  }
  for (const value of ["a\nb", "a\rb", "a\0b", "\u0100", "x\u2028"]) {
    assertThrows(() => h.append("x", value), TypeError, undefined);
  }
  // Non-strings convert with String(), a Symbol cannot.
  h.append("x-num", 12);
  h.append("x-obj", { toString: () => " o " });
  assertEquals([h.get("x-num"), h.get("x-obj")], ["12", "o"]);
  assertThrows(() => h.append("x", Symbol("s")), TypeError, undefined);
  assertThrows(() => h.append(Symbol("s"), "x"), TypeError, undefined);
  assertEquals(entries(h).length, 2);
});

test("a record: own enumerable keys, each value read after its key converts", () => {
  const log = [];
  const record = {
    get a() { log.push("get a"); return "1"; },
    get "\u0100"() { log.push("get \u0100"); return "2"; },
    get c() { log.push("get c"); return "3"; },
  };
  // The second key fails its ByteString conversion: its value is never read, nor is c.
  assertThrows(() => new Headers(record), TypeError, undefined);
  assertEquals(log, ["get a"]);

  const valueFirst = {
    get a() { log.push("get a2"); return "\u0100"; },
    get b() { log.push("get b2"); return "ok"; },
  };
  assertThrows(() => new Headers(valueFirst), TypeError, undefined);
  assertEquals(log.slice(1), ["get a2"]);

  const withHidden = { x: "1" };
  Object.defineProperty(withHidden, "hidden", { value: "2", enumerable: false });
  withHidden[1] = "index";
  assertEquals(entries(new Headers(withHidden)), [["1", "index"], ["x", "1"]]);
  // Inherited properties are not the record's.
  assertEquals(entries(new Headers(Object.create({ inherited: "1" }))), []);
});

test("a record's symbol keys: enumerable ones are a TypeError, after every string key", () => {
  const log = [];
  const s = Symbol("s");
  const record = { [s]: "x", get a() { log.push("a"); return "1"; } };
  assertThrows(() => new Headers(record), TypeError, undefined);
  assertEquals(log, ["a"]);
  const hidden = { a: "1" };
  Object.defineProperty(hidden, s, { value: "x", enumerable: false });
  assertEquals(entries(new Headers(hidden)), [["a", "1"]]);
});

test("every conversion happens before the first invalid pair throws", () => {
  const log = [];
  const later = { toString() { log.push("later"); return "v"; } };
  // The first pair has an invalid name (a token error, found when appending): the later
  // pair's value is still converted first.
  assertThrows(() => new Headers([["bad name", "1"], ["ok", later]]), TypeError, undefined);
  assertEquals(log, ["later"]);
  // A pair of the wrong length likewise.
  assertThrows(() => new Headers([["a"], ["ok", later]]), TypeError, undefined);
  assertEquals(log, ["later", "later"]);
  assertThrows(() => new Headers([["a", "b", "c"]]), TypeError, undefined);
  assertThrows(() => new Headers(["ab"]), TypeError, undefined);
  assertThrows(() => new Headers([null]), TypeError, undefined);
});

test("sequences go through the iterators the app may have replaced", () => {
  const ArrayIteratorPrototype = Object.getPrototypeOf([][Symbol.iterator]());
  const next = ArrayIteratorPrototype.next;
  let steps = 0;
  ArrayIteratorPrototype.next = function () { steps++; return next.call(this); };
  try {
    const h = new Headers([["a", "1"], ["b", "2"]]);
    const taken = steps;
    ArrayIteratorPrototype.next = next;
    assertEquals(entries(h), [["a", "1"], ["b", "2"]]);
    // Outer: 3 steps (two pairs, then done); each pair: 3 steps.
    assertEquals(taken, 9);
  } finally {
    ArrayIteratorPrototype.next = next;
  }
  const pair = ["own", "iterator"];
  pair[Symbol.iterator] = function* () { yield "from"; yield "generator"; };
  assertEquals(entries(new Headers([pair])), [["from", "generator"]]);
  const iterable = { *[Symbol.iterator]() { yield ["g", "1"]; } };
  assertEquals(entries(new Headers(iterable)), [["g", "1"]]);
  // Array length is read at each step, as the array iterator does.
  const grows = [["a", "1"]];
  let reads = 0;
  const proxy = new Proxy(grows, {
    get(target, key, receiver) {
      if (key === "length") reads++;
      return Reflect.get(target, key, receiver);
    },
  });
  assertEquals(entries(new Headers(proxy)), [["a", "1"]]);
  assertEquals(reads, 2);
});

test("a Headers init copies the sorted, combined pairs, unless its iteration was replaced", () => {
  const src = new Headers([["b", "2"], ["A", "1"], ["b", "3"], ["set-cookie", "x=1"], ["set-cookie", "y=2"]]);
  assertEquals(entries(new Headers(src)),
    [["a", "1"], ["b", "2, 3"], ["set-cookie", "x=1"], ["set-cookie", "y=2"]]);
  const iterProto = Object.getPrototypeOf(src[Symbol.iterator]());
  const next = iterProto.next;
  iterProto.next = function () {
    const r = next.call(this);
    if (!r.done) r.value = [r.value[0], r.value[1] + "!"];
    return r;
  };
  try {
    assertEquals(new Headers(src).get("a"), "1!");
  } finally {
    iterProto.next = next;
  }
  const own = new Headers([["a", "1"]]);
  own[Symbol.iterator] = function* () { yield ["z", "26"]; };
  assertEquals(entries(new Headers(own)), [["z", "26"]]);
  // A patched public get() does not change what iteration combines.
  const get = Headers.prototype.get;
  Headers.prototype.get = () => "patched";
  try {
    assertEquals(entries(src)[1], ["b", "2, 3"]);
  } finally {
    Headers.prototype.get = get;
  }
  assert(new Response("x", { headers: src }).headers.get("b") === "2, 3");
});
