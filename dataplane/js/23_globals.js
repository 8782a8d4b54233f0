// 23_globals.js: small globals of the WinterTC Minimum Common API: structuredClone,
// atob/btoa (HTML §8.3 forgiving-base64), navigator, crypto.getRandomValues/randomUUID and
// the crypto.subtle getter (SubtleCrypto itself is 25_webcrypto.js).
'use strict';

const {
  ArrayIsArray, ObjectFreeze, TypedArrayPrototypeGetSymbolToStringTag,
  TypedArrayPrototypeGetByteLength, NumberPrototypeToString, StringPrototypePadStart, SafeSet,
  ArrayBufferIsView, ArrayPrototypePush, Date, RegExp, Map, Set, ObjectKeys,
  ObjectPrototypeToString, SafeMap, ArrayBuffer, ObjectGetPrototypeOf, ObjectPrototype, Array,
  String, MapPrototypeForEach, MapPrototypeSet, SetPrototypeForEach, SetPrototypeAdd, ObjectAssign,
} = primordials;
const { webidl, DOMException, defineGlobal, onContextInit, isDOMException } = internal;
// Late (read as internal.x when called; given by a later file): streamTransfer, isBlob, File,
// makeBlob, blobBytes, isCryptoKey, cloneCryptoKey.

// HTML §2.7.10 structuredClone(value, { transfer }).
function structuredClone(value, options = undefined) {
  webidl.argCount(arguments, 1, "Failed to execute 'structuredClone'");
  const opts = webidl.dictionary(options, "Failed to execute 'structuredClone'");
  let transfer = [];
  if (opts.transfer !== undefined) {
    transfer = webidl.iterable(opts.transfer, (item) => item,
      "Failed to execute 'structuredClone': options.transfer");
  }
  return cloneWithTransfer(value, transfer);
}

// structuredClone's steps after the conversion of its arguments: for built-ins, which pass
// their own array as the transfer list.
function cloneWithTransfer(value, transfer) {
  const streams = internal.streamTransfer; // 34_streams_transform.js
  let hasStreams = false;
  for (let i = 0; i < transfer.length; i++) if (streams.isTransferableStream(transfer[i])) hasStreams = true;
  if (!hasStreams && !hasSerializablePlatformObjects(value, null)) {
    return binding.structuredClone(value, transfer);
  }
  // Blob, File, DOMException and CryptoKey are serializable platform objects V8 cannot see
  // into, and streams are transferable ones: clone such a value here. The transfer list is
  // checked first, then the value, and only then is anything moved (a failed clone leaves it
  // all).
  const listed = new SafeSet();
  for (let i = 0; i < transfer.length; i++) {
    const item = transfer[i];
    if (listed.has(item)) throw new DOMException('An object is listed twice in the transfer list', 'DataCloneError');
    listed.add(item);
    if (item instanceof ArrayBuffer) {
      if (binding.isDetached(item)) throw new DOMException('A detached ArrayBuffer cannot be transferred', 'DataCloneError');
    } else if (streams.isTransferableStream(item)) {
      if (streams.isTransferLocked(item)) throw new DOMException('A locked stream cannot be transferred', 'DataCloneError');
    } else {
      throw new DOMException('Only ArrayBuffers and streams can be transferred here', 'DataCloneError');
    }
  }
  hasSerializablePlatformObjects(value, listed);
  const memory = new SafeMap();
  for (let i = 0; i < transfer.length; i++) {
    const item = transfer[i];
    memory.set(item, item instanceof ArrayBuffer ? binding.structuredClone(item, [item])
      : streams.transferStream(item));
  }
  return cloneInJS(value, memory);
}
defineGlobal('structuredClone', structuredClone);

const isSerializablePlatformObject = (v) => internal.isBlob(v) || isDOMException(v) ||
  internal.isCryptoKey(v);

// Walks what the serializer would walk: throws DataCloneError for a platform object that is
// not serializable (V8 would copy it as a plain object, losing its state), and says whether
// serializable platform objects are present.
function hasSerializablePlatformObjects(root, transferred) {
  const seen = new SafeSet();
  const stack = [root];
  let found = false;
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null || (typeof v !== 'object' && typeof v !== 'function') || seen.has(v)) continue;
    seen.add(v);
    if (transferred !== null && transferred.has(v)) continue; // moved, not serialized
    if (isSerializablePlatformObject(v)) {
      found = true;
      continue;
    }
    if (webidl.isPlatformObject(v)) {
      throw new DOMException(`${ObjectPrototypeToString(v)} could not be cloned.`, 'DataCloneError');
    }
    if (ArrayBufferIsView(v) || v instanceof ArrayBuffer || v instanceof Date || v instanceof RegExp) continue;
    if (v instanceof Map) {
      MapPrototypeForEach(v, (x, k) => ArrayPrototypePush(stack, k, x));
      continue;
    }
    if (v instanceof Set) {
      SetPrototypeForEach(v, (x) => ArrayPrototypePush(stack, x));
      continue;
    }
    if (typeof v === 'function') continue; // V8 refuses functions itself
    const keys = ObjectKeys(v);
    for (let i = 0; i < keys.length; i++) ArrayPrototypePush(stack, v[keys[i]]);
  }
  return found;
}

