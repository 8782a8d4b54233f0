// 25_webcrypto.js: crypto.subtle (W3C Web Cryptography API, Level 2 editor's draft):
// SubtleCrypto, CryptoKey, "normalize an algorithm", and the algorithms supported so far:
// digest (SHA-1, SHA-256, SHA-384, SHA-512) and HMAC (generateKey, importKey / exportKey
// "raw" and "jwk", sign, verify). Every other algorithm name is unrecognized, so each method
// rejects it with the NotSupportedError of the normalization step (docs/api.md has the table).
//
// Takes from binding: crypto* (runtime/crypto.cc: OpenSSL does the bytes; key material lives
// in native buffers that are wiped when freed), isDetached, isSharedArrayBuffer.
// Takes from internal: webidl, DOMException, setCryptoSubtle (23_globals.js: crypto.subtle).
// Gives: the SubtleCrypto and CryptoKey globals.
//
// The operations run synchronously on the isolate's thread (SHA-* and HMAC of request-sized
// inputs take microseconds) and settle their promise before returning it; the spec's "in
// parallel" steps give the same results. Every method returns a promise and never throws:
// WebIDL conversion errors and the spec's exceptions reject it.
'use strict';

const {
  ArrayBufferIsView, ArrayBufferPrototypeGetByteLength, ArrayPrototypePush,
  DataViewPrototypeGetBuffer, DataViewPrototypeGetByteLength, DataViewPrototypeGetByteOffset,
  PromiseReject, RangeError, PromiseResolve, SafeMap, SafeSet, StringFromCharCode,
  StringPrototypeCharCodeAt, TypeError, TypedArrayPrototypeGetBuffer,
  TypedArrayPrototypeGetByteLength, TypedArrayPrototypeGetByteOffset,
  TypedArrayPrototypeGetSymbolToStringTag, TypedArrayPrototypeSet, Uint8Array,
} = primordials;
const { webidl, DOMException } = internal;

const isObject = (v) => v !== null && (typeof v === 'object' || typeof v === 'function');

// --- WebIDL conversions -----------------------------------------------------------------------

const context = (method) => `Failed to execute '${method}' on 'SubtleCrypto'`;

// A string enum without Array.prototype methods an app could patch.
function enumValue(v, values, ctx) {
  const s = webidl.DOMString(v, ctx);
  if (!values.has(s)) throw new TypeError(`${ctx}: '${s}' is not a valid enum value`);
  return s;
}
const kKeyFormats = new SafeSet(['raw', 'spki', 'pkcs8', 'jwk']);
// enum KeyUsage, in its order: the order of a key's usages once normalized.
const kKeyUsages = ['encrypt', 'decrypt', 'sign', 'verify', 'deriveKey', 'deriveBits', 'wrapKey',
  'unwrapKey'];
const kKeyUsageSet = new SafeSet(kKeyUsages);

// typedef (object or DOMString) AlgorithmIdentifier
const algorithmIdentifier = (v, ctx) => (isObject(v) ? v : webidl.DOMString(v, ctx));

// sequence<KeyUsage>
function keyUsageList(v, ctx) {
  return webidl.iterable(v, (u) => enumValue(u, kKeyUsageSet, `${ctx}: keyUsages`), ctx);
}

// The ArrayBuffer or view of a BufferSource argument (no [AllowShared]): whether v is one.
function isArrayBuffer(v) {
  try {
    ArrayBufferPrototypeGetByteLength(v); // throws for anything else, SharedArrayBuffer included
    return true;
  } catch {
    return false;
  }
}
function viewBuffer(v) {
  return TypedArrayPrototypeGetSymbolToStringTag(v) !== undefined
    ? TypedArrayPrototypeGetBuffer(v) : DataViewPrototypeGetBuffer(v);
}
function bufferSource(v, ctx) {
  if (ArrayBufferIsView(v)) {
    if (binding.isSharedArrayBuffer(viewBuffer(v))) {
      throw new TypeError(`${ctx}: a view on a SharedArrayBuffer is not allowed`);
    }
    return v;
  }
  if (isArrayBuffer(v)) return v;
  throw new TypeError(`${ctx}: the value is not an ArrayBuffer or ArrayBufferView`);
}

