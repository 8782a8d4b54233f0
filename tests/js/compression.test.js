// CompressionStream and DecompressionStream (WHATWG Compression Standard).
import { test, assert, assertEquals, assertThrows, assertRejects } from "nano:test";

const FORMATS = ["gzip", "deflate", "deflate-raw", "brotli"];
const TEXT = "Hello, NANO! Hello, NANO! Hello, NANO!\n";
const textBytes = () => new TextEncoder().encode(TEXT);

// Reference streams for TEXT: gzip/deflate/deflate-raw from Python's gzip and zlib modules,
// brotli from libbrotli's one-shot encoder at quality 11 (not the streaming settings we use).
const REFERENCE = {
  gzip: [0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xf3, 0x48, 0xcd, 0xc9,
    0xc9, 0xd7, 0x51, 0xf0, 0x73, 0xf4, 0xf3, 0x57, 0x54, 0xf0, 0xc0, 0xc5, 0xe1, 0x02, 0x00,
    0xaf, 0xc8, 0x1e, 0xb7, 0x27, 0x00, 0x00, 0x00],
  deflate: [0x78, 0x9c, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0xd7, 0x51, 0xf0, 0x73, 0xf4, 0xf3, 0x57,
    0x54, 0xf0, 0xc0, 0xc5, 0xe1, 0x02, 0x00, 0xe6, 0x81, 0x0a, 0xf2],
  "deflate-raw": [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0xd7, 0x51, 0xf0, 0x73, 0xf4, 0xf3, 0x57, 0x54,
    0xf0, 0xc0, 0xc5, 0xe1, 0x02, 0x00],
  brotli: [0x1b, 0x26, 0x00, 0xf8, 0x9d, 0x09, 0xbc, 0x09, 0xf3, 0xaa, 0xd9, 0x40, 0x97, 0x1e,
    0xa7, 0x74, 0x42, 0x0a, 0x29, 0x05, 0x90, 0x66, 0x09, 0x7a, 0x2a, 0x53, 0x6c, 0x6f, 0xa5,
    0x08, 0x51, 0xd1, 0xc0, 0xf7, 0x24, 0x55, 0x00],
};
// gzip.GzipFile(filename="hello.txt", mtime=1700000000): FNAME set, OS 255.
const GZIP_WITH_NAME = [0x1f, 0x8b, 0x08, 0x08, 0x00, 0xf1, 0x53, 0x65, 0x02, 0xff, 0x68, 0x65,
  0x6c, 0x6c, 0x6f, 0x2e, 0x74, 0x78, 0x74, 0x00, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0xd7, 0x51, 0xf0,
  0x73, 0xf4, 0xf3, 0x57, 0x54, 0xf0, 0xc0, 0xc5, 0xe1, 0x02, 0x00, 0xaf, 0xc8, 0x1e, 0xb7, 0x27,
  0x00, 0x00, 0x00];

// Reads a stream to its end: [every chunk, the bytes joined].
async function readAll(readable) {
  const chunks = [];
  for await (const chunk of readable) chunks.push(chunk);
  let len = 0;
  for (const c of chunks) len += c.byteLength;
  const bytes = new Uint8Array(len);
  let off = 0;
  for (const c of chunks) {
    bytes.set(c, off);
    off += c.byteLength;
  }
  return { chunks, bytes };
}

// Writes each chunk (without waiting: the transform queues them), closes, reads everything.
async function through(stream, chunks) {
  const writer = stream.writable.getWriter();
  const writes = chunks.map((c) => writer.write(c));
  const closed = writer.close();
  const result = await readAll(stream.readable);
  await Promise.all(writes);
  await closed;
  return result;
}

const compress = async (format, chunks) => (await through(new CompressionStream(format), chunks)).bytes;
const decompress = async (format, chunks) => (await through(new DecompressionStream(format), chunks)).bytes;

function randomBytes(n) {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  return out;
}

function sameBytes(actual, expected, what) {
  assertEquals(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i]) assert(false, `${what}: byte ${i} is ${actual[i]}, expected ${expected[i]}`);
  }
}

