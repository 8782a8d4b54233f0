// 25_webcrypto.js: crypto.subtle (W3C Web Cryptography API, Level 2 editor's draft, with the
// Secure Curves additions): SubtleCrypto, CryptoKey, "normalize an algorithm", the registry
// of algorithms, and the symmetric ones: digest (SHA-1, SHA-256, SHA-384, SHA-512), HMAC,
// AES-CTR, AES-CBC, AES-GCM, AES-KW, PBKDF2 and HKDF. RSA is in 26_webcrypto_rsa.js, the
// elliptic curves in 27_webcrypto_ec.js; each registers its algorithms here
// (internal.webcrypto.registerAlgorithm). A name not registered for an operation is rejected
// with the NotSupportedError of the normalization step (docs/api.md has the table).
//
// Takes from binding: crypto* (runtime/crypto*.cc: OpenSSL does the bytes; key material lives
// in native memory that is wiped when freed), isDetached, isPromise, isSharedArrayBuffer,
// utf8Decode. Gives the SubtleCrypto and CryptoKey globals, and crypto.subtle to
// 23_globals.js (internal.setCryptoSubtle).
//
// Work whose cost the app chooses runs on the libuv thread pool and its native returns a
// promise (PBKDF2, RSA key generation, digests, HMAC and AES of a MiB or more: crypto.cc).
// The rest runs synchronously on the isolate's thread and settles the method's promise
// before returning it; the spec's "in parallel" steps give the same results. Every method
// returns a promise and never throws: WebIDL conversion errors and the spec's exceptions
// reject it.
'use strict';

const {
  ArrayBufferIsView, ArrayBufferPrototypeGetByteLength, ArrayPrototypePush,
  DataViewPrototypeGetBuffer, DataViewPrototypeGetByteLength, DataViewPrototypeGetByteOffset,
  JSONParse, JSONStringify, MathCeil, ObjectGetOwnPropertyDescriptor, ObjectGetPrototypeOf, ObjectKeys,
  ObjectPrototype, ObjectPrototypeHasOwnProperty, PromisePrototypeThen, PromiseReject, RangeError, PromiseResolve, SafeMap, SafeSet, StringFromCharCode,
  StringPrototypeCharCodeAt, TypeError, TypedArrayPrototypeGetBuffer,
  TypedArrayPrototypeGetByteLength, TypedArrayPrototypeGetByteOffset,
  TypedArrayPrototypeGetSymbolToStringTag, TypedArrayPrototypeSet, Uint8Array, ObjectAssign,
} = primordials;
const {
  webidl, DOMException, defineGlobal, isDOMException, encodeUtf8, setCryptoSubtle,
} = internal;

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
  if (binding.isDetached(buffer)) return new Uint8Array(0);
  // Large copies natively: memory not zero-filled first, then copied over.
  if (length >= 4096) return new Uint8Array(binding.cryptoCopyBytes(v));
  const out = new Uint8Array(length);
  if (length !== 0) TypedArrayPrototypeSet(out, new Uint8Array(buffer, offset, length));
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
    if (s.algorithmCached === undefined) s.algorithmCached = keyAlgorithmObject(s.algorithm);
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

// A key's [[algorithm]] (an internal record: name and, as the algorithm has them, hash,
// length, modulusLength, publicExponent, namedCurve) as the KeyAlgorithm dictionary converted
// to JS: name (KeyAlgorithm's member) first, then the subclass's own, inherited ones first
// (RsaHashedKeyAlgorithm: modulusLength, publicExponent, then hash).
function keyAlgorithmObject(a) {
  const o = { name: a.name };
  if (a.modulusLength !== undefined) {
    o.modulusLength = a.modulusLength;
    o.publicExponent = new Uint8Array(a.publicExponent); // a copy per key object
  }
  if (a.hash !== undefined) o.hash = { name: a.hash };
  if (a.length !== undefined) o.length = a.length;
  if (a.namedCurve !== undefined) o.namedCurve = a.namedCurve;
  return o;
}
defineGlobal('CryptoKey', CryptoKey);

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

// CryptoKey is serializable (WebCrypto §14.4): a clone has the same type, extractable,
// algorithm, usages and key handle (which nothing ever changes, so the two share it).
const isCryptoKey = (v) => slotsOf(v) !== undefined;
const cloneCryptoKey = (v) => {
  const s = slotsOf(v);
  return new CryptoKey(webidl.kIllegalConstructor, {
    __proto__: null, type: s.type, extractable: s.extractable, algorithm: s.algorithm, usages: s.usages,
    handle: s.handle, algorithmCached: undefined, usagesCached: undefined,
  });
};

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

// A required BufferSource member, held as a copy of its bytes (normalize step 10's "get a
// copy of the bytes held by the buffer source").
function bufferMember(alg, member, ctx, required = true) {
  const v = alg[member];
  if (v === undefined) {
    if (required) throw new TypeError(`${ctx}: the algorithm has no ${member}`);
    return undefined;
  }
  return copyBytes(bufferSource(v, `${ctx}: algorithm.${member}`));
}
function hashMember(alg, ctx) {
  const hash = alg.hash;
  if (hash === undefined) throw new TypeError(`${ctx}: the algorithm has no hash`);
  return algorithmIdentifier(hash, `${ctx}: algorithm.hash`);
}
function requiredInt(alg, member, convert, ctx) {
  const v = alg[member];
  if (v === undefined) throw new TypeError(`${ctx}: the algorithm has no ${member}`);
  return convert(v, { enforceRange: true }, `${ctx}: algorithm.${member}`);
}

// AesKeyGenParams and AesDerivedKeyParams: required [EnforceRange] unsigned short length.
const toAesLengthParams = (alg, ctx) => ({ __proto__: null, name: algorithmName(alg, ctx),
  length: requiredInt(alg, 'length', webidl.unsignedShort, ctx) });
