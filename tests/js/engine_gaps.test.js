// The ES2023-ES2026 library built-ins V8 10.2 lacks, installed from core-js in the startup
// snapshot (docs/engine-gaps.md): present, shaped as the spec's built-ins (attributes, name,
// length, not constructors) and working. test262 (make test262) checks them in depth; this
// checks that every one is there in every isolate.
import { test, assert, assertEquals, assertThrows } from "nano:test";

const TypedArray = Object.getPrototypeOf(Int8Array);
const IteratorPrototype = Object.getPrototypeOf(Object.getPrototypeOf([][Symbol.iterator]()));

// [holder, key, length]
const METHODS = [
  [Array.prototype, "toReversed", 0], [Array.prototype, "toSorted", 1],
  [Array.prototype, "toSpliced", 2], [Array.prototype, "with", 2],
  [TypedArray.prototype, "toReversed", 0], [TypedArray.prototype, "toSorted", 1],
  [TypedArray.prototype, "with", 2],
  [Object, "groupBy", 2], [Map, "groupBy", 2],
  [Promise, "withResolvers", 0], [Promise, "try", 1],
  [String.prototype, "isWellFormed", 0], [String.prototype, "toWellFormed", 0],
  [ArrayBuffer.prototype, "transfer", 0], [ArrayBuffer.prototype, "transferToFixedLength", 0],
  [Set.prototype, "union", 1], [Set.prototype, "intersection", 1],
  [Set.prototype, "difference", 1], [Set.prototype, "symmetricDifference", 1],
  [Set.prototype, "isSubsetOf", 1], [Set.prototype, "isSupersetOf", 1],
  [Set.prototype, "isDisjointFrom", 1],
  [IteratorPrototype, "map", 1], [IteratorPrototype, "filter", 1], [IteratorPrototype, "take", 1],
  [IteratorPrototype, "drop", 1], [IteratorPrototype, "flatMap", 1],
  [IteratorPrototype, "reduce", 1], [IteratorPrototype, "toArray", 0],
  [IteratorPrototype, "forEach", 1], [IteratorPrototype, "some", 1],
  [IteratorPrototype, "every", 1], [IteratorPrototype, "find", 1],
  [RegExp, "escape", 1], [Math, "f16round", 1], [Math, "sumPrecise", 1],
  [DataView.prototype, "getFloat16", 1], [DataView.prototype, "setFloat16", 2],
  [Array, "fromAsync", 1], [Error, "isError", 1],
  [Uint8Array, "fromBase64", 1], [Uint8Array, "fromHex", 1],
  [Uint8Array.prototype, "setFromBase64", 1], [Uint8Array.prototype, "setFromHex", 1],
  [Uint8Array.prototype, "toBase64", 0], [Uint8Array.prototype, "toHex", 0],
];

function isConstructor(f) {
  try {
    Reflect.construct(String, [], f);
    return true;
  } catch {
    return false;
  }
}

test("every listed built-in is there, shaped as the spec's: attributes, name, length, no [[Construct]]", () => {
  for (const [holder, key, length] of METHODS) {
    const d = Object.getOwnPropertyDescriptor(holder, key);
    assert(d !== undefined, `${key} is missing`);
    assertEquals([typeof d.value, d.writable, d.enumerable, d.configurable],
      ["function", true, false, true], key);
    assertEquals(d.value.name, key, `${key}.name`);
    assertEquals(d.value.length, length, `${key}.length`);
    assert(!isConstructor(d.value), `${key} is a constructor`);
    assertThrows(() => new d.value(), TypeError);
  }
  for (const C of [globalThis.Iterator, DisposableStack, AsyncDisposableStack, SuppressedError]) {
    assertEquals(typeof C, "function");
    assert(isConstructor(C), `${C.name} is not a constructor`);
    const d = Object.getOwnPropertyDescriptor(globalThis, C.name);
    assertEquals([d.writable, d.enumerable, d.configurable], [true, false, true], C.name);
  }
  for (const name of ["dispose", "asyncDispose"]) {
    const d = Object.getOwnPropertyDescriptor(Symbol, name);
    assertEquals([typeof d.value, d.writable, d.enumerable, d.configurable],
      ["symbol", false, false, false], name);
    assertEquals(Symbol.keyFor(d.value), undefined, `Symbol.${name} is a registered symbol`);
  }
  const detached = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, "detached");
  assertEquals(typeof detached.get, "function");
  assert(!isConstructor(detached.get));
  assertEquals(DisposableStack.prototype[Symbol.dispose], DisposableStack.prototype.dispose);
});