// Decompression that must fail: resolves to the error the readable side ended with, and the
// bytes it produced before that.
async function failingDecompress(format, chunks) {
  const ds = new DecompressionStream(format);
  const writer = ds.writable.getWriter();
  for (const c of chunks) writer.write(c).catch(() => {});
  writer.close().catch(() => {});
  const reader = ds.readable.getReader();
  const got = [];
  for (;;) {
    try {
      const { value, done } = await reader.read();
      if (done) return { error: null, got };
      got.push(...value);
    } catch (e) {
      return { error: e, got };
    }
  }
}

test("the interfaces: constructor arity, toStringTag, readable and writable sides", () => {
  for (const Ctor of [CompressionStream, DecompressionStream]) {
    assertEquals(Ctor.length, 1);
    const s = new Ctor("gzip");
    assertEquals(Object.prototype.toString.call(s), `[object ${Ctor.name}]`);
    assert(s.readable instanceof ReadableStream);
    assert(s.writable instanceof WritableStream);
    assertEquals(s.readable, s.readable);
    const getter = Object.getOwnPropertyDescriptor(Ctor.prototype, "readable").get;
    assertThrows(() => getter.call({}), TypeError);
    assertThrows(() => Ctor("gzip"), TypeError);
  }
});

test("every CompressionFormat is accepted; anything else is a TypeError", () => {
  for (const Ctor of [CompressionStream, DecompressionStream]) {
    for (const f of FORMATS) new Ctor(f);
    for (const bad of ["GZIP", "zlib", "br", "deflate ", "", undefined, null, 1]) {
      assertThrows(() => new Ctor(bad), TypeError);
    }
    assertThrows(() => new Ctor(), TypeError);
    // The enum conversion calls toString, whose error propagates.
    const err = assertThrows(() => new Ctor({ toString() { throw new RangeError("boom"); } }), RangeError);
    assertEquals(err.message, "boom");
    assertEquals(new Ctor({ toString: () => "deflate" }).constructor, Ctor);
  }
});

test("known streams from other encoders decode (Python zlib/gzip, libbrotli)", async () => {
  for (const f of FORMATS) {
    sameBytes(await decompress(f, [new Uint8Array(REFERENCE[f])]), textBytes(), f);
  }
  sameBytes(await decompress("gzip", [new Uint8Array(GZIP_WITH_NAME)]), textBytes(), "gzip FNAME");
});

test("round trips of empty input in every format", async () => {
  for (const f of FORMATS) {
    const c = await compress(f, []);
    assert(c.length > 0, `${f}: even empty input has a header or a last block`);
    assertEquals((await decompress(f, [c])).length, 0, f);
    const c2 = await compress(f, [new Uint8Array(0), new ArrayBuffer(0)]);
    assertEquals((await decompress(f, [c2])).length, 0, f);
  }
});

test("round trips of one byte in every format", async () => {
  for (const f of FORMATS) {
    sameBytes(await decompress(f, [await compress(f, [new Uint8Array([0x2a])])]), [0x2a], f);
  }
});

test("round trips of 1 MiB of random bytes in every format", async () => {
  const input = randomBytes(1 << 20);
  for (const f of FORMATS) {
    const c = await compress(f, [input]);
    sameBytes(await decompress(f, [c]), input, f);
  }
});

test("round trips of many small chunks, each stream decoding the other's output", async () => {
  const pieces = [];
  for (let i = 0; i < 500; i++) pieces.push(new TextEncoder().encode(`line ${i}: ${"x".repeat(i % 37)}\n`));
  const whole = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of pieces) {
    whole.set(p, off);
    off += p.length;
  }
  for (const f of FORMATS) {
    const c = await compress(f, pieces);
    assert(c.length < whole.length / 4, `${f}: text compresses (${c.length} of ${whole.length})`);
    // The compressed bytes, fed back one byte at a time.
    const bytewise = [];
    for (let i = 0; i < c.length; i++) bytewise.push(c.subarray(i, i + 1));
    sameBytes(await decompress(f, bytewise), whole, f);
  }
});

test("pipeThrough a CompressionStream and a DecompressionStream", async () => {
  const input = randomBytes(100000);
  for (const f of FORMATS) {
    const source = new ReadableStream({
      start(c) {
        for (let i = 0; i < input.length; i += 7000) c.enqueue(input.slice(i, i + 7000));
        c.close();
      },
    });
    const { bytes } = await readAll(source.pipeThrough(new CompressionStream(f)).pipeThrough(new DecompressionStream(f)));
    sameBytes(bytes, input, f);
  }
});