// HTML StructuredSerialize + StructuredDeserialize in one pass, for graphs holding Blobs,
// Files, DOMExceptions or CryptoKeys. Leaves V8 knows (buffers, views, dates, regexps, errors, boxed
// primitives) go through the native serializer one by one.
function cloneInJS(v, memory) {
  if (typeof v === 'symbol') throw new DOMException('A Symbol could not be cloned.', 'DataCloneError');
  if (v === null || (typeof v !== 'object' && typeof v !== 'function')) return v;
  if (memory.has(v)) return memory.get(v);
  if (typeof v === 'function') throw new DOMException(`${String(v)} could not be cloned.`, 'DataCloneError');
  let out;
  if (internal.isBlob(v)) {
    out = v instanceof internal.File
      ? new internal.File([v], v.name, { type: v.type, lastModified: v.lastModified })
      : internal.makeBlob(internal.blobBytes(v), v.type);
    memory.set(v, out);
    return out;
  }
  if (isDOMException(v)) {
    out = new DOMException(v.message, v.name);
    memory.set(v, out);
    return out;
  }
  if (internal.isCryptoKey(v)) {
    out = internal.cloneCryptoKey(v);
    memory.set(v, out);
    return out;
  }
  if (ArrayIsArray(v)) {
    out = new Array(v.length);
    memory.set(v, out);
    const keys = ObjectKeys(v);
    for (let i = 0; i < keys.length; i++) out[keys[i]] = cloneInJS(v[keys[i]], memory);
    return out;
  }
  if (v instanceof Map) {
    out = new Map();
    memory.set(v, out);
    MapPrototypeForEach(v, (x, k) => MapPrototypeSet(out, cloneInJS(k, memory), cloneInJS(x, memory)));
    return out;
  }
  if (v instanceof Set) {
    out = new Set();
    memory.set(v, out);
    SetPrototypeForEach(v, (x) => SetPrototypeAdd(out, cloneInJS(x, memory)));
    return out;
  }
  if (ObjectGetPrototypeOf(v) === ObjectPrototype || ObjectGetPrototypeOf(v) === null) {
    out = {};
    memory.set(v, out);
    const keys = ObjectKeys(v);
    for (let i = 0; i < keys.length; i++) out[keys[i]] = cloneInJS(v[keys[i]], memory);
    return out;
  }
  out = binding.structuredClone(v, []);
  memory.set(v, out);
  return out;
}

// HTML §8.3 btoa and atob (forgiving-base64), natively (encoding.cc).
function btoa(data) {
  webidl.argCount(arguments, 1, "Failed to execute 'btoa'");
  const out = binding.base64Encode(webidl.DOMString(data));
  if (out === undefined) {
    throw new DOMException("Failed to execute 'btoa': the string contains characters outside " +
      'Latin1 and cannot be encoded', 'InvalidCharacterError');
  }
  return out;
}
defineGlobal('btoa', btoa);

defineGlobal('atob', function atob(data) {
  webidl.argCount(arguments, 1, "Failed to execute 'atob'");
  const out = binding.base64Decode(webidl.DOMString(data));
  if (out === undefined) {
    throw new DOMException("Failed to execute 'atob': the string to be decoded is not correctly " +
      'encoded', 'InvalidCharacterError');
  }
  return out;
});

// The machine's, so set per context (the snapshot is made on the build machine).
let hardwareConcurrency = 1;
onContextInit((options) => { hardwareConcurrency = options.hardwareConcurrency; });

class Navigator {
  constructor(key = undefined) { webidl.illegalConstructor(key, 'Navigator'); }
  get userAgent() { return `nano/${binding.version}`; }
  get hardwareConcurrency() { return hardwareConcurrency; }
  get language() { return 'en-US'; }
  get languages() { return languages; }
  get onLine() { return true; }
}
const languages = ObjectFreeze(['en-US']);
webidl.configureInterface(Navigator);
defineGlobal('Navigator', Navigator);
defineGlobal('navigator', new Navigator(webidl.kIllegalConstructor), true);

