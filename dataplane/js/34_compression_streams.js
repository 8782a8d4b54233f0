// 34_compression_streams.js: CompressionStream and DecompressionStream (Compression Standard
// §5-6): a TransformStream whose chunks go through a native codec (runtime/compression.cc).
// Everything about bytes happens there; this file moves chunks and errors.
'use strict';

const { TypeError } = primordials;
const { webidl, TransformStream, transformEnqueue, transformSides } = internal;

// enum CompressionFormat
const kFormats = ['deflate', 'deflate-raw', 'gzip', 'brotli'];

// The readable and writable sides of the transform behind both classes. The codec state is
// freed by the native side when the stream ends or fails, here when it is cancelled or
// aborted, and otherwise when the handle is collected.
function codecTransform(format, decompress) {
  const handle = binding.compressorNew(format, decompress);
  // "compress/decompress (flush and) enqueue a chunk": the output is enqueued in chunks of at
  // most 64 KiB; data that went on after its end or ended early fails the stream only after
  // the output it did produce ("decompress and enqueue a chunk" step 6, "decompress flush and
  // enqueue" step 3).
  const run = (chunk, finish, controller) => {
    const out = [];
    const late = binding.compressorPush(handle, chunk, finish, out);
    for (let i = 0; i < out.length; i++) transformEnqueue(controller, out[i]);
    if (late !== undefined) throw new TypeError(late);
  };
  return transformSides(new TransformStream({
    __proto__: null,
    transform(chunk, controller) { run(chunk, false, controller); },
    flush(controller) { run(undefined, true, controller); },
    cancel() { binding.compressorEnd(handle); },
  }));
}

class CompressionStream {
  #sides; // { readable, writable } of the TransformStream

  constructor(format) {
    const context = "Failed to construct 'CompressionStream'";
    webidl.argCount(arguments, 1, context);
    this.#sides = codecTransform(webidl.enumValue(format, kFormats, context), false);
  }

  static #check(o, what) {
    if (o === null || typeof o !== 'object' || !(#sides in o)) throw webidl.illegalInvocation(`CompressionStream.${what}`);
  }

  get readable() { CompressionStream.#check(this, 'readable'); return this.#sides.readable; }
  get writable() { CompressionStream.#check(this, 'writable'); return this.#sides.writable; }
}
webidl.configureInterface(CompressionStream);

class DecompressionStream {
  #sides; // { readable, writable } of the TransformStream

  constructor(format) {
    const context = "Failed to construct 'DecompressionStream'";
    webidl.argCount(arguments, 1, context);
    this.#sides = codecTransform(webidl.enumValue(format, kFormats, context), true);
  }

  static #check(o, what) {
    if (o === null || typeof o !== 'object' || !(#sides in o)) throw webidl.illegalInvocation(`DecompressionStream.${what}`);
  }

  get readable() { DecompressionStream.#check(this, 'readable'); return this.#sides.readable; }
  get writable() { DecompressionStream.#check(this, 'writable'); return this.#sides.writable; }
}
webidl.configureInterface(DecompressionStream);

internal.defineGlobal('CompressionStream', CompressionStream);
internal.defineGlobal('DecompressionStream', DecompressionStream);
