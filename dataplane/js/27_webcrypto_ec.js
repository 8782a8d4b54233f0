// 27_webcrypto_ec.js: the elliptic-curve algorithms of crypto.subtle: ECDSA and ECDH on P-256,
// P-384 and P-521 (W3C Web Cryptography API, Level 2 editor's draft, §23 and §24), Ed25519,
// X25519, Ed448 and X448 (Secure Curves in the Web Cryptography API, draft). Each registers its
// operations with 25_webcrypto.js; runtime/crypto_ec.cc does the bytes on OpenSSL 3.
//
// Takes from binding: cryptoEc*, cryptoOkp*, cryptoEcdsa*, cryptoEd*, cryptoPkeyCheck
// (crypto_ec.cc); cryptoPkeyImportDer, cryptoPkeyExportDer, cryptoPkeyType, cryptoPkeyPublic,
// cryptoKeyFromBase64url, cryptoKeyToBase64url (crypto.cc).
// Gives: nothing; the algorithms are reached through crypto.subtle.
//
// A key's handle is an EVP_PKEY; [[algorithm]] is { name, namedCurve } for ECDSA and ECDH,
// { name } for the others. Every operation runs synchronously (microseconds).
'use strict';

const {
  ArrayBufferPrototypeGetByteLength, SafeMap, SafeSet, TypeError, TypedArrayPrototypeGetBuffer,
  TypedArrayPrototypeSet, Uint8Array,
} = primordials;
const { webidl, webcrypto } = internal;
const {
  registerAlgorithm, newKey, slotsOf, error, operation, settle, checkUsages, checkJwk, usagesArray,
  bufferMember, hashMember, algorithmName, toAlgorithm, kHashIds,
} = webcrypto; // 25_webcrypto.js

// --- WebIDL dictionaries --------------------------------------------------------------------

// EcKeyGenParams and EcKeyImportParams: required NamedCurve (DOMString) namedCurve.
function toEcKeyParams(alg, ctx) {
  const name = algorithmName(alg, ctx);
  const namedCurve = alg.namedCurve;
  if (namedCurve === undefined) throw new TypeError(`${ctx}: the algorithm has no namedCurve`);
  return { __proto__: null, name, namedCurve: webidl.DOMString(namedCurve, `${ctx}: algorithm.namedCurve`) };
}
// EcdsaParams: required HashAlgorithmIdentifier hash.
const toEcdsaParams = (alg, ctx) => ({ __proto__: null, name: algorithmName(alg, ctx),
  hash: hashMember(alg, ctx) });
// EcdhKeyDeriveParams (and the Secure Curves' use of it for X25519 and X448): required
// CryptoKey public; held as the key's internal slots.
function toEcdhKeyDeriveParams(alg, ctx) {
  const name = algorithmName(alg, ctx);
  const pub = alg.public;
  if (pub === undefined) throw new TypeError(`${ctx}: the algorithm has no public`);
  const s = slotsOf(pub);
  if (s === undefined) throw new TypeError(`${ctx}: algorithm.public is not a CryptoKey`);
  return { __proto__: null, name, public: s };
}
// Ed448Params: BufferSource context.
const toEd448Params = (alg, ctx) => ({ __proto__: null, name: algorithmName(alg, ctx),
  context: bufferMember(alg, 'context', ctx, false) });

// --- shared ---------------------------------------------------------------------------------

// The curves of ECDSA and ECDH: the JWK alg of an ECDSA key on each (JWA §3.4) and the length
// in bytes of a coordinate. (Records rather than arrays here and below: destructuring an array
// calls Array.prototype[Symbol.iterator], which an app may have replaced.)
const kCurves = new SafeMap([['P-256', { __proto__: null, jwkAlg: 'ES256', bytes: 32 }],
  ['P-384', { __proto__: null, jwkAlg: 'ES384', bytes: 48 }],
  ['P-521', { __proto__: null, jwkAlg: 'ES512', bytes: 66 }]]);