// WebIDL "get a copy of the bytes held by the buffer source", without calling anything an
// app can replace (ArrayBuffer.prototype.slice would look up its species). A detached
// buffer holds no bytes.
function copyBytes(v) {
  let buffer = v, offset = 0, length;
  if (ArrayBufferIsView(v)) {
    buffer = viewBuffer(v);
    if (binding.isDetached(buffer)) return new Uint8Array(0); // a DataView's getters would throw
    const typed = TypedArrayPrototypeGetSymbolToStringTag(v) !== undefined;
    offset = typed ? TypedArrayPrototypeGetByteOffset(v) : DataViewPrototypeGetByteOffset(v);
    length = typed ? TypedArrayPrototypeGetByteLength(v) : DataViewPrototypeGetByteLength(v);
  } else {
    length = ArrayBufferPrototypeGetByteLength(v);
  }
  const out = new Uint8Array(binding.isDetached(buffer) ? 0 : length);
  if (out.length !== 0) TypedArrayPrototypeSet(out, new Uint8Array(buffer, offset, length));
  return out;
}

// dictionary JsonWebKey (and RsaOtherPrimesInfo), members read in lexicographic order.
const kJwkStrings = new SafeSet(['alg', 'crv', 'd', 'dp', 'dq', 'e', 'k', 'kty', 'n', 'p', 'q',
  'qi', 'use', 'x', 'y']);
const kJwkMembers = ['alg', 'crv', 'd', 'dp', 'dq', 'e', 'ext', 'k', 'key_ops', 'kty', 'n', 'oth',
  'p', 'q', 'qi', 'use', 'x', 'y'];
const kOthMembers = ['d', 'r', 't'];
function jsonWebKey(v, ctx) {
  const jwk = { __proto__: null };
  if (v === undefined || v === null) return jwk;
  if (!isObject(v)) throw new TypeError(`${ctx}: a JsonWebKey must be an object`);
  for (let i = 0; i < kJwkMembers.length; i++) {
    const key = kJwkMembers[i];
    const value = v[key];
    if (value === undefined) continue;
    if (kJwkStrings.has(key)) jwk[key] = webidl.DOMString(value, `${ctx}: JsonWebKey.${key}`);
    else if (key === 'ext') jwk.ext = !!value;
    else if (key === 'key_ops') {
      jwk.key_ops = webidl.iterable(value, (s) => webidl.DOMString(s, `${ctx}: key_ops`), ctx);
    } else { // oth: sequence<RsaOtherPrimesInfo>
      jwk.oth = webidl.iterable(value, (o) => {
        if (o !== undefined && o !== null && !isObject(o)) {
          throw new TypeError(`${ctx}: an RsaOtherPrimesInfo must be an object`);
        }
        const info = { __proto__: null };
        for (let j = 0; j < kOthMembers.length; j++) {
          const m = kOthMembers[j];
          const x = o == null ? undefined : o[m];
          if (x !== undefined) info[m] = webidl.DOMString(x, `${ctx}: oth.${m}`);
        }
        return info;
      }, ctx);
    }
  }
  return jwk;
}

// (BufferSource or JsonWebKey): the WebIDL union's choice, then the member's conversion.
function keyDataArgument(v, ctx) {
  if (ArrayBufferIsView(v) || isArrayBuffer(v)) return { __proto__: null, bytes: bufferSource(v, ctx) };
  if (v === undefined || v === null || isObject(v)) return { __proto__: null, jwk: jsonWebKey(v, ctx) };
  throw new TypeError(`${ctx}: keyData is neither a BufferSource nor a JsonWebKey`);
}

// --- CryptoKey ---------------------------------------------------------------------------------

// The internal slots of a key; [[algorithm]] is { name, hash, length } for HMAC.
let slotsOf;
class CryptoKey {
  #slots;
  constructor(key = undefined, slots = undefined) {
    webidl.illegalConstructor(key, 'CryptoKey');
    this.#slots = slots;
  }

