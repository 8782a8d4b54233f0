// TextEncoder and TextDecoder (WHATWG Encoding).
import { test, assert, assertEquals, assertThrows } from "nano:test";

const bytes = (...b) => new Uint8Array(b);

test("TextEncoder encodes UTF-8 and replaces lone surrogates", () => {
  const enc = new TextEncoder();
  assertEquals(enc.encoding, "utf-8");
  assertEquals([...enc.encode("hé😀")], [0x68, 0xc3, 0xa9, 0xf0, 0x9f, 0x98, 0x80]);
  assertEquals([...enc.encode("\ud800")], [0xef, 0xbf, 0xbd]);
  assertEquals(enc.encode().length, 0);
});

test("encodeInto reports UTF-16 units read and bytes written, never splitting a character", () => {
  const enc = new TextEncoder();
  const dest = new Uint8Array(5);
  assertEquals(enc.encodeInto("a😀b", dest), { read: 3, written: 5 });
  assertEquals(enc.encodeInto("😀", new Uint8Array(3)), { read: 0, written: 0 });
  assertThrows(() => enc.encodeInto("x", new Uint16Array(2)), TypeError);
});

test("UTF-8 decoding: BOM, replacement of maximal subparts, fatal", () => {
  const d = new TextDecoder();
  assertEquals(d.decode(bytes(0xef, 0xbb, 0xbf, 0x41)), "A");
  assertEquals(new TextDecoder("utf-8", { ignoreBOM: true }).decode(bytes(0xef, 0xbb, 0xbf)), "\ufeff");
  assertEquals(d.decode(bytes(0xf0, 0x9f, 0x41)), "\ufffdA");
  assertEquals(d.decode(bytes(0xc0, 0x80)), "\ufffd\ufffd");
  assertEquals(d.decode(bytes(0xed, 0xa0, 0x80)), "\ufffd\ufffd\ufffd");
  assertThrows(() => new TextDecoder("utf-8", { fatal: true }).decode(bytes(0xff)), TypeError);
});

test("streaming keeps incomplete sequences across calls", () => {
  const d = new TextDecoder();
  let out = "";
  for (const b of [0xf0, 0x9f, 0x98, 0x80]) out += d.decode(bytes(b), { stream: true });
  out += d.decode();
  assertEquals(out, "😀");
  assertEquals(d.decode(bytes(0xf0, 0x9f), { stream: true }), "");
  assertEquals(d.decode(), "\ufffd");
});

test("labels are trimmed and case-insensitive; unknown ones are RangeErrors", () => {
  assertEquals(new TextDecoder(" Latin1 ").encoding, "windows-1252");
  assertEquals(new TextDecoder("UTF8").encoding, "utf-8");
  assertEquals(new TextDecoder("utf-16").encoding, "utf-16le");
  assertThrows(() => new TextDecoder("nope"), RangeError);
  assertThrows(() => new TextDecoder("iso-2022-kr"), RangeError); // the replacement encoding
});

test("UTF-16LE/BE with surrogate pairs and lone surrogates", () => {
  assertEquals(new TextDecoder("utf-16le").decode(bytes(0x61, 0, 0x3d, 0xd8, 0, 0xde)), "a😀");
  assertEquals(new TextDecoder("utf-16be").decode(bytes(0, 0x61, 0xd8, 0x3d, 0xde, 0)), "a😀");
  assertEquals(new TextDecoder("utf-16le").decode(bytes(0, 0xd8, 0x61, 0)), "\ufffda");
  assertEquals(new TextDecoder("utf-16le").decode(bytes(0x61)), "\ufffd");
  assertThrows(() => new TextDecoder("utf-16le", { fatal: true }).decode(bytes(0, 0xdc)), TypeError);
});