// The OKP algorithms (RFC 8037): the length in bytes of a public and of a private key.
const kOkpLengths = new SafeMap([['Ed25519', 32], ['X25519', 32], ['Ed448', 57], ['X448', 56]]);

const kSign = new SafeSet(['sign']);
const kVerify = new SafeSet(['verify']);
const kSignVerify = new SafeSet(['sign', 'verify']);
const kDerive = new SafeSet(['deriveKey', 'deriveBits']);
const kNone = new SafeSet();

// The usages of an algorithm's keys: of a private key, a public key, and of either.
const kDeriveUsages = { __proto__: null, priv: kDerive, pub: kNone, all: kDerive };
const kSignUsages = { __proto__: null, priv: kSign, pub: kVerify, all: kSignVerify };
function usagesOf(name) {
  return name === 'ECDH' || name === 'X25519' || name === 'X448' ? kDeriveUsages : kSignUsages;
}

// The usages in list that are also in allowed.
function intersect(list, allowed) {
  const out = [];
  for (let i = 0; i < list.length; i++) if (allowed.has(list[i])) out[out.length] = list[i];
  return out;
}

function concat(a, b) {
  const out = new Uint8Array(a.length + b.length);
  TypedArrayPrototypeSet(out, a, 0);
  TypedArrayPrototypeSet(out, b, a.length);
  return out;
}

// A JWK member decoded from base64url (RFC 7515 §2) into a key buffer (wiped when freed), which
// must be len bytes long.
function jwkBytes(jwk, member, len, ctx) {
  const text = jwk[member];
  if (text === undefined) throw error(ctx, `the JWK has no ${member}`, 'DataError');
  const bytes = binding.cryptoKeyFromBase64url(text);
  if (bytes === null) throw error(ctx, `the JWK's ${member} is not base64url`, 'DataError');
  if (ArrayBufferPrototypeGetByteLength(bytes) !== len) {
    throw error(ctx, `the JWK's ${member} is not ${len} bytes long`, 'DataError');
  }
  return bytes;
}

// The bytes [start, start + len) of an ArrayBuffer, as a new ArrayBuffer.
function slice(buffer, start, len) {
  const out = new Uint8Array(len);
  TypedArrayPrototypeSet(out, new Uint8Array(buffer, start, len));
  return TypedArrayPrototypeGetBuffer(out);
}

// A key pair of a generated private key handle: the public key has only the public half, is
// always extractable and gets the usages a public key can have.
function keyPair(handle, algorithm, extractable, usages, ctx) {
  const { priv, pub } = usagesOf(algorithm.name);
  const pubHandle = operation(binding.cryptoPkeyPublic(handle), ctx, 'the key could not be generated');
  // Each key gets its own copy of the [[algorithm]] record.
  const publicKey = newKey('public', true, { __proto__: null, ...algorithm }, intersect(usages, pub), pubHandle);
  const privateKey = newKey('private', extractable, { __proto__: null, ...algorithm }, intersect(usages, priv),
    handle);
  return { publicKey, privateKey };
}

// spki and pkcs8 import: the DER structure (null: DataError) and its type.
function importDer(format, bytes, type, ctx) {
  const isPrivate = format === 'pkcs8';
  const handle = binding.cryptoPkeyImportDer(isPrivate, bytes);
  if (handle === null) throw error(ctx, `the key data is not a valid ${format} structure`, 'DataError');
  if (binding.cryptoPkeyType(handle) !== type) throw error(ctx, `the key is not an ${type} key`, 'DataError');
  if (!binding.cryptoPkeyCheck(isPrivate, handle)) throw error(ctx, 'the key is not valid', 'DataError');
  return handle;
}

// exportKey: the key's type must be the format's.
function checkExportType(format, s, ctx) {
  const want = format === 'pkcs8' || (format === 'jwk' && s.type === 'private') ? 'private' : 'public';
  if (s.type !== want) throw error(ctx, `a ${s.type} key cannot be exported as '${format}'`, 'InvalidAccessError');
}