test("compressed output has each format's framing", async () => {
  const gz = await compress("gzip", [textBytes()]);
  assertEquals([...gz.subarray(0, 3)], [0x1f, 0x8b, 0x08]);
  const size = gz[gz.length - 4] | (gz[gz.length - 3] << 8) | (gz[gz.length - 2] << 16) | (gz[gz.length - 1] << 24);
  assertEquals(size, TEXT.length, "gzip ISIZE");
  const z = await compress("deflate", [textBytes()]);
  assertEquals(z[0], 0x78);
  assertEquals(((z[0] << 8) | z[1]) % 31, 0, "zlib FCHECK");
  // A raw stream has no header: the gzip body is the same deflate data.
  const raw = await compress("deflate-raw", [textBytes()]);
  sameBytes(gz.subarray(10, gz.length - 8), raw, "gzip body vs deflate-raw");
});

test("BufferSource chunks of every kind; views use only their own bytes", async () => {
  const ref = new Uint8Array(REFERENCE.deflate);
  const padded = new Uint8Array(ref.length + 8);
  padded.set(ref, 3);
  const kinds = [
    ref.buffer.slice(0),
    new DataView(padded.buffer, 3, ref.length),
    padded.subarray(3, 3 + ref.length),
    new Int8Array(ref.slice().buffer),
    new Uint8ClampedArray(ref.slice().buffer),
  ];
  for (const chunk of kinds) sameBytes(await decompress("deflate", [chunk]), textBytes(), String(chunk));
  // A Uint16Array over an even-length buffer, at a nonzero offset.
  const even = new Uint8Array(ref.length + (ref.length % 2) + 2);
  even.set(ref, 2);
  const chunks = [new Uint16Array(even.buffer, 2, (ref.length + (ref.length % 2)) / 2)];
  const { error, got } = await failingDecompress("deflate", chunks);
  // An odd-length stream padded to even length ends in one junk byte: output, then TypeError.
  if (ref.length % 2) {
    assert(error instanceof TypeError);
    sameBytes(got, textBytes(), "Uint16Array");
  } else {
    assertEquals(error, null);
  }
});

test("a chunk that is not a BufferSource errors the stream with a TypeError", async () => {
  const bad = [undefined, null, 3.14, "text", {}, [65], new Blob(["x"]), { buffer: new ArrayBuffer(1) }];
  for (const Ctor of [CompressionStream, DecompressionStream]) {
    for (const chunk of bad) {
      const s = new Ctor("deflate");
      const writer = s.writable.getWriter();
      const reader = s.readable.getReader();
      const read = reader.read();
      await assertRejects(writer.write(chunk), TypeError);
      await assertRejects(read, TypeError);
      await assertRejects(writer.closed, TypeError);
    }
  }
});

test("SharedArrayBuffer chunks and views on them are rejected", async () => {
  const shared = () => new WebAssembly.Memory({ shared: true, initial: 1, maximum: 1 }).buffer;
  for (const Ctor of [CompressionStream, DecompressionStream]) {
    for (const chunk of [shared(), new Uint8Array(shared()), new DataView(shared(), 0, 4)]) {
      const s = new Ctor("gzip");
      const writer = s.writable.getWriter();
      const read = s.readable.getReader().read();
      await assertRejects(writer.write(chunk), TypeError);
      await assertRejects(read, TypeError);
    }
  }
});