test("legacy single- and multi-byte encodings through ICU", () => {
  assertEquals(new TextDecoder("windows-1252").decode(bytes(0x80, 0xe9)), "€é");
  assertEquals(new TextDecoder("koi8-r").decode(bytes(0xc1)), "а");
  assertEquals(new TextDecoder("shift_jis").decode(bytes(0x82, 0xa0)), "あ");
  assertEquals(new TextDecoder("euc-kr").decode(bytes(0xb0, 0xa1)), "가");
  assertEquals(new TextDecoder("x-user-defined").decode(bytes(0x41, 0x80)), "A\uf780");
  assertThrows(() => new TextDecoder("iso-8859-3", { fatal: true }).decode(bytes(0xa5)), TypeError);
});

test("decode accepts ArrayBuffer, typed arrays and DataView", () => {
  const d = new TextDecoder();
  const buf = new Uint8Array([0x78, 0x79, 0x7a]).buffer;
  assertEquals(d.decode(buf), "xyz");
  assertEquals(d.decode(new DataView(buf, 1)), "yz");
  assertEquals(d.decode(new Uint16Array(buf, 0, 1)), "xy");
  assertThrows(() => d.decode("string"), TypeError);
});

test("TextEncoder.encode at every size boundary gives fresh, exact arrays", () => {
  const enc = new TextEncoder();
  const decode = (b) => new TextDecoder().decode(b);
  for (const n of [1, 21, 22, 63, 64, 65, 1000, 4095, 4096, 4097, 10000]) {
    for (const unit of ["a", "\u00e9", "\u20ac", "\ud83d\ude00"]) {
      const s = unit.repeat(Math.ceil(n / unit.length)).slice(0, n);
      const bytes = enc.encode(s);
      assert(bytes instanceof Uint8Array && bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.length);
      // A character cut in half by slice() is a lone surrogate: U+FFFD.
      assertEquals(decode(bytes), s.replace(/[\ud800-\udbff]$/, "\ufffd"));
    }
  }
  const first = enc.encode("first");
  enc.encode("second, which must not show through");
  assertEquals(decode(first), "first");
  assertEquals(decode(enc.encode(12)), "12");
  assertEquals(decode(enc.encode({ toString: () => "obj" })), "obj");
  assertEquals(decode(enc.encode(undefined)), "");
  assertThrows(() => enc.encode(Symbol("s")), TypeError);
});

test("decode reads the caller's bytes in place, and keeps its own copy of a split sequence", () => {
  const d = new TextDecoder();
  const big = new TextEncoder().encode("xx\u20ac\u20acyy");
  assertEquals(d.decode(big.subarray(2, 8)), "\u20ac\u20ac");
  assertEquals(d.decode(new DataView(big.buffer, 2, 3)), "\u20ac");
  assertEquals(d.decode(big.buffer), "xx\u20ac\u20acyy");
  // A sequence cut at the end of a streamed chunk: changing the chunk afterwards must not
  // change what the next call completes.
  const chunk = new Uint8Array([0x61, 0xe2, 0x82]);
  assertEquals(d.decode(chunk, { stream: true }), "a");
  chunk.fill(0);
  assertEquals(d.decode(new Uint8Array([0xac])), "\u20ac");
  class Species extends Uint8Array { static get [Symbol.species]() { throw new Error("species used"); } }
  assertEquals(d.decode(Species.from([0x68, 0x69, 0xe2]), { stream: true }), "hi");
  assertEquals(d.decode(), "\ufffd");
});

test("TextEncoder's brand is its own, not instanceof", () => {
  const fake = Object.create(TextEncoder.prototype);
  assertThrows(() => TextEncoder.prototype.encode.call(fake, "x"), TypeError);
  assertThrows(() => Reflect.get(TextEncoder.prototype, "encoding", fake), TypeError);
  Object.defineProperty(TextEncoder, Symbol.hasInstance, { value: () => false, configurable: true });
  try {
    assertEquals(new TextEncoder().encode("ab").length, 2);
    assertEquals(new TextEncoder().encoding, "utf-8");
  } finally {
    delete TextEncoder[Symbol.hasInstance];
  }
});