  static {
    slotsOf = (v) => (isObject(v) && #slots in v ? v.#slots : undefined);
  }

  get type() {
    const s = slotsOf(this);
    if (s === undefined) throw webidl.illegalInvocation('CryptoKey.type');
    return s.type;
  }

  get extractable() {
    const s = slotsOf(this);
    if (s === undefined) throw webidl.illegalInvocation('CryptoKey.extractable');
    return s.extractable;
  }

  // [[algorithm]] converted to a JS object once: the same object on every get.
  get algorithm() {
    const s = slotsOf(this);
    if (s === undefined) throw webidl.illegalInvocation('CryptoKey.algorithm');
    if (s.algorithmCached === undefined) {
      const a = s.algorithm; // HmacKeyAlgorithm: name, then hash and length (lexicographic)
      s.algorithmCached = { name: a.name, hash: { name: a.hash }, length: a.length };
    }
    return s.algorithmCached;
  }

  get usages() {
    const s = slotsOf(this);
    if (s === undefined) throw webidl.illegalInvocation('CryptoKey.usages');
    if (s.usagesCached === undefined) {
      const out = [];
      for (let i = 0; i < s.usages.length; i++) ArrayPrototypePush(out, s.usages[i]);
      s.usagesCached = out;
    }
    return s.usagesCached;
  }
}
webidl.configureInterface(CryptoKey);
internal.defineGlobal('CryptoKey', CryptoKey);

// A SafeSet of a list's items, walked by index (the Set constructor would take the array
// iterator, which an app may have replaced).
function setOf(list) {
  const set = new SafeSet();
  for (let i = 0; i < list.length; i++) set.add(list[i]);
  return set;
}

// "The normalized value of usages": each usage once, in KeyUsage order.
function normalizeUsages(usages) {
  const set = setOf(usages);
  const out = [];
  for (let i = 0; i < kKeyUsages.length; i++) if (set.has(kKeyUsages[i])) ArrayPrototypePush(out, kKeyUsages[i]);
  return out;
}

function newKey(type, extractable, algorithm, usages, handle) {
  return new CryptoKey(webidl.kIllegalConstructor, {
    __proto__: null, type, extractable, algorithm, usages: normalizeUsages(usages), handle,
    algorithmCached: undefined, usagesCached: undefined,
  });
}

function cryptoKeyArgument(v, ctx) {
  const s = slotsOf(v);
  if (s === undefined) throw new TypeError(`${ctx}: the key is not a CryptoKey`);
  return s;
}

// --- normalize an algorithm -----------------------------------------------------------------

// ASCII lowercase: the spec's names match case-insensitively, ASCII only.
function asciiLower(s) {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = StringPrototypeCharCodeAt(s, i);
    out += StringFromCharCode(c >= 0x41 && c <= 0x5a ? c + 0x20 : c);
  }
  return out;
}

// dictionary Algorithm { required DOMString name; }
function algorithmName(alg, ctx) {
  const name = alg.name;
  if (name === undefined) throw new TypeError(`${ctx}: the algorithm has no name`);
  return webidl.DOMString(name, `${ctx}: algorithm.name`);
}

// Dictionary conversions of the desired types (WebIDL: inherited members first, then each
// dictionary's own in lexicographic order). Each returns the IDL dictionary.
const toAlgorithm = (alg, ctx) => ({ __proto__: null, name: algorithmName(alg, ctx) });

// HmacImportParams and HmacKeyGenParams: required HashAlgorithmIdentifier hash;
// [EnforceRange] unsigned long length.
function toHmacParams(alg, ctx) {
  const out = { __proto__: null, name: algorithmName(alg, ctx), hash: undefined, length: undefined };
  const hash = alg.hash;
  if (hash === undefined) throw new TypeError(`${ctx}: the algorithm has no hash`);
  out.hash = algorithmIdentifier(hash, `${ctx}: algorithm.hash`);
  const length = alg.length;
  if (length !== undefined) out.length = webidl.unsignedLong(length, { enforceRange: true }, `${ctx}: algorithm.length`);
  return out;
}

// supportedAlgorithms: op -> (lowercase name -> [registered name, desired type]).
const kDigest = [['SHA-1', toAlgorithm], ['SHA-256', toAlgorithm], ['SHA-384', toAlgorithm],
  ['SHA-512', toAlgorithm]];