test("corrupt input is a TypeError", async () => {
  const cases = {
    gzip: [0x1f, 0x8c, 0x08, 0, 0, 0, 0, 0, 0, 3, 3, 0],        // bad magic
    deflate: [0x78, 0x9d, 3, 0],                                   // bad FCHECK
    "deflate-raw": [0xff, 0xff, 0xff, 0xff],                        // reserved block type
    brotli: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff],                  // invalid window / meta-block
  };
  for (const f of FORMATS) {
    const { error, got } = await failingDecompress(f, [new Uint8Array(cases[f])]);
    assert(error instanceof TypeError, `${f}: ${error}`);
    assertEquals(got.length, 0, f);
  }
  // A flipped bit in the checksum: the data decodes, the trailer does not match.
  for (const f of ["gzip", "deflate"]) {
    const c = new Uint8Array(REFERENCE[f]);
    c[c.length - (f === "gzip" ? 8 : 1)] ^= 1;
    const { error } = await failingDecompress(f, [c]);
    assert(error instanceof TypeError, `${f} checksum: ${error}`);
  }
  // Data that needs a preset dictionary (FDICT) cannot be decoded.
  const dict = [0x78, 0xbb, 0x74, 0xee, 0x09, 0x59, 0x2b, 0xc1, 0x2e, 0x0c, 0x00, 0x74, 0xee, 0x09, 0x59];
  assert((await failingDecompress("deflate", [new Uint8Array(dict)])).error instanceof TypeError);
  // After the error, later writes reject too.
  const ds = new DecompressionStream("deflate");
  const writer = ds.writable.getWriter();
  ds.readable.getReader().read().catch(() => {});
  await assertRejects(writer.write(new Uint8Array([0, 0, 0])), TypeError);
  await assertRejects(writer.write(new Uint8Array(REFERENCE.deflate)), TypeError);
});

test("truncated input is a TypeError when the writable side closes", async () => {
  for (const f of FORMATS) {
    const full = await compress(f, [randomBytes(5000)]);
    for (const cut of [1, full.length >> 1, full.length - 1]) {
      const { error } = await failingDecompress(f, [full.subarray(0, cut)]);
      assert(error instanceof TypeError, `${f} cut at ${cut}: ${error}`);
    }
    // No input at all is not a compressed stream either.
    const ds = new DecompressionStream(f);
    ds.readable.getReader().read().catch(() => {});
    await assertRejects(ds.writable.getWriter().close(), TypeError);
  }
});

test("trailing bytes after the end: the output first, then a TypeError", async () => {
  for (const f of FORMATS) {
    const withJunk = new Uint8Array([...REFERENCE[f], 0]);
    const { error, got } = await failingDecompress(f, [withJunk]);
    assert(error instanceof TypeError, `${f}: ${error}`);
    sameBytes(got, textBytes(), f);
    // The junk in a later chunk than the end of the stream.
    const later = await failingDecompress(f, [new Uint8Array(REFERENCE[f]), new Uint8Array([1, 2])]);
    assert(later.error instanceof TypeError, `${f} later: ${later.error}`);
    sameBytes(later.got, textBytes(), `${f} later`);
    // An empty chunk after the end is no junk.
    const ok = await failingDecompress(f, [new Uint8Array(REFERENCE[f]), new Uint8Array(0)]);
    assertEquals(ok.error, null, f);
  }
  // A second gzip member counts as trailing data: "gzip" is one member.
  const two = new Uint8Array([...REFERENCE.gzip, ...REFERENCE.gzip]);
  assert((await failingDecompress("gzip", [two])).error instanceof TypeError);
});

test("large output comes in several Uint8Array chunks of at most 64 KiB, each owning its buffer", async () => {
  const zeros = new Uint8Array(1 << 20);
  for (const f of FORMATS) {
    const c = await compress(f, [zeros]);
    assert(c.length < 20000, `${f}: zeros compress well (${c.length})`);
    const { chunks, bytes } = await through(new DecompressionStream(f), [c]);
    assert(chunks.length >= 16, `${f}: ${chunks.length} chunks`);
    for (const chunk of chunks) {
      assertEquals(chunk.constructor, Uint8Array);
      assert(chunk.byteLength > 0 && chunk.byteLength <= 65536, `${f}: chunk of ${chunk.byteLength}`);
      assertEquals(chunk.buffer.byteLength, chunk.byteLength, `${f}: no spare room in the buffer`);
    }
    assertEquals(bytes.length, zeros.length);
    assert(bytes.every((b) => b === 0));
  }
  // Compressing incompressible data: several chunks out of one write as well.
  const { chunks } = await through(new CompressionStream("gzip"), [randomBytes(300000)]);
  assert(chunks.length >= 4, `gzip of random data: ${chunks.length} chunks`);
});