test("they work", async () => {
  const a = [3, 1, 2];
  assertEquals(a.toSorted(), [1, 2, 3]);
  assertEquals(a.toReversed(), [2, 1, 3]);
  assertEquals(a.with(0, 9), [9, 1, 2]);
  assertEquals(a.toSpliced(1, 1), [3, 2]);
  assertEquals(a, [3, 1, 2]);
  assertEquals(Array.from(new Uint8Array([3, 1, 2]).toSorted()), [1, 2, 3]);
  assertEquals(Object.groupBy([1, 2, 3], (x) => (x % 2 ? "odd" : "even")).odd, [1, 3]);
  assertEquals(Map.groupBy([1, 2, 3], (x) => x % 2).get(0), [2]);
  const { promise, resolve } = Promise.withResolvers();
  resolve(7);
  assertEquals(await promise, 7);
  assertEquals(await Promise.try(() => 8), 8);
  assertEquals(["a\uD800".isWellFormed(), "a\uD800".toWellFormed()], [false, "a\uFFFD"]);
  const buf = new Uint8Array([1, 2, 3]).buffer;
  const moved = buf.transfer(2);
  assertEquals([buf.detached, buf.byteLength, moved.byteLength, new Uint8Array(moved)[1]],
    [true, 0, 2, 2]);
  assertEquals([...new Set([1, 2]).union(new Set([3]))], [1, 2, 3]);
  assertEquals([...new Set([1, 2]).intersection(new Set([2, 3]))], [2]);
  assert(new Set([1]).isSubsetOf(new Set([1, 2])));
  assertEquals(Iterator.from([1, 2, 3, 4]).filter((x) => x % 2 === 0).map((x) => x * 10).toArray(),
    [20, 40]);
  assertEquals([1, 2, 3].values().drop(1).take(1).toArray(), [2]);
  assertEquals(RegExp.escape("a.b"), "\\x61\\.b");
  assertEquals(Math.f16round(1.337), 1.3369140625);
  assertEquals(Math.sumPrecise([1e20, 0.1, -1e20]), 0.1);
  const dv = new DataView(new ArrayBuffer(2));
  dv.setFloat16(0, 1.5);
  assertEquals(dv.getFloat16(0), 1.5);
  assertEquals(await Array.fromAsync([Promise.resolve(1), 2]), [1, 2]);
  assert(Error.isError(new TypeError("x")) && !Error.isError({}));
  assertEquals(new Uint8Array([104, 105]).toBase64(), "aGk=");
  assertEquals(Array.from(Uint8Array.fromHex("6869")), [104, 105]);
  assertEquals(new Uint8Array([255]).toHex(), "ff");
  const log = [];
  {
    const stack = new DisposableStack();
    stack.defer(() => log.push("deferred"));
    stack.dispose();
  }
  assertEquals(log, ["deferred"]);
  const e = new SuppressedError(new Error("a"), new Error("b"), "both");
  assertEquals([e.message, e.error.message, e.suppressed.message], ["both", "a", "b"]);
});

test("core-js leaves no global of its own behind", () => {
  assert(!("__core-js_shared__" in globalThis));
  assert(!Reflect.ownKeys(globalThis).some((k) => typeof k === "string" && k.includes("core-js")));
});