const registry = (entries) => {
  const m = new SafeMap();
  for (let i = 0; i < entries.length; i++) m.set(asciiLower(entries[i][0]), entries[i]);
  return m;
};
const kSupported = new SafeMap([
  ['digest', registry(kDigest)],
  ['sign', registry([['HMAC', toAlgorithm]])],
  ['verify', registry([['HMAC', toAlgorithm]])],
  ['generateKey', registry([['HMAC', toHmacParams]])],
  ['importKey', registry([['HMAC', toHmacParams]])],
  // No algorithm supports these yet (TODO(#19): AES-*, RSA-*, EC*, Ed25519, X25519, PBKDF2,
  // HKDF): every name is unrecognized.
  ['encrypt', registry([])], ['decrypt', registry([])], ['deriveBits', registry([])],
  ['wrapKey', registry([])], ['unwrapKey', registry([])],
]);
// exportKey has no normalization: an algorithm that supports it, by its registered name.
const kExportable = new SafeSet(['HMAC']);

// WebCrypto §18.4.4 "normalize an algorithm" (alg: an AlgorithmIdentifier already
// converted). Returns the normalized dictionary or throws the error the spec returns.
function normalizeAlgorithm(alg, op, ctx) {
  if (!isObject(alg)) alg = { __proto__: null, name: alg }; // a DOMString
  const registered = kSupported.get(op);
  const algName = algorithmName(alg, ctx); // 2.-4. convert to Algorithm
  const entry = registered.get(asciiLower(algName));
  if (entry === undefined) { // 5.
    throw new DOMException(`${ctx}: Unrecognized algorithm name '${algName}' for ${op}`, 'NotSupportedError');
  }
  const normalized = entry[1](alg, ctx); // 6. convert to the desired type
  normalized.name = entry[0]; // 7.
  // 10. HashAlgorithmIdentifier members are normalized for "digest".
  if (normalized.hash !== undefined) normalized.hash = normalizeAlgorithm(normalized.hash, 'digest', ctx).name;
  return normalized;
}

// --- the algorithms --------------------------------------------------------------------------

const kHashIds = new SafeMap([['SHA-1', 1], ['SHA-256', 256], ['SHA-384', 384], ['SHA-512', 512]]);
// HMAC's JWK "alg" per hash (JWA §3.2; "HS1" is WebCrypto's).
const kHmacJwkAlg = new SafeMap([['SHA-1', 'HS1'], ['SHA-256', 'HS256'], ['SHA-384', 'HS384'],
  ['SHA-512', 'HS512']]);
// The block size in bits of each hash: an HMAC key's default length.
const kHashBlockBits = new SafeMap([['SHA-1', 512], ['SHA-256', 512], ['SHA-384', 1024],
  ['SHA-512', 1024]]);

const error = (ctx, message, name) => new DOMException(`${ctx}: ${message}`, name);

function checkHmacUsages(usages, ctx) {
  for (let i = 0; i < usages.length; i++) {
    if (usages[i] !== 'sign' && usages[i] !== 'verify') {
      throw error(ctx, `'${usages[i]}' is not a usage of an HMAC key`, 'SyntaxError');
    }
  }
}

// HMAC "generate key".
function hmacGenerateKey(alg, extractable, usages, ctx) {
  checkHmacUsages(usages, ctx); // 1.
  let length = kHashBlockBits.get(alg.hash); // 2.
  if (alg.length !== undefined) {
    if (alg.length === 0) throw error(ctx, 'an HMAC key cannot be 0 bits long', 'OperationError');
    length = alg.length;
  }
  let handle;
  try {
    handle = binding.cryptoKeyGenerate(length); // 3.
  } catch (e) {
    if (e instanceof RangeError) throw e;
    throw error(ctx, 'the key could not be generated', 'OperationError');
  }
  return newKey('secret', extractable, { name: 'HMAC', hash: alg.hash, length }, usages, handle);
}

// RFC 7517 §4.3: key_ops holds no value twice.
function hasDuplicates(list) {
  return setOf(list).size !== list.length;
}