test("cancel and abort end the stream; the codec is no longer used", async () => {
  for (const f of FORMATS) {
    const cs = new CompressionStream(f);
    const writer = cs.writable.getWriter();
    await cs.readable.cancel(new Error("stop"));
    await assertRejects(writer.write(textBytes()), Error);

    const ds = new DecompressionStream(f);
    const w2 = ds.writable.getWriter();
    await w2.abort(new RangeError("abort"));
    await assertRejects(ds.readable.getReader().read(), RangeError);
  }
});

test("streams dropped before they end do not disturb later ones", async () => {
  for (let i = 0; i < 200; i++) {
    const cs = new CompressionStream(FORMATS[i % 4]);
    cs.writable.getWriter().write(randomBytes(1000));
  }
  sameBytes(await decompress("brotli", [await compress("brotli", [textBytes()])]), textBytes(), "after");
});

test("patched stream prototypes do not reach the built-in transform", async () => {
  const proto = TransformStreamDefaultController.prototype;
  const enqueue = Object.getOwnPropertyDescriptor(proto, "enqueue");
  const readable = Object.getOwnPropertyDescriptor(TransformStream.prototype, "readable");
  Object.defineProperty(proto, "enqueue", { value() { throw new Error("patched"); }, configurable: true, writable: true });
  Object.defineProperty(TransformStream.prototype, "readable", { get() { throw new Error("patched"); }, configurable: true });
  Object.defineProperty(Object.prototype, "readableType", { value: "bytes", configurable: true, writable: true });
  const signal = Object.getOwnPropertyDescriptor(AbortController.prototype, "signal");
  Object.defineProperty(AbortController.prototype, "signal", { get() { throw new Error("patched"); }, configurable: true });
  try {
    sameBytes(await decompress("gzip", [await compress("gzip", [textBytes()])]), textBytes(), "patched");
    // Output of many chunks, so the transform waits for reads between them.
    const zeros = new Uint8Array(1 << 20);
    sameBytes(await decompress("gzip", [await compress("gzip", [zeros])]), zeros, "patched, 1 MiB");
  } finally {
    Object.defineProperty(proto, "enqueue", enqueue);
    Object.defineProperty(TransformStream.prototype, "readable", readable);
    Object.defineProperty(AbortController.prototype, "signal", signal);
    delete Object.prototype.readableType;
  }
});

// --- bounded steps: output made as it is read (issue 18: a decompression bomb) -----------------

const turns = async (n) => { for (let i = 0; i < n; i++) await new Promise((r) => setTimeout(r, 0)); };

test("the transform does not run ahead of the reader: the write waits until its output is read", async () => {
  const zeros = new Uint8Array(16 << 20);
  const random = randomBytes(4 << 20);
  for (const f of FORMATS) {
    // Decompression: ~16 KB in, 16 MiB out. Compression: 4 MiB of random bytes in, as much
    // out (with less, brotli may take it all into its window before writing 192 KiB).
    for (const [Ctor, input, total] of [[DecompressionStream, await compress(f, [zeros]), zeros.length],
      [CompressionStream, random, null]]) {
      const s = new Ctor(f);
      const writer = s.writable.getWriter();
      let written = false;
      const write = writer.write(input).then(() => { written = true; });
      const reader = s.readable.getReader();
      let n = 0;
      for (let i = 0; i < 3 && !written; i++) {
        const { value, done } = await reader.read();
        assert(!done && value.byteLength <= 65536, `${f} ${Ctor.name}: read ${i}`);
        n += value.byteLength;
      }
      await turns(5); // a transform that made all its output at once has finished the write
      assert(!written, `${f} ${Ctor.name}: the write finished with only ${n} bytes read`);
      const closed = writer.close();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        n += value.byteLength;
      }
      await write;
      await closed;
      if (total !== null) assertEquals(n, total, `${f}: all the output`);
      else assert(n > random.length, `${f}: random bytes do not shrink (${n})`);
    }
  }
});

test("two reads waiting get two chunks; none is made while no read waits", async () => {
  const ds = new DecompressionStream("deflate");
  const writer = ds.writable.getWriter();
  let written = false;
  writer.write(await compress("deflate", [new Uint8Array(1 << 20)])).then(() => { written = true; }, () => {});
  const reader = ds.readable.getReader();
  const [a, b] = await Promise.all([reader.read(), reader.read()]);
  assertEquals([a.value.byteLength, b.value.byteLength], [65536, 65536]);
  await turns(3);
  assert(!written, "the rest of the output was made with no read waiting");
  // A third read gets the next chunk, made for it.
  assertEquals((await reader.read()).value.byteLength, 65536);
  await reader.cancel();
});

