// 50_blob.js: Blob and File (W3C File API §3-4). A blob's bytes are one immutable Uint8Array;
// slices are views of it, so slicing never copies.
'use strict';

const {
  ArrayBuffer, ArrayBufferIsView, ArrayPrototypePush, DateNow, MathMax, MathMin,
  RegExpPrototypeExec, StringPrototypeReplace, StringPrototypeToLowerCase, SymbolIterator,
  TypeError, Uint8Array, TypedArrayPrototypeGetBuffer, TypedArrayPrototypeGetByteOffset,
  TypedArrayPrototypeGetByteLength, TypedArrayPrototypeGetSymbolToStringTag,
  DataViewPrototypeGetBuffer, DataViewPrototypeGetByteOffset, DataViewPrototypeGetByteLength,
  ArrayBufferPrototypeSlice, PromiseResolve, ObjectDefineProperty, SafeMap, ObjectAssign,
} = primordials;
const { webidl, defineGlobal, streams: S, URL } = internal;
// Late (read as internal.x when called): baseURL (set per context).

// Bytes of a BufferSource, copied (the caller may change its buffer later).
function copyBufferSource(v) {
  if (v instanceof ArrayBuffer) return new Uint8Array(ArrayBufferPrototypeSlice(v, 0));
  if (TypedArrayPrototypeGetSymbolToStringTag(v) !== undefined) {
    const off = TypedArrayPrototypeGetByteOffset(v);
    return new Uint8Array(ArrayBufferPrototypeSlice(TypedArrayPrototypeGetBuffer(v), off,
      off + TypedArrayPrototypeGetByteLength(v)));
  }
  const off = DataViewPrototypeGetByteOffset(v);
  return new Uint8Array(ArrayBufferPrototypeSlice(DataViewPrototypeGetBuffer(v), off,
    off + DataViewPrototypeGetByteLength(v)));
}

// File API "convert line endings to native": on Linux, \r\n and \r become \n.
const convertLineEndings = (s) => StringPrototypeReplace(s, /\r\n?/g, '\n');

// The type attribute: lowercased, or "" if it has characters outside U+0020..U+007E.
function normalizeType(type) {
  if (RegExpPrototypeExec(/[^\x20-\x7e]/, type) !== null) return '';
  return StringPrototypeToLowerCase(type);
}

class Blob {
  #bytes;
  #type;

  constructor(blobParts = undefined, options = undefined) {
    const context = "Failed to construct 'Blob'";
    // WebIDL converts the arguments left to right: the parts, then the options.
    const items = convertParts(blobParts, context);
    const opts = webidl.dictionary(options, context);
    // Dictionary members in order: endings, then type.
    const endings = opts.endings === undefined ? 'transparent'
      : webidl.enumValue(opts.endings, ['transparent', 'native'], `${context}: endings`);
    const type = opts.type === undefined ? '' : normalizeType(webidl.DOMString(opts.type));
    this.#bytes = processParts(items, endings);
    this.#type = type;
  }