function exportDer(format, s, ctx) {
  return operation(binding.cryptoPkeyExportDer(format === 'pkcs8', s.handle), ctx, 'the key could not be encoded');
}

// The usages check of import: a private key (pkcs8, a JWK with d) may have the private
// usages, a public key (spki, raw, a JWK without d) the public ones.
function checkImportUsages(name, isPrivate, usages, ctx) {
  const { priv, pub } = usagesOf(name);
  checkUsages(usages, isPrivate ? priv : pub, `a ${isPrivate ? 'private' : 'public'} ${name}`, ctx);
}

// Derive bits steps shared by ECDH, X25519 and X448: the public key's checks, the shared secret,
// then its first length bits.
function deriveBits(alg, s, length, ctx) {
  const pub = alg.public;
  if (pub.type !== 'public') throw error(ctx, 'the public member is not a public key', 'InvalidAccessError');
  if (pub.algorithm.name !== s.algorithm.name) {
    throw error(ctx, `the public key is a ${pub.algorithm.name} key, not ${s.algorithm.name}`, 'InvalidAccessError');
  }
  if (pub.algorithm.namedCurve !== s.algorithm.namedCurve) {
    throw error(ctx, 'the public key is on another curve', 'InvalidAccessError');
  }
  const secret = operation(binding.cryptoEcDerive(s.handle, pub.handle), ctx,
    s.algorithm.name === 'ECDH' ? 'the key agreement failed'
      : 'the shared secret is all zeros (a small-order public key)');
  if (length === null) return secret;
  const bits = ArrayBufferPrototypeGetByteLength(secret) * 8;
  if (length > bits) throw error(ctx, `the shared secret has only ${bits} bits`, 'OperationError');
  const n = (length + 7) >> 3;
  const out = new Uint8Array(secret, 0, n);
  const copy = new Uint8Array(n);
  TypedArrayPrototypeSet(copy, out);
  if (length % 8 !== 0) copy[n - 1] &= (0xff << (8 - (length % 8))) & 0xff;
  return TypedArrayPrototypeGetBuffer(copy);
}

// --- ECDSA and ECDH (§23, §24) ----------------------------------------------------------------