test("cancelled or aborted mid-output: the pending write fails with the reason, the codec stops", async () => {
  for (const f of FORMATS) {
    const ds = new DecompressionStream(f);
    const writer = ds.writable.getWriter();
    const write = writer.write(await compress(f, [new Uint8Array(8 << 20)]));
    write.catch(() => {});
    const reader = ds.readable.getReader();
    assertEquals((await reader.read()).value.byteLength, 65536);
    const reason = new Error("enough");
    await reader.cancel(reason);
    let got = null;
    try {
      await write;
    } catch (e) {
      got = e;
    }
    assertEquals(got, reason, `${f}: the write's error`);
    await assertRejects(writer.write(new Uint8Array(1)), Error);
    await assertRejects(writer.closed, Error);

    // Aborted instead, with no read to come: the write in progress stops at once (the abort
    // waits for it, as Streams says), then the abort completes and the readable side fails
    // with the reason.
    const ds2 = new DecompressionStream(f);
    const writer2 = ds2.writable.getWriter();
    const write2 = writer2.write(await compress(f, [new Uint8Array(4 << 20)]));
    write2.catch(() => {});
    const reader2 = ds2.readable.getReader();
    await reader2.read();
    const reason2 = new RangeError("stop");
    let aborted = false;
    writer2.abort(reason2).then(() => { aborted = true; });
    await write2;
    await turns(2);
    assert(aborted, `${f}: the abort completed`);
    let got2 = null;
    try {
      for (;;) if ((await reader2.read()).done) break;
    } catch (e) {
      got2 = e;
    }
    assertEquals(got2, reason2, `${f}: the read's error after abort`);
  }
  // Many bombs left mid-output: each stops where its reader stopped.
  const bomb = await compress("gzip", [new Uint8Array(16 << 20)]);
  for (let i = 0; i < 50; i++) {
    const ds = new DecompressionStream("gzip");
    ds.writable.getWriter().write(bomb).catch(() => {});
    const reader = ds.readable.getReader();
    await reader.read();
    await reader.cancel();
  }
});

test("corrupt data after 64 KiB of a chunk's output: that output, then a TypeError", async () => {
  // The codec finds the damage only when it gets there; what it made before stands (as with
  // trailing data), and the stream then fails.
  for (const f of ["gzip", "deflate"]) { // their checksums find any damage
    const c = await compress(f, [randomBytes(1 << 20)]);
    const damaged = c.slice();
    damaged.fill(0xff, damaged.length >> 1, (damaged.length >> 1) + 64);
    const { error, got } = await failingDecompress(f, [damaged]);
    assert(error instanceof TypeError, `${f}: ${error}`);
    assert(got.length >= 65536, `${f}: ${got.length} bytes before the error`);
  }
});

test("flush makes its output a chunk at a time too, as it is read", async () => {
  // brotli keeps most of 1 MiB of random bytes in its window until the stream closes.
  const input = randomBytes(1 << 20);
  const cs = new CompressionStream("brotli");
  const writer = cs.writable.getWriter();
  const reader = cs.readable.getReader();
  const chunks = [];
  const written = writer.write(input).then(() => "written");
  let pending = null;
  for (;;) { // read until the write is done, without a read left waiting for nothing
    pending ??= reader.read();
    const r = await Promise.race([pending, written]);
    if (r === "written") break;
    pending = null;
    chunks.push(r.value);
  }
  let isClosed = false;
  const closed = writer.close().then(() => { isClosed = true; });
  chunks.push((await (pending ?? reader.read())).value);
  await turns(5);
  assert(!isClosed, `the flush finished with ${chunks.length} chunks read`);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(value);
  }
  await closed;
  for (const chunk of chunks) assert(chunk.byteLength <= 65536, `a chunk of ${chunk.byteLength}`);
  sameBytes(await decompress("brotli", chunks), input, "brotli round trip");
});