  static #check(b, what) {
    if (b === null || typeof b !== 'object' || !(#bytes in b)) throw webidl.illegalInvocation(`Blob.${what}`);
  }

  get size() { Blob.#check(this, 'size'); return this.#bytes.length; }
  get type() { Blob.#check(this, 'type'); return this.#type; }

  slice(start = undefined, end = undefined, contentType = undefined) {
    Blob.#check(this, 'slice');
    const size = this.#bytes.length;
    const clamp = (v, dflt) => {
      if (v === undefined) return dflt;
      const n = webidl.longLong(v, { clamp: true });
      return n < 0 ? MathMax(size + n, 0) : MathMin(n, size);
    };
    const from = clamp(start, 0);
    const to = clamp(end, size);
    const type = contentType === undefined ? '' : normalizeType(webidl.DOMString(contentType));
    return makeBlob(this.#bytes.subarray(from, MathMax(from, to)), type);
  }

  text() {
    Blob.#check(this, 'text');
    return PromiseResolve(binding.utf8Decode(this.#bytes, false, false)[0]);
  }

  arrayBuffer() {
    Blob.#check(this, 'arrayBuffer');
    return PromiseResolve(copyOut(this.#bytes).buffer);
  }

  bytes() {
    Blob.#check(this, 'bytes');
    return PromiseResolve(copyOut(this.#bytes));
  }

  // A byte stream over the blob's bytes, copied out 64 KiB per pull as the reader asks.
  stream() {
    Blob.#check(this, 'stream');
    const bytes = this.#bytes;
    let offset = 0;
    let stream;
    const pull = () => {
      const c = S.RS(stream).controller;
      const end = MathMin(offset + 65536, bytes.length);
      if (offset < end) {
        const chunk = copyOut(bytes.subarray(offset, end));
        offset = end;
        S.bytes.rbscEnqueue(c, S.bytes.viewSlots(chunk));
      }
      if (offset >= bytes.length) S.bytes.rbscClose(c);
      return PromiseResolve(undefined);
    };
    const cancel = () => {
      offset = bytes.length;
      return PromiseResolve(undefined);
    };
    stream = S.createReadableByteStream(() => undefined, pull, cancel);
    return stream;
  }

  static bytesOf(b) { return b.#bytes; }
  static typeOf(b) { return b.#type; }
  static init(b, bytes, type) { b.#bytes = bytes; b.#type = type; }
  // A brand check that does not throw (a caught exception costs about 20 us).
  static isBlob(v) { return v !== null && typeof v === 'object' && #bytes in v; }
}

function copyOut(bytes) {
  const out = new Uint8Array(bytes.length);
  out.set(bytes);
  return out;
}

const blobBytes = Blob.bytesOf;
const blobType = Blob.typeOf;
const initBlob = Blob.init;
const isBlob = Blob.isBlob;
delete Blob.bytesOf;
delete Blob.typeOf;
delete Blob.init;
delete Blob.isBlob;

// A Blob over bytes we own, without the constructor's copying.
function makeBlob(bytes, type) {
  const b = new Blob();
  initBlob(b, bytes, type);
  return b;
}

// sequence<BlobPart> conversion: each item a BufferSource, a Blob, or else a USVString.
function convertParts(parts, context) {
  if (parts === undefined) return [];
  const iterator = parts !== null && (typeof parts === 'object' || typeof parts === 'function')
    ? parts[SymbolIterator] : undefined;
  if (typeof iterator !== 'function') {
    throw new TypeError(`${context}: the blob parts must be a sequence (an iterable object)`);
  }
  // WebIDL reads @@iterator once (above), then iterates with it.
  return webidl.sequence(parts, iterator, toBlobPart, context);
}

function toBlobPart(part) {
  if (part instanceof ArrayBuffer || ArrayBufferIsView(part)) return copyBufferSource(part);
  if (isBlob(part)) return blobBytes(part);
  return webidl.USVString(part);
}

// File API "process blob parts": the items' bytes, concatenated.
function processParts(items, endings) {
  const chunks = [];
  let total = 0;
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    let bytes = item;
    if (typeof item === 'string') {
      bytes = binding.encodeUtf8(endings === 'native' ? convertLineEndings(item) : item);
    }
    ArrayPrototypePush(chunks, bytes);
    total += bytes.length;
  }
  if (chunks.length === 0) return new Uint8Array(0);
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let offset = 0;
  for (let i = 0; i < chunks.length; i++) {
    const c = chunks[i];
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}

webidl.configureInterface(Blob);

// makeFile's key: a File made from parts already converted (no app iterable to walk).
const kMadeFile = Symbol('makeFile');

class File extends Blob {
  #name;
  #lastModified;

  constructor(fileBits, fileName, options = undefined) {
    if (fileBits === kMadeFile) {
      super();
      this.#name = fileName;
      this.#lastModified = options;
      return;
    }
    webidl.argCount(arguments, 2, "Failed to construct 'File'");
    super(fileBits, options);
    this.#name = webidl.USVString(fileName);
    const opts = webidl.dictionary(options);
    this.#lastModified = opts.lastModified === undefined ? DateNow()
      : webidl.longLong(opts.lastModified);
  }

  static #check(f, what) {
    if (f === null || typeof f !== 'object' || !(#name in f)) throw webidl.illegalInvocation(`File.${what}`);
  }

  static isFile(v) { return v !== null && typeof v === 'object' && #name in v; }
  static lastModifiedOf(f) { return f.#lastModified; }

  get name() { File.#check(this, 'name'); return this.#name; }
  get lastModified() { File.#check(this, 'lastModified'); return this.#lastModified; }
}
const isFile = File.isFile;
const fileLastModified = File.lastModifiedOf;
delete File.isFile;
delete File.lastModifiedOf;
webidl.configureInterface(File);

// A File over bytes we own, as makeBlob: FormData entries and parsed multipart bodies. No
// parts conversion, so nothing an app replaced (the array iterator, say) runs.
function makeFile(bytes, type, name, lastModified) {
  const f = new File(kMadeFile, name, lastModified);
  initBlob(f, bytes, type);
  return f;
}

// File API §8 blob URLs: the blob URL store of this isolate. Without an origin (no
// --location) the URLs are blob:null/UUID. URL.createObjectURL/revokeObjectURL are static
// operations of URL, installed here because they need Blob.
const blobURLStore = new SafeMap();
function blobOrigin() {
  if (internal.baseURL === undefined) return 'null';
  const origin = new URL(internal.baseURL).origin;
  return origin;
}
ObjectDefineProperty(URL, 'createObjectURL', {
  value: function createObjectURL(obj) {
    webidl.argCount(arguments, 1, "Failed to execute 'createObjectURL' on 'URL'");
    if (!isBlob(obj)) {
      throw new TypeError("Failed to execute 'createObjectURL' on 'URL': parameter 1 is not of type 'Blob'");
    }
    const url = `blob:${blobOrigin()}/${crypto.randomUUID()}`;
    blobURLStore.set(url, obj);
    return url;
  },
  writable: true, enumerable: true, configurable: true,
});
ObjectDefineProperty(URL, 'revokeObjectURL', {
  value: function revokeObjectURL(url) {
    webidl.argCount(arguments, 1, "Failed to execute 'revokeObjectURL' on 'URL'");
    // File API "remove an entry from the blob URL store": the URL exactly as serialized, so
    // a URL with a fragment revokes nothing (lookups drop the fragment; removal does not).
    blobURLStore.delete(webidl.DOMString(url));
  },
  writable: true, enumerable: true, configurable: true,
});

defineGlobal('Blob', Blob);
defineGlobal('File', File);

ObjectAssign(internal, {
  Blob, File, isBlob, isFile, blobBytes, blobType, makeBlob, makeFile, fileLastModified,
  normalizeBlobType: normalizeType,
  blobURLStore,
});