function ecImpl(name) {
  const isEcdsa = name === 'ECDSA';
  const kAll = usagesOf(name).all;

  // generateKey's unsupported curve is a NotSupportedError, importKey's a DataError.
  function curveOf(alg, ctx, name = 'DataError') {
    const c = kCurves.get(alg.namedCurve);
    if (c === undefined) throw error(ctx, `the curve '${alg.namedCurve}' is not supported`, name);
    return c;
  }

  // JWK import (§23.7 / §24.4 import key, "jwk").
  function importJwk(jwk, alg, extractable, usages, ctx) {
    const isPrivate = jwk.d !== undefined;
    checkImportUsages(name, isPrivate, usages, ctx); // 2.1.
    checkJwk(jwk, 'EC', isEcdsa ? 'sig' : 'enc', extractable, usages, ctx); // 2.2.-2.5.
    if (jwk.crv !== alg.namedCurve) throw error(ctx, "the JWK's crv is not the namedCurve", 'DataError'); // 2.6.
    const curve = curveOf(alg, ctx);
    const jwkAlg = curve.jwkAlg, n = curve.bytes;
    if (isEcdsa && jwk.alg !== undefined && jwk.alg !== jwkAlg) { // 2.7. (ECDH ignores alg)
      throw error(ctx, `the JWK's alg '${jwk.alg}' is not ${jwkAlg}`, 'DataError');
    }
    const x = new Uint8Array(jwkBytes(jwk, 'x', n, ctx));
    const y = new Uint8Array(jwkBytes(jwk, 'y', n, ctx));
    const uncompressed = new Uint8Array(1);
    uncompressed[0] = 4;
    const point = concat(concat(uncompressed, x), y);
    const d = isPrivate ? jwkBytes(jwk, 'd', n, ctx) : undefined;
    const handle = binding.cryptoEcImport(alg.namedCurve, point, d);
    if (handle === null) throw error(ctx, 'the JWK is not a valid key of its curve', 'DataError');
    return { __proto__: null, handle, isPrivate };
  }

  return {
    // §23.7 / §24.4 generate key
    generateKey(alg, extractable, usages, ctx) {
      checkUsages(usages, kAll, `an ${name}`, ctx); // 1.
      curveOf(alg, ctx, 'NotSupportedError'); // 2.
      const handle = operation(binding.cryptoEcGenerate(alg.namedCurve), ctx, 'the key could not be generated');
      return keyPair(handle, { name, namedCurve: alg.namedCurve }, extractable, usages, ctx);
    },

    // §23.7 / §24.4 import key
    importKey(format, keyData, alg, extractable, usages, ctx) {
      let handle, isPrivate;
      if (format === 'jwk') {
        ({ handle, isPrivate } = importJwk(keyData.jwk, alg, extractable, usages, ctx));
      } else if (format === 'spki' || format === 'pkcs8') {
        isPrivate = format === 'pkcs8';
        checkImportUsages(name, isPrivate, usages, ctx);
        handle = importDer(format, keyData.bytes, 'EC', ctx);
        const curve = binding.cryptoEcCurve(handle);
        if (curve === 'other') throw error(ctx, 'the key is not on a supported curve', 'DataError');
        if (curve !== alg.namedCurve) throw error(ctx, `the key is on ${curve}, not ${alg.namedCurve}`, 'DataError');
      } else if (format === 'raw') {
        isPrivate = false;
        checkImportUsages(name, false, usages, ctx);
        curveOf(alg, ctx);
        handle = binding.cryptoEcImport(alg.namedCurve, keyData.bytes, undefined);
        if (handle === null) throw error(ctx, `the key data is not a point of ${alg.namedCurve}`, 'DataError');
      } else {
        throw error(ctx, `an ${name} key cannot be imported from '${format}'`, 'NotSupportedError');
      }
      return newKey(isPrivate ? 'private' : 'public', extractable, { name, namedCurve: alg.namedCurve },
        usages, handle);
    },

    // §23.7 / §24.4 export key
    exportKey(format, s, ctx) {
      if (format === 'spki' || format === 'pkcs8') {
        checkExportType(format, s, ctx);
        return exportDer(format, s, ctx);
      }
      if (format === 'raw') {
        checkExportType(format, s, ctx);
        return operation(binding.cryptoEcExport(false, s.handle), ctx, 'the key could not be encoded');
      }
      if (format === 'jwk') {
        const point = operation(binding.cryptoEcExport(false, s.handle), ctx, 'the key could not be encoded');
        const n = (ArrayBufferPrototypeGetByteLength(point) - 1) / 2;
        const jwk = { crv: s.algorithm.namedCurve };
        if (s.type === 'private') {
          const d = operation(binding.cryptoEcExport(true, s.handle), ctx, 'the key could not be encoded');
          jwk.d = binding.cryptoKeyToBase64url(d);
        }
        jwk.ext = s.extractable;
        jwk.key_ops = usagesArray(s);
        jwk.kty = 'EC';
        jwk.x = binding.cryptoKeyToBase64url(slice(point, 1, n));
        jwk.y = binding.cryptoKeyToBase64url(slice(point, 1 + n, n));
        return jwk;
      }
      throw error(ctx, `an ${name} key cannot be exported as '${format}'`, 'NotSupportedError');
    },

    // §23.7 sign: the ECDSA signature of the data's digest, r || s.
    sign(alg, s, data, ctx) {
      if (s.type !== 'private') throw error(ctx, 'ECDSA signs with a private key', 'InvalidAccessError');
      return settle(binding.cryptoEcdsaSign(kHashIds.get(alg.hash), s.handle, data),
        (sig) => operation(sig, ctx, 'ECDSA failed'));
    },
    // §23.7 verify: false for any malformed signature.
    verify(alg, s, signature, data, ctx) {
      if (s.type !== 'public') throw error(ctx, 'ECDSA verifies with a public key', 'InvalidAccessError');
      return settle(binding.cryptoEcdsaVerify(kHashIds.get(alg.hash), s.handle, signature, data),
        (ok) => operation(ok, ctx, 'ECDSA failed'));
    },
    deriveBits(alg, s, length, ctx) {
      if (s.type !== 'private') throw error(ctx, 'ECDH derives with a private key', 'InvalidAccessError');
      return deriveBits(alg, s, length, ctx);
    },
  };
}