// HMAC "import key".
function hmacImportKey(format, keyData, alg, extractable, usages, ctx) {
  checkHmacUsages(usages, ctx); // 2.
  let handle;
  if (format === 'raw') {
    if (keyData.bytes === undefined) throw new TypeError(`${ctx}: raw key data must be a BufferSource`);
    handle = binding.cryptoKeyFromBytes(keyData.bytes);
  } else if (format === 'jwk') {
    const jwk = keyData.jwk;
    if (jwk === undefined) throw new TypeError(`${ctx}: jwk key data must be a JsonWebKey`);
    if (jwk.kty !== 'oct') throw error(ctx, "the JWK's kty is not 'oct'", 'DataError');
    if (jwk.k === undefined) throw error(ctx, 'the JWK has no k', 'DataError'); // JWA §6.4
    const expected = kHmacJwkAlg.get(alg.hash);
    if (jwk.alg !== undefined && jwk.alg !== expected) {
      throw error(ctx, `the JWK's alg '${jwk.alg}' is not ${expected}`, 'DataError');
    }
    if (usages.length !== 0 && jwk.use !== undefined && jwk.use !== 'sig') {
      throw error(ctx, "the JWK's use is not 'sig'", 'DataError');
    }
    if (jwk.key_ops !== undefined) {
      if (hasDuplicates(jwk.key_ops)) throw error(ctx, "the JWK's key_ops repeats a value", 'DataError');
      const ops = setOf(jwk.key_ops);
      for (let i = 0; i < usages.length; i++) {
        if (!ops.has(usages[i])) throw error(ctx, `the JWK's key_ops lack '${usages[i]}'`, 'DataError');
      }
    }
    if (jwk.ext === false && extractable) {
      throw error(ctx, 'the JWK is not extractable (ext is false)', 'DataError');
    }
    handle = binding.cryptoKeyFromBase64url(jwk.k);
    if (handle === null) throw error(ctx, "the JWK's k is not base64url", 'DataError');
  } else {
    throw error(ctx, `an HMAC key cannot be imported from '${format}'`, 'NotSupportedError');
  }
  let length = binding.cryptoKeyLength(handle) * 8; // 5.
  if (length === 0) throw error(ctx, 'an HMAC key cannot be empty', 'DataError'); // 6.
  if (alg.length !== undefined) { // 7.
    if (alg.length > length) throw error(ctx, 'the length is longer than the key data', 'DataError');
    if (alg.length <= length - 8) throw error(ctx, 'the length is shorter than the key data', 'DataError');
    length = alg.length;
  }
  return newKey('secret', extractable, { name: 'HMAC', hash: alg.hash, length }, usages, handle);
}

// HMAC "export key".
function hmacExportKey(format, s, ctx) {
  if (format === 'raw') return binding.cryptoKeyExportRaw(s.handle);
  if (format === 'jwk') {
    // A JsonWebKey converted to JS: its present members in lexicographic order.
    const usages = [];
    for (let i = 0; i < s.usages.length; i++) ArrayPrototypePush(usages, s.usages[i]);
    return {
      alg: kHmacJwkAlg.get(s.algorithm.hash), ext: s.extractable,
      k: binding.cryptoKeyToBase64url(s.handle), key_ops: usages, kty: 'oct',
    };
  }
  throw error(ctx, `an HMAC key cannot be exported as '${format}'`, 'NotSupportedError');
}

// --- SubtleCrypto -----------------------------------------------------------------------------

// The checks shared by sign and verify (and later encrypt, decrypt, ...): steps "If the name
// member of normalizedAlgorithm is not equal to the name attribute of the [[algorithm]]
// internal slot of key" and "If the [[usages]] internal slot of key does not contain".
function checkKeyFor(alg, s, usage, ctx) {
  if (alg.name !== s.algorithm.name) {
    throw error(ctx, `the key is a ${s.algorithm.name} key, not ${alg.name}`, 'InvalidAccessError');
  }
  let found = false;
  for (let i = 0; i < s.usages.length; i++) if (s.usages[i] === usage) found = true;
  if (!found) throw error(ctx, `the key's usages do not include '${usage}'`, 'InvalidAccessError');
}

// An algorithm given as an object can run app code while it is normalized, after the spec
// has already copied the data: copy first then. A string cannot.
const copyIfNeeded = (algorithm, data) => (isObject(algorithm) ? copyBytes(data) : data);