// AesCbcParams: required BufferSource iv.
const toAesCbcParams = (alg, ctx) => ({ __proto__: null, name: algorithmName(alg, ctx),
  iv: bufferMember(alg, 'iv', ctx) });
// AesCtrParams: required BufferSource counter; required [EnforceRange] octet length.
function toAesCtrParams(alg, ctx) {
  const name = algorithmName(alg, ctx);
  const counter = bufferMember(alg, 'counter', ctx);
  return { __proto__: null, name, counter, length: requiredInt(alg, 'length', webidl.octet, ctx) };
}
// AesGcmParams: BufferSource additionalData; required BufferSource iv; [EnforceRange] octet
// tagLength.
function toAesGcmParams(alg, ctx) {
  const name = algorithmName(alg, ctx);
  const additionalData = bufferMember(alg, 'additionalData', ctx, false);
  const iv = bufferMember(alg, 'iv', ctx);
  const tagLength = alg.tagLength;
  return { __proto__: null, name, additionalData, iv, tagLength: tagLength === undefined ? undefined
    : webidl.octet(tagLength, { enforceRange: true }, `${ctx}: algorithm.tagLength`) };
}
// Pbkdf2Params: required HashAlgorithmIdentifier hash; required [EnforceRange] unsigned long
// iterations; required BufferSource salt.
function toPbkdf2Params(alg, ctx) {
  const name = algorithmName(alg, ctx);
  const hash = hashMember(alg, ctx);
  const iterations = requiredInt(alg, 'iterations', webidl.unsignedLong, ctx);
  return { __proto__: null, name, hash, iterations, salt: bufferMember(alg, 'salt', ctx) };
}
// HkdfParams: required HashAlgorithmIdentifier hash; required BufferSource info; required
// BufferSource salt.
function toHkdfParams(alg, ctx) {
  const name = algorithmName(alg, ctx);
  const hash = hashMember(alg, ctx);
  const info = bufferMember(alg, 'info', ctx);
  return { __proto__: null, name, hash, info, salt: bufferMember(alg, 'salt', ctx) };
}

// --- the registry of algorithms ---------------------------------------------------------------

// supportedAlgorithms: op -> (lowercase name -> [registered name, desired type]). The
// operations are the spec's (digest, sign, verify, generateKey, importKey, encrypt, decrypt,
// deriveBits, wrapKey, unwrapKey, "get key length"); exportKey has no normalization.
const kOps = ['digest', 'sign', 'verify', 'generateKey', 'importKey', 'encrypt', 'decrypt',
  'deriveBits', 'wrapKey', 'unwrapKey', 'get key length'];
const kSupported = new SafeMap();
for (let i = 0; i < kOps.length; i++) kSupported.set(kOps[i], new SafeMap());
// Registered name -> the algorithm's implementation: an object with the operations it
// supports (below), each taking the normalized algorithm and the key's internal slots.
const kImpl = new SafeMap();

// Registers an algorithm: params maps each operation it supports to the desired type's
// conversion (a function (alg, ctx) -> the IDL dictionary); impl has its operations:
//   generateKey(alg, extractable, usages, ctx) -> CryptoKey or CryptoKeyPair (or a promise)
//   importKey(format, keyData, alg, extractable, usages, ctx) -> CryptoKey
//   exportKey(format, slots, ctx) -> ArrayBuffer or a JsonWebKey object
//   sign(alg, slots, data, ctx), verify(alg, slots, signature, data, ctx),
//   encrypt(alg, slots, data, ctx), decrypt(alg, slots, data, ctx),
//   deriveBits(alg, slots, length, ctx), wrapKey(alg, slots, bytes, ctx),
//   unwrapKey(alg, slots, bytes, ctx), getKeyLength(alg, ctx)
// Each result may be a value or a promise of it (work done on the thread pool).
function registerAlgorithm(name, params, impl) {
  const lower = asciiLower(name);
  const ops = ObjectKeys(params);
  for (let i = 0; i < ops.length; i++) {
    const entry = [name, params[ops[i]]];
    kSupported.get(ops[i]).set(lower, entry);
    kSupported.get(ops[i]).set(name, entry); // as typed most often: no asciiLower
  }
  if (impl !== undefined) kImpl.set(name, impl);
}

// WebCrypto §18.4.4 "normalize an algorithm" (alg: an AlgorithmIdentifier already
// converted). Returns the normalized dictionary or throws the error the spec returns.
function normalizeAlgorithm(alg, op, ctx) {
  if (!isObject(alg)) alg = { __proto__: null, name: alg }; // a DOMString
  const registered = kSupported.get(op);
  const algName = algorithmName(alg, ctx); // 2.-4. convert to Algorithm
  const entry = registered.get(algName) ?? registered.get(asciiLower(algName));
  if (entry === undefined) { // 5.
    throw new DOMException(`${ctx}: Unrecognized algorithm name '${algName}' for ${op}`, 'NotSupportedError');
  }
  const normalized = entry[1](alg, ctx); // 6. convert to the desired type
  normalized.name = entry[0]; // 7.
  // 10. HashAlgorithmIdentifier members are normalized for "digest".
  if (normalized.hash !== undefined) normalized.hash = normalizeAlgorithm(normalized.hash, 'digest', ctx).name;
  return normalized;
}

// --- shared by the algorithms ---------------------------------------------------------------

const kHashIds = new SafeMap([['SHA-1', 1], ['SHA-256', 256], ['SHA-384', 384], ['SHA-512', 512]]);
// The output size in bits of each hash.
const kHashBits = new SafeMap([['SHA-1', 160], ['SHA-256', 256], ['SHA-384', 384], ['SHA-512', 512]]);