// WebCrypto's Crypto: its two synchronous methods, and `subtle`, the SubtleCrypto made by
// 25_webcrypto.js (which hands it over through internal.setCryptoSubtle).
let subtle = null;

// Element sizes of the integer typed arrays (getRandomValues takes only these).
const integerTypes = new SafeMap([['Int8Array', 1], ['Uint8Array', 1], ['Uint8ClampedArray', 1],
  ['Int16Array', 2], ['Uint16Array', 2], ['Int32Array', 4], ['Uint32Array', 4],
  ['BigInt64Array', 8], ['BigUint64Array', 8]]);

// Random bytes come from OpenSSL's CSPRNG (RAND_bytes) a pool at a time: one call costs
// about as much as generating a kilobyte, so randomUUID and getRandomValues of up to
// kPoolTake bytes take fresh bytes from the pool, each byte handed out once. (Node caches
// entropy for randomUUID likewise.) The pool is filled at first use, never in the snapshot.
const kPoolSize = 4096, kPoolTake = 256;
let pool = null;
let poolUsed = kPoolSize;
function takeRandom(n) {
  if (poolUsed + n > kPoolSize) {
    if (pool === null) pool = new Uint8Array(kPoolSize);
    binding.randomFill(pool);
    poolUsed = 0;
  }
  const at = poolUsed;
  poolUsed += n;
  return at;
}
const hexByte = [];
for (let b = 0; b < 256; b++) ArrayPrototypePush(hexByte, StringPrototypePadStart(NumberPrototypeToString(b, 16), 2, '0'));

class Crypto {
  #crypto; // the brand (see TextEncoder)
  constructor(key = undefined) { webidl.illegalConstructor(key, 'Crypto'); }
  static #is(v) { return v !== null && typeof v === 'object' && #crypto in v; }
  get subtle() {
    if (!Crypto.#is(this)) throw webidl.illegalInvocation('Crypto.subtle');
    return subtle;
  }
  getRandomValues(array) {
    if (!Crypto.#is(this)) throw webidl.illegalInvocation('Crypto.getRandomValues');
    webidl.argCount(arguments, 1, "Failed to execute 'getRandomValues' on 'Crypto'");
    const tag = ArrayBufferIsView(array) ? TypedArrayPrototypeGetSymbolToStringTag(array) : undefined;
    const size = tag === undefined ? undefined : integerTypes.get(tag);
    if (size === undefined) {
      throw new DOMException("Failed to execute 'getRandomValues' on 'Crypto': the argument is " +
        'not an integer typed array', 'TypeMismatchError');
    }
    const length = TypedArrayPrototypeGetByteLength(array);
    if (length > 65536) {
      throw new DOMException("Failed to execute 'getRandomValues' on 'Crypto': the array's byte " +
        `length (${length}) exceeds 65536`, 'QuotaExceededError');
    }
    if (length > kPoolTake || size === 8) {
      binding.randomFill(array);
      return array;
    }
    // Element by element: each element's value is made of its bytes, which gives the same
    // bit pattern whatever the element type's sign (typed array stores are modular).
    const at = takeRandom(length);
    const p = pool;
    const count = length / size;
    if (size === 1) {
      for (let i = 0; i < count; i++) array[i] = p[at + i];
    } else if (size === 2) {
      for (let i = 0; i < count; i++) array[i] = p[at + 2 * i] | (p[at + 2 * i + 1] << 8);
    } else {
      for (let i = 0; i < count; i++) {
        const j = at + 4 * i;
        array[i] = (p[j] | (p[j + 1] << 8) | (p[j + 2] << 16) | (p[j + 3] << 24)) >>> 0;
      }
    }
    return array;
  }
  randomUUID() {
    if (!Crypto.#is(this)) throw webidl.illegalInvocation('Crypto.randomUUID');
    const at = takeRandom(16);
    const p = pool;
    let uuid = '';
    for (let i = 0; i < 16; i++) {
      let b = p[at + i];
      if (i === 6) b = (b & 0x0f) | 0x40; // version 4
      else if (i === 8) b = (b & 0x3f) | 0x80; // variant 10
      uuid += hexByte[b];
      if (i === 3 || i === 5 || i === 7 || i === 9) uuid += '-';
    }
    return uuid;
  }
}
webidl.configureInterface(Crypto);
defineGlobal('Crypto', Crypto);
defineGlobal('crypto', new Crypto(webidl.kIllegalConstructor), true);

ObjectAssign(internal, {
  structuredClone, cloneWithTransfer, btoa,
  setCryptoSubtle: (s) => { subtle = s; },
});
