// 35_compression_streams.js: CompressionStream and DecompressionStream (Compression Standard
// §5-6): a TransformStream whose chunks go through a native codec (runtime/compression.cc).
// Everything about bytes happens there; this file moves chunks and errors.
'use strict';

const { PromisePrototypeThen, TypeError } = primordials;
const {
  webidl, defineGlobal, TransformStream, transformEnqueue, transformSides, transformWaitForPull,
} = internal;

// enum CompressionFormat
const kFormats = ['deflate', 'deflate-raw', 'gzip', 'brotli'];

// binding.compressorPush's modes and what it returns (compression.cc: push_mode, push_status).
const kNextChunk = 0, kRest = 1, kFinish = 2;
const kDone = 0, kMore = 1, kTrailing = 2, kTruncated = 3;

// The readable and writable sides of the transform behind both classes. The codec state is
// freed by the native side when the stream ends or fails, here when it is cancelled or
// aborted, and otherwise when the handle is collected.
function codecTransform(format, decompress) {
  const handle = binding.compressorNew(format, decompress);
  const out = []; // each push leaves at most one chunk here
  // "compress/decompress (flush and) enqueue a chunk", a bounded step at a time: each push
  // gives at most one chunk of at most 64 KiB, and the next one is made only when the
  // readable side wants it, so the reader's pace bounds the memory, and JS runs (and the CPU
  // limit can stop the request) between steps. Data that went on after its end or ended early
  // fails the stream only after the output it did produce ("decompress and enqueue a chunk"
  // step 6, "decompress flush and enqueue" step 3). mode: kNextChunk (a chunk written to the
  // stream), kRest (the rest of it) or kFinish (flush).
  const run = (chunk, mode, controller) => {
    let status = binding.compressorPush(handle, chunk, mode, out);
    const next = mode === kFinish ? kFinish : kRest;
    for (;;) {
      if (out.length !== 0) {
        const bytes = out[0];
        out.length = 0;
        transformEnqueue(controller, bytes);
      }
      if (status !== kMore) break;
      const wait = transformWaitForPull(controller);
      if (wait !== undefined) {
        // Aborted: stop here; the abort's cancel step frees the codec.
        return PromisePrototypeThen(wait, (goOn) => (goOn ? run(undefined, next, controller) : undefined));
      }
      status = binding.compressorPush(handle, undefined, next, out);
    }
    if (status === kTrailing) throw new TypeError('The compressed data is followed by bytes that are not part of it');
    if (status === kTruncated) throw new TypeError('The compressed data ends before its end');
    return undefined;
  };
  return transformSides(new TransformStream({
    __proto__: null,
    transform(chunk, controller) { return run(chunk, kNextChunk, controller); },
    flush(controller) { return run(undefined, kFinish, controller); },
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

defineGlobal('CompressionStream', CompressionStream);
defineGlobal('DecompressionStream', DecompressionStream);