const error = (ctx, message, name) => new DOMException(`${ctx}: ${message}`, name);

function checkUsages(usages, allowed, what, ctx) {
  for (let i = 0; i < usages.length; i++) {
    if (!allowed.has(usages[i])) throw error(ctx, `'${usages[i]}' is not a usage of ${what} key`, 'SyntaxError');
  }
}

// A native's null result: the spec's OperationError (or the error named).
function operation(result, ctx, what, name = 'OperationError') {
  if (result === null) throw error(ctx, what, name);
  return result;
}

// A native's result that may be a promise (the work ran on the thread pool): f applied to the
// value, now or when it comes.
function settle(result, f) {
  if (binding.isPromise(result)) return PromisePrototypeThen(result, f);
  return f(result);
}

// RFC 7517 §4.3: key_ops holds no value twice.
function hasDuplicates(list) {
  return setOf(list).size !== list.length;
}

// The checks of JWK import every key type shares (the spec's import steps for "jwk"): kty,
// then use (when usages are asked for), key_ops (no duplicates; every usage asked for
// listed) and ext. alg is checked by each algorithm.
function checkJwk(jwk, kty, use, extractable, usages, ctx) {
  if (jwk.kty !== kty) throw error(ctx, `the JWK's kty is not '${kty}'`, 'DataError');
  if (usages.length !== 0 && jwk.use !== undefined && jwk.use !== use) {
    throw error(ctx, `the JWK's use is not '${use}'`, 'DataError');
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
}

// A copy of a key's usages as a JS array (a JWK's key_ops).
function usagesArray(s) {
  const out = [];
  for (let i = 0; i < s.usages.length; i++) ArrayPrototypePush(out, s.usages[i]);
  return out;
}

// The UTF-8 JSON text of an exported JWK (wrapKey of "jwk"): its members in lexicographic
// order, built without JSON.stringify's lookup of toJSON on prototypes an app may patch (a
// string alone has no such lookup).
function jwkJson(jwk) {
  let text = '';
  for (let i = 0; i < kJwkMembers.length; i++) {
    const key = kJwkMembers[i];
    const v = jwk[key];
    if (v === undefined) continue;
    let value;
    if (typeof v === 'boolean') value = v ? 'true' : 'false';
    else if (typeof v === 'string') value = JSONStringify(v);
    else { // key_ops: strings (oth is never exported)
      value = '';
      for (let j = 0; j < v.length; j++) value += (j ? ',' : '') + JSONStringify(v[j]);
      value = `[${value}]`;
    }
    text += `${text === '' ? '' : ','}${JSONStringify(key)}:${value}`;
  }
  return encodeUtf8(`{${text}}`);
}

// --- digest, HMAC, AES, PBKDF2, HKDF ---------------------------------------------------------

registerAlgorithm('SHA-1', { digest: toAlgorithm });
registerAlgorithm('SHA-256', { digest: toAlgorithm });
registerAlgorithm('SHA-384', { digest: toAlgorithm });
registerAlgorithm('SHA-512', { digest: toAlgorithm });

// HMAC's JWK "alg" per hash (JWA §3.2; "HS1" is WebCrypto's).
const kHmacJwkAlg = new SafeMap([['SHA-1', 'HS1'], ['SHA-256', 'HS256'], ['SHA-384', 'HS384'],
  ['SHA-512', 'HS512']]);
// The block size in bits of each hash: an HMAC key's default length.
const kHashBlockBits = new SafeMap([['SHA-1', 512], ['SHA-256', 512], ['SHA-384', 1024],
  ['SHA-512', 1024]]);

const kHmacUsages = new SafeSet(['sign', 'verify']);
const kAesUsages = new SafeSet(['encrypt', 'decrypt', 'wrapKey', 'unwrapKey']);
const kKwUsages = new SafeSet(['wrapKey', 'unwrapKey']);
const kDeriveUsages = new SafeSet(['deriveKey', 'deriveBits']);
const aesUsages = (name) => (name === 'AES-KW' ? kKwUsages : kAesUsages);

function generateSecret(bits, ctx) {
  try {
    return binding.cryptoKeyGenerate(bits);
  } catch (e) {
    if (e instanceof RangeError) throw e;
    throw error(ctx, 'the key could not be generated', 'OperationError');
  }
}

// The checks of an "oct" JWK shared by HMAC and AES import; returns the key handle.
function importOctJwk(keyData, expectedAlg, use, extractable, usages, ctx) {
  const jwk = keyData.jwk;
  if (jwk.kty !== 'oct') throw error(ctx, "the JWK's kty is not 'oct'", 'DataError');
  if (jwk.k === undefined) throw error(ctx, 'the JWK has no k', 'DataError'); // JWA §6.4
  const handle = binding.cryptoKeyFromBase64url(jwk.k);
  if (handle === null) throw error(ctx, "the JWK's k is not base64url", 'DataError');
  const alg = expectedAlg(handle);
  if (jwk.alg !== undefined && jwk.alg !== alg) {
    throw error(ctx, `the JWK's alg '${jwk.alg}' is not ${alg}`, 'DataError');
  }
  checkJwk(jwk, 'oct', use, extractable, usages, ctx);
  return handle;
}

// "export key" of HMAC and AES-* keys.
function exportSecretKey(format, s, ctx) {
  if (format === 'raw') return binding.cryptoKeyExportRaw(s.handle);
  if (format === 'jwk') {
    // A JsonWebKey converted to JS: its present members in lexicographic order.
    const a = s.algorithm;
    return {
      alg: a.name === 'HMAC' ? kHmacJwkAlg.get(a.hash) : aesJwkAlg(a.name, a.length),
      ext: s.extractable, k: binding.cryptoKeyToBase64url(s.handle), key_ops: usagesArray(s), kty: 'oct',
    };
  }
  throw error(ctx, `an ${s.algorithm.name} key cannot be exported as '${format}'`, 'NotSupportedError');
}

registerAlgorithm('HMAC', {
  sign: toAlgorithm, verify: toAlgorithm, generateKey: toHmacParams, importKey: toHmacParams,
  'get key length': toHmacParams,
}, {
  generateKey(alg, extractable, usages, ctx) {
    checkUsages(usages, kHmacUsages, 'an HMAC', ctx); // 1.
    let length = kHashBlockBits.get(alg.hash); // 2.
    if (alg.length !== undefined) {
      if (alg.length === 0) throw error(ctx, 'an HMAC key cannot be 0 bits long', 'OperationError');
      length = alg.length;
    }
    const handle = generateSecret(length, ctx); // 3.
    return newKey('secret', extractable, { name: 'HMAC', hash: alg.hash, length }, usages, handle);
  },
  importKey(format, keyData, alg, extractable, usages, ctx) {
    checkUsages(usages, kHmacUsages, 'an HMAC', ctx); // 2.
    let handle;
    if (format === 'raw') {
      handle = binding.cryptoKeyFromBytes(keyData.bytes);
    } else if (format === 'jwk') {
      handle = importOctJwk(keyData, () => kHmacJwkAlg.get(alg.hash), 'sig', extractable, usages, ctx);
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
  },
  exportKey: exportSecretKey,
  // The MAC (FIPS 198-1) with the key's hash.
  sign: (alg, s, data, ctx) => settle(binding.cryptoHmacSign(kHashIds.get(s.algorithm.hash), s.handle, data),
    (mac) => operation(mac, ctx, 'HMAC failed')),
  verify: (alg, s, signature, data, ctx) => settle(binding.cryptoHmacVerify(kHashIds.get(s.algorithm.hash),
    s.handle, signature, data), (ok) => operation(ok, ctx, 'HMAC failed')),
  getKeyLength(alg, ctx) {
    if (alg.length === undefined) return kHashBlockBits.get(alg.hash);
    if (alg.length !== 0) return alg.length;
    throw new TypeError(`${ctx}: an HMAC key cannot be 0 bits long`);
  },
});

// The JWK "alg" of an AES key: "A" + its length + the mode (JWA §4.4, §4.7, §5.3; "CTR" is
// WebCrypto's).
const kAesJwkSuffix = new SafeMap([['AES-CTR', 'CTR'], ['AES-CBC', 'CBC'], ['AES-GCM', 'GCM'],
  ['AES-KW', 'KW']]);
const aesJwkAlg = (name, bits) => `A${bits}${kAesJwkSuffix.get(name)}`;
const kGcmTagLengths = new SafeSet([32, 64, 96, 104, 112, 120, 128]);

// AES-CBC, AES-CTR, AES-GCM "encrypt" and "decrypt".
function aesCipher(encrypt, alg, s, data, ctx) {
  if (alg.name === 'AES-CBC') {
    if (alg.iv.length !== 16) throw error(ctx, 'the AES-CBC iv is not 16 bytes', 'OperationError');
    return settle(binding.cryptoAesCbc(encrypt, s.handle, alg.iv, data), (r) => operation(r, ctx,
      encrypt ? 'AES-CBC failed' : 'the AES-CBC data or its padding is not valid'));
  }
  if (alg.name === 'AES-CTR') {
    if (alg.counter.length !== 16) throw error(ctx, 'the AES-CTR counter is not 16 bytes', 'OperationError');
    if (alg.length === 0 || alg.length > 128) {
      throw error(ctx, 'the AES-CTR counter length is not 1 to 128 bits', 'OperationError');
    }
    return settle(binding.cryptoAesCtr(s.handle, alg.counter, alg.length, data), (r) => operation(r, ctx,
      'the AES-CTR counter would repeat'));
  }
  // AES-GCM. The bounds on the data (2^39 - 256 bits), iv and additional data (2^64 - 1
  // bytes) lie beyond what an app's memory can hold.
  const tagLength = alg.tagLength === undefined ? 128 : alg.tagLength;
  if (!kGcmTagLengths.has(tagLength)) throw error(ctx, `${tagLength} is not an AES-GCM tag length`, 'OperationError');
  if (alg.iv.length === 0) throw error(ctx, 'the AES-GCM iv is empty', 'OperationError');
  return settle(binding.cryptoAesGcm(encrypt, s.handle, alg.iv, alg.additionalData, tagLength / 8, data),
    (r) => operation(r, ctx, encrypt ? 'AES-GCM failed' : 'the AES-GCM data does not authenticate'));
}

function aesKeyLength(alg, ctx) {
  if (alg.length !== 128 && alg.length !== 192 && alg.length !== 256) {
    throw error(ctx, 'an AES key is 128, 192 or 256 bits long', 'OperationError');
  }
  return alg.length;
}

// The AES algorithms' operations; AES-KW wraps and unwraps, the other modes encrypt and
// decrypt.
function aesImpl(name) {
  const impl = {
    generateKey(alg, extractable, usages, ctx) {
      checkUsages(usages, aesUsages(alg.name), `an ${alg.name}`, ctx); // 1.
      aesKeyLength(alg, ctx); // 2.
      const handle = generateSecret(alg.length, ctx); // 3.
      return newKey('secret', extractable, { name: alg.name, length: alg.length }, usages, handle);
    },
    importKey(format, keyData, alg, extractable, usages, ctx) {
      checkUsages(usages, aesUsages(alg.name), `an ${alg.name}`, ctx); // 1.
      const checkLength = (h) => {
        const bits = binding.cryptoKeyLength(h) * 8;
        if (bits !== 128 && bits !== 192 && bits !== 256) {
          throw error(ctx, 'an AES key is 128, 192 or 256 bits long', 'DataError');
        }
        return bits;
      };
      let handle;
      if (format === 'raw') {
        handle = binding.cryptoKeyFromBytes(keyData.bytes);
        checkLength(handle);
      } else if (format === 'jwk') {
        handle = importOctJwk(keyData, (h) => aesJwkAlg(alg.name, checkLength(h)), 'enc', extractable,
          usages, ctx);
      } else {
        throw error(ctx, `an ${alg.name} key cannot be imported from '${format}'`, 'NotSupportedError');
      }
      const length = binding.cryptoKeyLength(handle) * 8;
      return newKey('secret', extractable, { name: alg.name, length }, usages, handle);
    },
    exportKey: exportSecretKey,
    getKeyLength: aesKeyLength,
  };
  if (name === 'AES-KW') {
    impl.wrapKey = (alg, s, bytes, ctx) => operation(binding.cryptoAesKw(true, s.handle, bytes), ctx,
      'AES-KW wraps data of 16 bytes or more, a multiple of 8');
    impl.unwrapKey = (alg, s, bytes, ctx) => operation(binding.cryptoAesKw(false, s.handle, bytes), ctx,
      'AES-KW could not unwrap the key');
  } else {
    impl.encrypt = (alg, s, data, ctx) => aesCipher(true, alg, s, data, ctx);
    impl.decrypt = (alg, s, data, ctx) => aesCipher(false, alg, s, data, ctx);
  }
  return impl;
}
const kAesParams = new SafeMap([['AES-CTR', toAesCtrParams], ['AES-CBC', toAesCbcParams],
  ['AES-GCM', toAesGcmParams]]);
for (const name of ['AES-CTR', 'AES-CBC', 'AES-GCM', 'AES-KW']) {
  const params = { generateKey: toAesLengthParams, importKey: toAlgorithm, 'get key length': toAesLengthParams };
  if (name === 'AES-KW') {
    params.wrapKey = toAlgorithm;
    params.unwrapKey = toAlgorithm;
  } else {
    params.encrypt = kAesParams.get(name);
    params.decrypt = kAesParams.get(name);
  }
  registerAlgorithm(name, params, aesImpl(name));
}

// The most work one PBKDF2 call may ask for: iterations times output blocks (hash lengths).
// PBKDF2 runs on the libuv thread pool, which every app of the process shares (and an isolate
// uses at most two of its threads at once): the bound keeps one call from holding a pool
// thread for more than a few seconds (1,000,000 iterations of one block take 0.2 to 0.5 s here).
const kPbkdf2MaxWork = 10000000;

// PBKDF2 and HKDF: "import key" of raw bytes only, never extractable; "derive bits" (length:
// null or a number of bits).
function kdfImpl(name) {
  return {
    importKey(format, keyData, alg, extractable, usages, ctx) {
      if (format !== 'raw') {
        throw error(ctx, `a ${alg.name} key cannot be imported from '${format}'`, 'NotSupportedError');
      }
      checkUsages(usages, kDeriveUsages, `a ${alg.name}`, ctx);
      if (extractable) throw error(ctx, `a ${alg.name} key cannot be extractable`, 'SyntaxError');
      const handle = binding.cryptoKeyFromBytes(keyData.bytes);
      return newKey('secret', false, { name: alg.name }, usages, handle);
    },
    getKeyLength: () => null,
    deriveBits(alg, s, length, ctx) {
      if (length === null) throw error(ctx, `${alg.name} needs a length`, 'OperationError');
      if (length % 8 !== 0) throw error(ctx, 'the length is not a multiple of 8', 'OperationError');
      const hashId = kHashIds.get(alg.hash);
      if (name === 'PBKDF2') {
        // Its cost is the app's choice: always on the thread pool.
        if (alg.iterations === 0) throw error(ctx, 'PBKDF2 needs at least one iteration', 'OperationError');
        if (alg.iterations * MathCeil(length / kHashBits.get(alg.hash)) > kPbkdf2MaxWork) {
          throw error(ctx, `PBKDF2 of more than ${kPbkdf2MaxWork} iterations times output blocks is not supported`,
            'OperationError');
        }
        return settle(binding.cryptoPbkdf2(hashId, s.handle, alg.salt, alg.iterations, length / 8),
          (bits) => operation(bits, ctx, 'PBKDF2 failed'));
      }
      if (length > 255 * kHashBits.get(alg.hash)) {
        throw error(ctx, 'HKDF cannot derive more than 255 hash lengths', 'OperationError');
      }
      return settle(binding.cryptoHkdf(hashId, s.handle, alg.salt, alg.info, length / 8),
        (bits) => operation(bits, ctx, 'HKDF failed'));
    },
  };
}
registerAlgorithm('PBKDF2', { importKey: toAlgorithm, deriveBits: toPbkdf2Params, 'get key length': toAlgorithm },
  kdfImpl('PBKDF2'));
registerAlgorithm('HKDF', { importKey: toAlgorithm, deriveBits: toHkdfParams, 'get key length': toAlgorithm },
  kdfImpl('HKDF'));

// --- SubtleCrypto -----------------------------------------------------------------------------

// The checks shared by the operations on a key: steps "If the name member of
// normalizedAlgorithm is not equal to the name attribute of the [[algorithm]] internal slot of
// key" and "If the [[usages]] internal slot of key does not contain".
function checkKeyFor(alg, s, usage, ctx) {
  if (alg.name !== s.algorithm.name) {
    throw error(ctx, `the key is a ${s.algorithm.name} key, not ${alg.name}`, 'InvalidAccessError');
  }
  let found = false;
  for (let i = 0; i < s.usages.length; i++) if (s.usages[i] === usage) found = true;
  if (!found) throw error(ctx, `the key's usages do not include '${usage}'`, 'InvalidAccessError');
}

// An algorithm given as an object can run app code while it is normalized, after the spec
// has already copied the data: copy first then. A string cannot, nor an inert dictionary
// (isInertAlgorithm, below); sign, verify and digest read the data only in the native call
// they make before returning (jobs on the thread pool copy it there).
const needsCopy = (algorithm) => isObject(algorithm) && !isInertAlgorithm(algorithm);

// A result that may be a promise, as the promise a method returns.
const toPromise = (v) => (binding.isPromise(v) ? v : PromiseResolve(v));

let isSubtle;
class SubtleCrypto {
  #subtle; // the brand
  constructor(key = undefined) { webidl.illegalConstructor(key, 'SubtleCrypto'); }
  static { isSubtle = (v) => isObject(v) && #subtle in v; }

  encrypt(algorithm, key, data) {
    return cipherMethod(this, arguments, 'encrypt', algorithm, key, data);
  }

  decrypt(algorithm, key, data) {
    return cipherMethod(this, arguments, 'decrypt', algorithm, key, data);
  }

  sign(algorithm, key, data) {
    try {
      const ctx = begin(this, arguments, 3, 'sign');
      algorithm = algorithmIdentifier(algorithm, ctx);
      const s = cryptoKeyArgument(key, ctx);
      data = bufferSource(data, ctx);
      if (needsCopy(algorithm)) data = copyBytes(data);
      const alg = normalizeAlgorithm(algorithm, 'sign', ctx);
      checkKeyFor(alg, s, 'sign', ctx);
      return toPromise(kImpl.get(alg.name).sign(alg, s, data, ctx));
    } catch (e) {
      return PromiseReject(e);
    }
  }

  verify(algorithm, key, signature, data) {
    try {
      const ctx = begin(this, arguments, 4, 'verify');
      algorithm = algorithmIdentifier(algorithm, ctx);
      const s = cryptoKeyArgument(key, ctx);
      signature = bufferSource(signature, ctx);
      data = bufferSource(data, ctx);
      if (needsCopy(algorithm)) {
        signature = copyBytes(signature);
        data = copyBytes(data);
      }
      const alg = normalizeAlgorithm(algorithm, 'verify', ctx);
      checkKeyFor(alg, s, 'verify', ctx);
      return toPromise(kImpl.get(alg.name).verify(alg, s, signature, data, ctx));
    } catch (e) {
      return PromiseReject(e);
    }
  }

  digest(algorithm, data) {
    try {
      const ctx = begin(this, arguments, 2, 'digest');
      algorithm = algorithmIdentifier(algorithm, ctx);
      data = bufferSource(data, ctx);
      if (needsCopy(algorithm)) data = copyBytes(data);
      const alg = normalizeAlgorithm(algorithm, 'digest', ctx);
      return toPromise(settle(binding.cryptoDigest(kHashIds.get(alg.name), data),
        (d) => operation(d, ctx, 'the digest failed')));
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
      return toPromise(settle(kImpl.get(alg.name).generateKey(alg, extractable, usages, ctx), (result) => {
        // A secret or private key with no usages is a SyntaxError.
        const s = slotsOf(result);
        if (s !== undefined ? s.usages.length === 0 : slotsOf(result.privateKey).usages.length === 0) {
          throw error(ctx, `a ${s !== undefined ? 'secret' : 'private'} key needs at least one usage`, 'SyntaxError');
        }
        return result;
      }));
    } catch (e) {
      return PromiseReject(e);
    }
  }

  deriveKey(algorithm, baseKey, derivedKeyType, extractable, keyUsages) {
    try {
      const ctx = begin(this, arguments, 5, 'deriveKey');
      algorithm = algorithmIdentifier(algorithm, ctx);
      const s = cryptoKeyArgument(baseKey, ctx);
      derivedKeyType = algorithmIdentifier(derivedKeyType, ctx);
      extractable = webidl.boolean(extractable);
      const usages = keyUsageList(keyUsages, ctx);
      const alg = normalizeAlgorithm(algorithm, 'deriveBits', ctx); // 2.
      const importAlg = normalizeAlgorithm(derivedKeyType, 'importKey', ctx); // 4.
      const lengthAlg = normalizeAlgorithm(derivedKeyType, 'get key length', ctx); // 6.
      checkKeyFor(alg, s, 'deriveKey', ctx); // 11.-12.
      const length = kImpl.get(lengthAlg.name).getKeyLength(lengthAlg, ctx); // 13.
      return toPromise(settle(kImpl.get(alg.name).deriveBits(alg, s, length, ctx), (secret) => // 14.
        importKeyFor('raw', { __proto__: null, bytes: secret }, importAlg, extractable, usages, ctx))); // 15.-16.
    } catch (e) {
      return PromiseReject(e);
    }
  }

  deriveBits(algorithm, baseKey, length = null) {
    try {
      const ctx = begin(this, arguments, 2, 'deriveBits');
      algorithm = algorithmIdentifier(algorithm, ctx);
      const s = cryptoKeyArgument(baseKey, ctx);
      // optional unsigned long? length = null
      if (length !== null && length !== undefined) length = webidl.unsignedLong(length, undefined, `${ctx}: length`);
      else length = null;
      const alg = normalizeAlgorithm(algorithm, 'deriveBits', ctx);
      checkKeyFor(alg, s, 'deriveBits', ctx);
      return toPromise(kImpl.get(alg.name).deriveBits(alg, s, length, ctx));
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
      return PromiseResolve(importKeyFor(format, data, alg, extractable, usages, ctx));
    } catch (e) {
      return PromiseReject(e);
    }
  }

  exportKey(format, key) {
    try {
      const ctx = begin(this, arguments, 2, 'exportKey');
      format = enumValue(format, kKeyFormats, `${ctx}: format`);
      const s = cryptoKeyArgument(key, ctx);
      return PromiseResolve(exportKeyFor(format, s, ctx));
    } catch (e) {
      return PromiseReject(e);
    }
  }

  wrapKey(format, key, wrappingKey, wrapAlgorithm) {
    try {
      const ctx = begin(this, arguments, 4, 'wrapKey');
      format = enumValue(format, kKeyFormats, `${ctx}: format`);
      const s = cryptoKeyArgument(key, ctx);
      const w = cryptoKeyArgument(wrappingKey, ctx);
      wrapAlgorithm = algorithmIdentifier(wrapAlgorithm, ctx);
      const alg = normalizeWrap(wrapAlgorithm, 'wrapKey', 'encrypt', ctx); // 2.-3.
      checkKeyFor(alg, w, 'wrapKey', ctx); // 8.-9.
      const exported = exportKeyFor(format, s, ctx); // 10.-12.
      const bytes = format === 'jwk' ? jwkJson(exported) : exported; // 13.
      const impl = kImpl.get(alg.name); // 14.-15. wrap if the algorithm can, else encrypt
      return toPromise(impl.wrapKey !== undefined ? impl.wrapKey(alg, w, bytes, ctx)
        : impl.encrypt(alg, w, bytes, ctx));
    } catch (e) {
      return PromiseReject(e);
    }
  }

  unwrapKey(format, wrappedKey, unwrappingKey, unwrapAlgorithm, unwrappedKeyAlgorithm,
    extractable, keyUsages) {
    try {
      const ctx = begin(this, arguments, 7, 'unwrapKey');
      format = enumValue(format, kKeyFormats, `${ctx}: format`);
      wrappedKey = bufferSource(wrappedKey, ctx);
      const w = cryptoKeyArgument(unwrappingKey, ctx);
      unwrapAlgorithm = algorithmIdentifier(unwrapAlgorithm, ctx);
      unwrappedKeyAlgorithm = algorithmIdentifier(unwrappedKeyAlgorithm, ctx);
      extractable = webidl.boolean(extractable);
      const usages = keyUsageList(keyUsages, ctx);
      wrappedKey = copyBytes(wrappedKey); // 3.
      const alg = normalizeWrap(unwrapAlgorithm, 'unwrapKey', 'decrypt', ctx); // 4.-5.
      const importAlg = normalizeAlgorithm(unwrappedKeyAlgorithm, 'importKey', ctx); // 6.
      checkKeyFor(alg, w, 'unwrapKey', ctx); // 11.-12.
      const impl = kImpl.get(alg.name); // 13.-14. unwrap if the algorithm can, else decrypt
      const bytes = impl.unwrapKey !== undefined ? impl.unwrapKey(alg, w, wrappedKey, ctx)
        : impl.decrypt(alg, w, wrappedKey, ctx);
      return toPromise(settle(bytes, (key) => {
        let data;
        if (format === 'jwk') { // 15. parse a JWK
          let parsed;
          try {
            parsed = JSONParse(binding.utf8Decode(new Uint8Array(key), false, false)[0]);
          } catch {
            throw error(ctx, 'the unwrapped key is not JSON', 'DataError');
          }
          if (!isObject(parsed)) throw error(ctx, 'the unwrapped key is not a JSON object', 'DataError');
          data = { __proto__: null, jwk: jsonWebKey(parsed, ctx) };
        } else {
          data = { __proto__: null, bytes: key };
        }
        return importKeyFor(format, data, importAlg, extractable, usages, ctx); // 16.-18.
      }));
    } catch (e) {
      return PromiseReject(e);
    }
  }
}
webidl.configureInterface(SubtleCrypto);
defineGlobal('SubtleCrypto', SubtleCrypto);

// The brand check and argument count every method starts with; returns the error context.
function begin(self, args, required, method) {
  if (!isSubtle(self)) throw webidl.illegalInvocation(`SubtleCrypto.${method}`);
  const ctx = context(method);
  webidl.argCount(args, required, ctx);
  return ctx;
}

// Every member an algorithm dictionary of this file and the next two reads (besides name),
// and the members of those an algorithm's dictionaries read, by name and by lower-case name
// (others: all of them).
const kAlgorithmMembers = ['hash', 'iv', 'additionalData', 'tagLength', 'counter', 'length',
  'label', 'salt', 'info', 'iterations', 'modulusLength', 'publicExponent', 'saltLength',
  'namedCurve', 'public', 'context'];
const kMembersOf = new SafeMap();
for (const [name, members] of [['SHA-1', []], ['SHA-256', []], ['SHA-384', []], ['SHA-512', []],
  ['HMAC', ['hash', 'length']], ['AES-CBC', ['iv', 'length']], ['AES-CTR', ['counter', 'length']],
  ['AES-GCM', ['additionalData', 'iv', 'tagLength', 'length']], ['ECDSA', ['hash', 'namedCurve']],
  ['Ed25519', []], ['Ed448', ['context']]]) {
  kMembersOf.set(name, members);
  kMembersOf.set(asciiLower(name), members);
}

// Whether a member of alg (not a Proxy) is certainly read without running app code: absent
// (then not on Object.prototype either, when that is alg's prototype) or an own data
// property; its value through *value.
function inertMember(alg, proto, m, value) {
  if (!ObjectPrototypeHasOwnProperty(alg, m)) {
    value[0] = undefined;
    return proto === null || !ObjectPrototypeHasOwnProperty(ObjectPrototype, m);
  }
  const d = ObjectGetOwnPropertyDescriptor(alg, m);
  value[0] = d.value;
  return d.get === undefined && d.set === undefined;
}

// Whether normalizing alg (an object) certainly runs no app code: no Proxy, no getter, no
// conversion that could call toString or valueOf. It is an ordinary object whose prototype is
// Object.prototype or null, its name an own data property holding a string, and each member
// its algorithm's dictionaries read (kMembersOf) absent (from Object.prototype too) or an own
// data property whose value is a primitive other than a symbol, a BufferSource (not a Proxy),
// or for hash such an object itself. Then the spec's copy of the data before normalizing
// equals one made after.
function isInertAlgorithm(alg, depth = 0) {
  if (binding.isProxy(alg)) return false;
  const proto = ObjectGetPrototypeOf(alg);
  if (proto !== ObjectPrototype && proto !== null) return false;
  const value = [undefined];
  if (!inertMember(alg, proto, 'name', value) || typeof value[0] !== 'string') return false;
  const members = kMembersOf.get(value[0]) ?? kMembersOf.get(asciiLower(value[0])) ?? kAlgorithmMembers;
  for (let i = 0; i < members.length; i++) {
    const m = members[i];
    if (!inertMember(alg, proto, m, value)) return false;
    const v = value[0];
    if (typeof v === 'symbol') return false;
    if (!isObject(v)) continue;
    if (ArrayBufferIsView(v) || isArrayBuffer(v)) continue;
    if (m === 'hash' && depth === 0 && isInertAlgorithm(v, 1)) continue;
    return false;
  }
  return true;
}

// The algorithms whose encrypt and decrypt read the data only in the native call they make
// before returning (the thread pool's jobs copy it there).
const kReadsDataNow = new SafeSet(['AES-CBC', 'AES-CTR', 'AES-GCM']);
// Data from this long is worth checking isInertAlgorithm to spare its copy.
const kSpareCopyBytes = 8192;

// The byte length of a BufferSource, 0 when its buffer is detached.
function byteLengthOf(v) {
  if (!ArrayBufferIsView(v)) return binding.isDetached(v) ? 0 : ArrayBufferPrototypeGetByteLength(v);
  if (binding.isDetached(viewBuffer(v))) return 0;
  return TypedArrayPrototypeGetSymbolToStringTag(v) !== undefined
    ? TypedArrayPrototypeGetByteLength(v) : DataViewPrototypeGetByteLength(v);
}

// encrypt and decrypt (the steps are the same but for the operation). Step 3's copy of the
// data is observable only when normalizing the algorithm (step 4) can run app code that
// changes the data, and only if the operation reads the data after the call returns: for
// large data with an inert algorithm dictionary (isInertAlgorithm) it is made only when the
// algorithm turns out not to be one of kReadsDataNow, which read it once, in the call.
function cipherMethod(self, args, op, algorithm, key, data) {
  try {
    const ctx = begin(self, args, 3, op);
    algorithm = algorithmIdentifier(algorithm, ctx);
    const s = cryptoKeyArgument(key, ctx);
    data = bufferSource(data, ctx);
    const spared = byteLengthOf(data) >= kSpareCopyBytes &&
      (!isObject(algorithm) || isInertAlgorithm(algorithm));
    if (!spared) data = copyBytes(data); // 3.
    const alg = normalizeAlgorithm(algorithm, op, ctx); // 4.
    if (spared && !kReadsDataNow.has(alg.name)) data = copyBytes(data); // the same bytes as at 3.
    checkKeyFor(alg, s, op, ctx); // 8.-9.
    return toPromise(kImpl.get(alg.name)[op](alg, s, data, ctx));
  } catch (e) {
    return PromiseReject(e);
  }
}

// importKey's steps after normalization: the key data's type for the format, the
// algorithm's import, and "a secret or private key needs a usage".
function importKeyFor(format, data, alg, extractable, usages, ctx) {
  if (format === 'jwk') {
    if (data.jwk === undefined) throw new TypeError(`${ctx}: jwk key data must be a JsonWebKey`);
  } else if (data.bytes === undefined) {
    throw new TypeError(`${ctx}: ${format} key data must be a BufferSource`);
  }
  const key = kImpl.get(alg.name).importKey(format, data, alg, extractable, usages, ctx);
  const type = slotsOf(key).type;
  if ((type === 'secret' || type === 'private') && usages.length === 0) {
    throw error(ctx, `a ${type} key needs at least one usage`, 'SyntaxError');
  }
  return key;
}

// exportKey steps 6.-: the key's algorithm supports export, the key is extractable.
function exportKeyFor(format, s, ctx) {
  const impl = kImpl.get(s.algorithm.name);
  if (impl === undefined || impl.exportKey === undefined) {
    throw error(ctx, `${s.algorithm.name} keys cannot be exported`, 'NotSupportedError');
  }
  if (!s.extractable) throw error(ctx, 'the key is not extractable', 'InvalidAccessError');
  return impl.exportKey(format, s, ctx);
}

// wrapKey / unwrapKey: "normalize for op; if that is a NotSupportedError, for fallback".
function normalizeWrap(alg, op, fallback, ctx) {
  try {
    return normalizeAlgorithm(alg, op, ctx);
  } catch (e) {
    if (!isDOMException(e) || e.name !== 'NotSupportedError') throw e;
    return normalizeAlgorithm(alg, fallback, ctx);
  }
}

const subtle = new SubtleCrypto(webidl.kIllegalConstructor);
setCryptoSubtle(subtle);

ObjectAssign(internal, {
  // What the algorithm files after this one (26_webcrypto_rsa.js, 27_webcrypto_ec.js) use.
  webcrypto: {
    registerAlgorithm, newKey, slotsOf, error, operation, settle, checkUsages, checkJwk,
    usagesArray, setOf, copyBytes, bufferSource, bufferMember, hashMember, requiredInt,
    algorithmName, toAlgorithm, kHashIds, kHashBits,
  },
  isCryptoKey, cloneCryptoKey, // for structuredClone
});