let isSubtle;
class SubtleCrypto {
  #subtle; // the brand
  constructor(key = undefined) { webidl.illegalConstructor(key, 'SubtleCrypto'); }
  static { isSubtle = (v) => isObject(v) && #subtle in v; }

  encrypt(algorithm, key, data) {
    try {
      const ctx = begin(this, arguments, 3, 'encrypt');
      algorithm = algorithmIdentifier(algorithm, ctx);
      cryptoKeyArgument(key, ctx);
      bufferSource(data, ctx);
      normalizeAlgorithm(algorithm, 'encrypt', ctx); // no algorithm encrypts yet: rejects
      throw new TypeError('unreachable');
    } catch (e) {
      return PromiseReject(e);
    }
  }

  decrypt(algorithm, key, data) {
    try {
      const ctx = begin(this, arguments, 3, 'decrypt');
      algorithm = algorithmIdentifier(algorithm, ctx);
      cryptoKeyArgument(key, ctx);
      bufferSource(data, ctx);
      normalizeAlgorithm(algorithm, 'decrypt', ctx); // no algorithm decrypts yet: rejects
      throw new TypeError('unreachable');
    } catch (e) {
      return PromiseReject(e);
    }
  }

  sign(algorithm, key, data) {
    try {
      const ctx = begin(this, arguments, 3, 'sign');
      algorithm = algorithmIdentifier(algorithm, ctx);
      const s = cryptoKeyArgument(key, ctx);
      data = copyIfNeeded(algorithm, bufferSource(data, ctx));
      const alg = normalizeAlgorithm(algorithm, 'sign', ctx);
      checkKeyFor(alg, s, 'sign', ctx);
      // HMAC: the MAC (FIPS 198-1) with the key's hash.
      return PromiseResolve(binding.cryptoHmacSign(kHashIds.get(s.algorithm.hash), s.handle, data));
    } catch (e) {
      return PromiseReject(e);
    }
  }

  verify(algorithm, key, signature, data) {
    try {
      const ctx = begin(this, arguments, 4, 'verify');
      algorithm = algorithmIdentifier(algorithm, ctx);
      const s = cryptoKeyArgument(key, ctx);
      signature = copyIfNeeded(algorithm, bufferSource(signature, ctx));
      data = copyIfNeeded(algorithm, bufferSource(data, ctx));
      const alg = normalizeAlgorithm(algorithm, 'verify', ctx);
      checkKeyFor(alg, s, 'verify', ctx);
      return PromiseResolve(binding.cryptoHmacVerify(kHashIds.get(s.algorithm.hash), s.handle,
        signature, data));
    } catch (e) {
      return PromiseReject(e);
    }
  }

  digest(algorithm, data) {
    try {
      const ctx = begin(this, arguments, 2, 'digest');
      algorithm = algorithmIdentifier(algorithm, ctx);
      data = copyIfNeeded(algorithm, bufferSource(data, ctx));
      const alg = normalizeAlgorithm(algorithm, 'digest', ctx);
      return PromiseResolve(binding.cryptoDigest(kHashIds.get(alg.name), data));
    } catch (e) {
      return PromiseReject(e);
    }
  }

  generateKey(algorithm, extractable, keyUsages) {
    try {
      const ctx = begin(this, arguments, 3, 'generateKey');
      algorithm = algorithmIdentifier(algorithm, ctx);
      extractable = webidl.boolean(extractable);
      const usages = keyUsageList(keyUsages, ctx);
      const alg = normalizeAlgorithm(algorithm, 'generateKey', ctx);
      const key = hmacGenerateKey(alg, extractable, usages, ctx);
      if (usages.length === 0) throw error(ctx, 'a secret key needs at least one usage', 'SyntaxError');
      return PromiseResolve(key);
    } catch (e) {
      return PromiseReject(e);
    }
  }

  deriveKey(algorithm, baseKey, derivedKeyType, extractable, keyUsages) {
    try {
      const ctx = begin(this, arguments, 5, 'deriveKey');
      algorithm = algorithmIdentifier(algorithm, ctx);
      cryptoKeyArgument(baseKey, ctx);
      algorithmIdentifier(derivedKeyType, ctx);
      keyUsageList(keyUsages, ctx);
      normalizeAlgorithm(algorithm, 'deriveBits', ctx); // no algorithm derives yet: rejects
      throw new TypeError('unreachable');
    } catch (e) {
      return PromiseReject(e);
    }
  }

  deriveBits(algorithm, baseKey, length = null) {
    try {
      const ctx = begin(this, arguments, 2, 'deriveBits');
      algorithm = algorithmIdentifier(algorithm, ctx);
      cryptoKeyArgument(baseKey, ctx);
      if (length !== null && length !== undefined) webidl.unsignedLong(length, undefined, `${ctx}: length`);
      normalizeAlgorithm(algorithm, 'deriveBits', ctx); // no algorithm derives yet: rejects
      throw new TypeError('unreachable');
    } catch (e) {
      return PromiseReject(e);
    }
  }

  importKey(format, keyData, algorithm, extractable, keyUsages) {
    try {
      const ctx = begin(this, arguments, 5, 'importKey');
      format = enumValue(format, kKeyFormats, `${ctx}: format`);
      const data = keyDataArgument(keyData, ctx);
      algorithm = algorithmIdentifier(algorithm, ctx);
      extractable = webidl.boolean(extractable);
      const usages = keyUsageList(keyUsages, ctx);
      const alg = normalizeAlgorithm(algorithm, 'importKey', ctx);
      if (format === 'jwk') {
        if (data.jwk === undefined) throw new TypeError(`${ctx}: jwk key data must be a JsonWebKey`);
      } else if (data.bytes === undefined) {
        throw new TypeError(`${ctx}: ${format} key data must be a BufferSource`);
      }
      const key = hmacImportKey(format, data, alg, extractable, usages, ctx);
      if (usages.length === 0) throw error(ctx, 'a secret key needs at least one usage', 'SyntaxError');
      return PromiseResolve(key);
    } catch (e) {
      return PromiseReject(e);
    }
  }

  exportKey(format, key) {
    try {
      const ctx = begin(this, arguments, 2, 'exportKey');
      format = enumValue(format, kKeyFormats, `${ctx}: format`);
      const s = cryptoKeyArgument(key, ctx);
      if (!kExportable.has(s.algorithm.name)) {
        throw error(ctx, `${s.algorithm.name} keys cannot be exported`, 'NotSupportedError');
      }
      if (!s.extractable) throw error(ctx, 'the key is not extractable', 'InvalidAccessError');
      return PromiseResolve(hmacExportKey(format, s, ctx));
    } catch (e) {
      return PromiseReject(e);
    }
  }

  wrapKey(format, key, wrappingKey, wrapAlgorithm) {
    try {
      const ctx = begin(this, arguments, 4, 'wrapKey');
      enumValue(format, kKeyFormats, `${ctx}: format`);
      cryptoKeyArgument(key, ctx);
      cryptoKeyArgument(wrappingKey, ctx);
      wrapAlgorithm = algorithmIdentifier(wrapAlgorithm, ctx);
      normalizeWrap(wrapAlgorithm, 'wrapKey', 'encrypt', ctx); // none wraps yet: rejects
      throw new TypeError('unreachable');
    } catch (e) {
      return PromiseReject(e);
    }
  }

  unwrapKey(format, wrappedKey, unwrappingKey, unwrapAlgorithm, unwrappedKeyAlgorithm,
    extractable, keyUsages) {
    try {
      const ctx = begin(this, arguments, 7, 'unwrapKey');
      enumValue(format, kKeyFormats, `${ctx}: format`);
      bufferSource(wrappedKey, ctx);
      cryptoKeyArgument(unwrappingKey, ctx);
      unwrapAlgorithm = algorithmIdentifier(unwrapAlgorithm, ctx);
      algorithmIdentifier(unwrappedKeyAlgorithm, ctx);
      keyUsageList(keyUsages, ctx);
      normalizeWrap(unwrapAlgorithm, 'unwrapKey', 'decrypt', ctx); // none unwraps yet: rejects
      throw new TypeError('unreachable');
    } catch (e) {
      return PromiseReject(e);
    }
  }
}
webidl.configureInterface(SubtleCrypto);
internal.defineGlobal('SubtleCrypto', SubtleCrypto);

// The brand check and argument count every method starts with; returns the error context.
function begin(self, args, required, method) {
  if (!isSubtle(self)) throw webidl.illegalInvocation(`SubtleCrypto.${method}`);
  const ctx = context(method);
  webidl.argCount(args, required, ctx);
  return ctx;
}

// wrapKey / unwrapKey: "normalize for op; if that is a NotSupportedError, for fallback".
function normalizeWrap(alg, op, fallback, ctx) {
  try {
    return normalizeAlgorithm(alg, op, ctx);
  } catch (e) {
    if (!internal.isDOMException(e) || e.name !== 'NotSupportedError') throw e;
    return normalizeAlgorithm(alg, fallback, ctx);
  }
}

const subtle = new SubtleCrypto(webidl.kIllegalConstructor);
internal.setCryptoSubtle(subtle);