registerAlgorithm('ECDSA', { sign: toEcdsaParams, verify: toEcdsaParams, generateKey: toEcKeyParams,
  importKey: toEcKeyParams }, ecImpl('ECDSA'));
registerAlgorithm('ECDH', { generateKey: toEcKeyParams, importKey: toEcKeyParams,
  deriveBits: toEcdhKeyDeriveParams }, ecImpl('ECDH'));

// --- Ed25519, Ed448, X25519, X448 (Secure Curves) ---------------------------------------------

function okpImpl(name) {
  const isEd = name === 'Ed25519' || name === 'Ed448';
  const kAll = usagesOf(name).all;
  const keyLength = kOkpLengths.get(name);

  // JWK import (RFC 8037 §2: kty OKP, crv, x, d).
  function importJwk(jwk, extractable, usages, ctx) {
    const isPrivate = jwk.d !== undefined;
    checkImportUsages(name, isPrivate, usages, ctx);
    if (jwk.kty !== 'OKP') throw error(ctx, "the JWK's kty is not 'OKP'", 'DataError');
    if (jwk.crv !== name) throw error(ctx, `the JWK's crv is not '${name}'`, 'DataError');
    if (isEd && jwk.alg !== undefined && jwk.alg !== name && jwk.alg !== 'EdDSA') {
      throw error(ctx, `the JWK's alg '${jwk.alg}' is not '${name}' or 'EdDSA'`, 'DataError');
    }
    checkJwk(jwk, 'OKP', isEd ? 'sig' : 'enc', extractable, usages, ctx);
    const x = jwkBytes(jwk, 'x', keyLength, ctx);
    if (!isPrivate) {
      const handle = binding.cryptoOkpImport(name, false, x);
      if (handle === null) throw error(ctx, `the JWK is not a valid ${name} key`, 'DataError');
      return { __proto__: null, handle, isPrivate: false };
    }
    const handle = binding.cryptoOkpImport(name, true, jwkBytes(jwk, 'd', keyLength, ctx));
    if (handle === null) throw error(ctx, `the JWK is not a valid ${name} key`, 'DataError');
    // The public key the JWK gives must be the private key's.
    const pub = new Uint8Array(operation(binding.cryptoOkpExport(false, handle), ctx, 'the key is not valid'));
    const given = new Uint8Array(x);
    let diff = 0;
    for (let i = 0; i < keyLength; i++) diff |= pub[i] ^ given[i];
    if (diff !== 0) throw error(ctx, "the JWK's x is not the public key of its d", 'DataError');
    return { __proto__: null, handle, isPrivate: true };
  }

  const impl = {
    generateKey(alg, extractable, usages, ctx) {
      checkUsages(usages, kAll, `an ${name}`, ctx);
      const handle = operation(binding.cryptoEcGenerate(name), ctx, 'the key could not be generated');
      return keyPair(handle, { name }, extractable, usages, ctx);
    },

    importKey(format, keyData, alg, extractable, usages, ctx) {
      let handle, isPrivate;
      if (format === 'jwk') {
        ({ handle, isPrivate } = importJwk(keyData.jwk, extractable, usages, ctx));
      } else if (format === 'spki' || format === 'pkcs8') {
        isPrivate = format === 'pkcs8';
        checkImportUsages(name, isPrivate, usages, ctx);
        handle = importDer(format, keyData.bytes, name, ctx);
      } else if (format === 'raw') {
        isPrivate = false;
        checkImportUsages(name, false, usages, ctx);
        handle = binding.cryptoOkpImport(name, false, keyData.bytes);
        if (handle === null) throw error(ctx, `a raw ${name} public key is ${keyLength} bytes long`, 'DataError');
      } else {
        throw error(ctx, `an ${name} key cannot be imported from '${format}'`, 'NotSupportedError');
      }
      return newKey(isPrivate ? 'private' : 'public', extractable, { name }, usages, handle);
    },

    exportKey(format, s, ctx) {
      if (format === 'spki' || format === 'pkcs8') {
        checkExportType(format, s, ctx);
        return exportDer(format, s, ctx);
      }
      if (format === 'raw') {
        checkExportType(format, s, ctx);
        return operation(binding.cryptoOkpExport(false, s.handle), ctx, 'the key could not be encoded');
      }
      if (format === 'jwk') {
        const jwk = {};
        if (isEd) jwk.alg = name;
        jwk.crv = name;
        if (s.type === 'private') {
          const d = operation(binding.cryptoOkpExport(true, s.handle), ctx, 'the key could not be encoded');
          jwk.d = binding.cryptoKeyToBase64url(d);
        }
        jwk.ext = s.extractable;
        jwk.key_ops = usagesArray(s);
        jwk.kty = 'OKP';
        jwk.x = binding.cryptoKeyToBase64url(operation(binding.cryptoOkpExport(false, s.handle), ctx,
          'the key could not be encoded'));
        return jwk;
      }
      throw error(ctx, `an ${name} key cannot be exported as '${format}'`, 'NotSupportedError');
    },
  };
  if (isEd) {
    impl.sign = (alg, s, data, ctx) => {
      if (s.type !== 'private') throw error(ctx, `${name} signs with a private key`, 'InvalidAccessError');
      checkContext(alg, ctx);
      return settle(binding.cryptoEdSign(s.handle, data), (sig) => operation(sig, ctx, `${name} failed`));
    };
    impl.verify = (alg, s, signature, data, ctx) => {
      if (s.type !== 'public') throw error(ctx, `${name} verifies with a public key`, 'InvalidAccessError');
      checkContext(alg, ctx);
      return settle(binding.cryptoEdVerify(s.handle, signature, data),
        (ok) => operation(ok, ctx, `${name} failed`));
    };
  } else {
    impl.deriveBits = (alg, s, length, ctx) => {
      if (s.type !== 'private') throw error(ctx, `${name} derives with a private key`, 'InvalidAccessError');
      return deriveBits(alg, s, length, ctx);
    };
  }
  return impl;
}

// Ed448's context (RFC 8032 §5.2): only the empty one, which OpenSSL 3.0 can sign with.
function checkContext(alg, ctx) {
  if (alg.context !== undefined && alg.context.length !== 0) {
    throw error(ctx, 'an Ed448 context is not supported', 'NotSupportedError');
  }
}

registerAlgorithm('Ed25519', { sign: toAlgorithm, verify: toAlgorithm, generateKey: toAlgorithm,
  importKey: toAlgorithm }, okpImpl('Ed25519'));
registerAlgorithm('Ed448', { sign: toEd448Params, verify: toEd448Params, generateKey: toAlgorithm,
  importKey: toAlgorithm }, okpImpl('Ed448'));
registerAlgorithm('X25519', { generateKey: toAlgorithm, importKey: toAlgorithm,
  deriveBits: toEcdhKeyDeriveParams }, okpImpl('X25519'));
registerAlgorithm('X448', { generateKey: toAlgorithm, importKey: toAlgorithm,
  deriveBits: toEcdhKeyDeriveParams }, okpImpl('X448'));
