// 26_webcrypto_rsa.js: RSASSA-PKCS1-v1_5, RSA-PSS and RSA-OAEP for crypto.subtle (W3C Web
// Cryptography API, Level 2 editor's draft, §20-22): generateKey, importKey / exportKey in
// spki, pkcs8 and jwk, sign / verify, encrypt / decrypt (and so wrapKey / unwrapKey through
// them). The spec's steps and errors are here; OpenSSL does the numbers (runtime/crypto_rsa.cc).
//
// Takes from binding: cryptoRsa* (crypto_rsa.cc), cryptoPkeyImportDer, cryptoPkeyType,
// cryptoPkeyExportDer, cryptoPkeyPublic, cryptoKeyFromBase64url (crypto.cc), isSharedArrayBuffer.
// Gives: the three algorithms, registered with 25_webcrypto.js.
//
// Key generation runs on the libuv thread pool (a 4096-bit key takes seconds), and so do
// signatures and OAEP of a MiB or more or with a key longer than 4096 bits (their natives then
// return a promise); the rest runs on the isolate's thread.
'use strict';

const {
  ArrayBufferIsView, ArrayPrototypePush, SafeMap, SafeSet, TypeError, TypedArrayPrototypeGetBuffer,
  TypedArrayPrototypeGetSymbolToStringTag, Uint8Array,
} = primordials;
const { webidl, webcrypto } = internal;
const {
  registerAlgorithm, newKey, error, operation, settle, checkUsages, checkJwk, usagesArray,
  copyBytes, bufferMember, hashMember, requiredInt, algorithmName, kHashIds,
} = webcrypto; // 25_webcrypto.js

// --- WebIDL dictionaries --------------------------------------------------------------------

// typedef Uint8Array BigInteger (no [AllowShared]): a required member, held as a copy.
function bigIntegerMember(alg, member, ctx) {
  const v = alg[member];
  if (v === undefined) throw new TypeError(`${ctx}: the algorithm has no ${member}`);
  if (!ArrayBufferIsView(v) || TypedArrayPrototypeGetSymbolToStringTag(v) !== 'Uint8Array') {
    throw new TypeError(`${ctx}: algorithm.${member} is not a Uint8Array`);
  }
  if (binding.isSharedArrayBuffer(TypedArrayPrototypeGetBuffer(v))) {
    throw new TypeError(`${ctx}: algorithm.${member} is on a SharedArrayBuffer`);
  }
  return copyBytes(v);
}

// RsaHashedKeyGenParams: RsaKeyGenParams' required [EnforceRange] unsigned long modulusLength
// and required BigInteger publicExponent, then required HashAlgorithmIdentifier hash.
function toRsaHashedKeyGenParams(alg, ctx) {
  const name = algorithmName(alg, ctx);
  const modulusLength = requiredInt(alg, 'modulusLength', webidl.unsignedLong, ctx);
  const publicExponent = bigIntegerMember(alg, 'publicExponent', ctx);
  return { __proto__: null, name, modulusLength, publicExponent, hash: hashMember(alg, ctx) };
}
// RsaHashedImportParams: required HashAlgorithmIdentifier hash.
const toRsaHashedImportParams = (alg, ctx) => ({ __proto__: null, name: algorithmName(alg, ctx),
  hash: hashMember(alg, ctx) });
// RsaPssParams: required [EnforceRange] unsigned long saltLength.
const toRsaPssParams = (alg, ctx) => ({ __proto__: null, name: algorithmName(alg, ctx),
  saltLength: requiredInt(alg, 'saltLength', webidl.unsignedLong, ctx) });
// RsaOaepParams: BufferSource label.
const toRsaOaepParams = (alg, ctx) => ({ __proto__: null, name: algorithmName(alg, ctx),
  label: bufferMember(alg, 'label', ctx, false) });
const toAlgorithm = (alg, ctx) => ({ __proto__: null, name: algorithmName(alg, ctx) });

// --- what the three algorithms share ----------------------------------------------------------

// The moduli generateKey makes: a multiple of 8 bits from 1024 (shorter keys are breakable)
// to 8192. Generation runs on the thread pool every app shares: a 4096-bit key takes about 4 s
// here and an 8192-bit one tens of seconds (Chromium allows up to 16384, which takes minutes);
// imported keys may be up to 16384 bits (OpenSSL's limit).
const kMinModulusLength = 1024;
const kMaxModulusLength = 8192;

// The public exponent of generateKey as a number: odd, from 3 to 2^32 - 1 (what OpenSSL can
// generate with; 65537 is the usual one), else undefined.
function exponentValue(bytes) {
  let e = 0;
  for (let i = 0; i < bytes.length; i++) {
    e = e * 256 + bytes[i];
    if (e > 0xffffffff) return undefined;
  }
  return e >= 3 && e % 2 === 1 ? e : undefined;
}

// The usages of a list that a set allows, in the list's order.
function usagesIn(usages, allowed) {
  const out = [];
  for (let i = 0; i < usages.length; i++) if (allowed.has(usages[i])) ArrayPrototypePush(out, usages[i]);
  return out;
}

// JWK "alg" per hash (JWA §3.3, §3.5, §4.3; "RS1", "PS1" are WebCrypto's; "RSA-OAEP" is SHA-1).
const kJwkAlgs = {
  'RSASSA-PKCS1-v1_5': new SafeMap([['SHA-1', 'RS1'], ['SHA-256', 'RS256'], ['SHA-384', 'RS384'],
    ['SHA-512', 'RS512']]),
  'RSA-PSS': new SafeMap([['SHA-1', 'PS1'], ['SHA-256', 'PS256'], ['SHA-384', 'PS384'],
    ['SHA-512', 'PS512']]),
  'RSA-OAEP': new SafeMap([['SHA-1', 'RSA-OAEP'], ['SHA-256', 'RSA-OAEP-256'],
    ['SHA-384', 'RSA-OAEP-384'], ['SHA-512', 'RSA-OAEP-512']]),
};
// The inverse, per algorithm: JWK "alg" -> hash.
const kJwkAlgHashes = {};
for (const name of ['RSASSA-PKCS1-v1_5', 'RSA-PSS', 'RSA-OAEP']) {
  const inverse = new SafeMap();
  for (const hash of ['SHA-1', 'SHA-256', 'SHA-384', 'SHA-512']) inverse.set(kJwkAlgs[name].get(hash), hash);
  kJwkAlgHashes[name] = inverse;
}

const kSignPublic = new SafeSet(['verify']);
const kSignPrivate = new SafeSet(['sign']);
const kSignAll = new SafeSet(['sign', 'verify']);
const kOaepPublic = new SafeSet(['encrypt', 'wrapKey']);
const kOaepPrivate = new SafeSet(['decrypt', 'unwrapKey']);
const kOaepAll = new SafeSet(['encrypt', 'decrypt', 'wrapKey', 'unwrapKey']);

// The JWK members of a private key beyond d: JWA §6.3.2 lets a producer leave all of them out
// (n, e and d alone), but OpenSSL (like BoringSSL, hence Chromium) needs the CRT numbers, so
// each is required.
const kJwkPrivate = ['p', 'q', 'dp', 'dq', 'qi'];

// A JWK member's number as a key buffer (wiped when collected); DataError when it is missing or
// not base64url.
function jwkNumber(jwk, member, ctx) {
  const text = jwk[member];
  if (text === undefined) throw error(ctx, `the JWK has no ${member}`, 'DataError');
  const bytes = binding.cryptoKeyFromBase64url(text);
  if (bytes === null) throw error(ctx, `the JWK's ${member} is not base64url`, 'DataError');
  return bytes;
}

function rsaImpl(name) {
  const isOaep = name === 'RSA-OAEP';
  const publicUsages = isOaep ? kOaepPublic : kSignPublic;
  const privateUsages = isOaep ? kOaepPrivate : kSignPrivate;
  const what = `an ${name}`;
  const jwkAlgs = kJwkAlgs[name];

  // A key's [[algorithm]]: RsaHashedKeyAlgorithm.
  const keyAlgorithm = (modulusLength, publicExponent, hash) => ({ __proto__: null, name,
    modulusLength, publicExponent, hash });

  // A handle made from spki or pkcs8 DER: an RSA key (the rsaEncryption OID: an
  // id-RSASSA-PSS key is a DataError, as the spec says for every RSA algorithm) that
  // cryptoRsaInfo accepts. Returns { handle, info }.
  function importDer(isPrivate, bytes, ctx) {
    const format = isPrivate ? 'pkcs8' : 'spki';
    const handle = binding.cryptoPkeyImportDer(isPrivate, bytes);
    if (handle === null) throw error(ctx, `the data is not a DER ${format} key`, 'DataError');
    if (binding.cryptoPkeyType(handle) !== 'RSA') {
      throw error(ctx, `the ${format} key is not an RSA key (rsaEncryption)`, 'DataError');
    }
    return { handle, info: rsaInfo(handle, isPrivate, ctx) };
  }
  function rsaInfo(handle, isPrivate, ctx) {
    return operation(binding.cryptoRsaInfo(handle, isPrivate), ctx,
      'the key is not a usable RSA key (two primes, a 512- to 16384-bit modulus, consistent numbers)',
      'DataError');
  }

  function importJwk(jwk, extractable, usages, ctx) {
    const isPrivate = jwk.d !== undefined;
    const type = isPrivate ? 'private' : 'public';
    checkUsages(usages, isPrivate ? privateUsages : publicUsages, `a ${type} ${name}`, ctx); // 2.
    checkJwk(jwk, 'RSA', isOaep ? 'enc' : 'sig', extractable, usages, ctx); // 3.-6.
    if (jwk.alg !== undefined) { // 7.-8.
      const hash = kJwkAlgHashes[name].get(jwk.alg);
      if (hash === undefined) throw error(ctx, `the JWK's alg '${jwk.alg}' is not one of ${name}`, 'DataError');
      return hash;
    }
    return undefined;
  }

  return {
    generateKey(alg, extractable, usages, ctx) {
      checkUsages(usages, isOaep ? kOaepAll : kSignAll, what, ctx); // 1.
      const bits = alg.modulusLength;
      if (bits < kMinModulusLength || bits > kMaxModulusLength || bits % 8 !== 0) {
        throw error(ctx, 'the modulusLength is not a multiple of 8 from ' +
          `${kMinModulusLength} to ${kMaxModulusLength}`, 'OperationError');
      }
      const e = exponentValue(alg.publicExponent);
      if (e === undefined) throw error(ctx, 'the publicExponent is not odd, from 3 to 2^32 - 1', 'OperationError');
      const publicKeyUsages = usagesIn(usages, publicUsages);
      const privateKeyUsages = usagesIn(usages, privateUsages);
      // SubtleCrypto.generateKey's check, before the seconds a key can take (nothing else can
      // fail after this point but the generation itself).
      if (privateKeyUsages.length === 0) throw error(ctx, 'a private key needs at least one usage', 'SyntaxError');
      return settle(binding.cryptoRsaGenerate(bits, e), (handle) => { // 2.
        operation(handle, ctx, 'the RSA key could not be generated');
        const publicHandle = operation(binding.cryptoPkeyPublic(handle), ctx, 'the RSA key could not be generated');
        const algorithm = keyAlgorithm(bits, alg.publicExponent, alg.hash); // 3.-7.
        return {
          publicKey: newKey('public', true, algorithm, publicKeyUsages, publicHandle), // 8.-13.
          privateKey: newKey('private', extractable, algorithm, privateKeyUsages, handle), // 14.-18.
        };
      });
    },

    importKey(format, keyData, alg, extractable, usages, ctx) {
      let handle, info, type;
      if (format === 'spki') {
        checkUsages(usages, publicUsages, `a public ${name}`, ctx);
        ({ handle, info } = importDer(false, keyData.bytes, ctx));
        type = 'public';
      } else if (format === 'pkcs8') {
        checkUsages(usages, privateUsages, `a private ${name}`, ctx);
        ({ handle, info } = importDer(true, keyData.bytes, ctx));
        type = 'private';
      } else if (format === 'jwk') {
        const jwk = keyData.jwk;
        const hash = importJwk(jwk, extractable, usages, ctx);
        if (hash !== undefined && hash !== alg.hash) { // 9.
          throw error(ctx, `the JWK's alg '${jwk.alg}' is not for ${alg.hash}`, 'DataError');
        }
        if (jwk.oth !== undefined) {
          throw error(ctx, 'RSA keys of more than two primes (oth) are not supported', 'NotSupportedError');
        }
        // 10. JWA §6.3.1 (n, e) and §6.3.2 (d and the CRT numbers).
        const n = jwkNumber(jwk, 'n', ctx);
        const e = jwkNumber(jwk, 'e', ctx);
        if (jwk.d !== undefined) {
          const d = jwkNumber(jwk, 'd', ctx);
          const crt = [];
          for (let i = 0; i < kJwkPrivate.length; i++) {
            ArrayPrototypePush(crt, jwkNumber(jwk, kJwkPrivate[i], ctx));
          }
          handle = binding.cryptoRsaFromJwk(n, e, d, crt[0], crt[1], crt[2], crt[3], crt[4]);
          type = 'private';
        } else {
          handle = binding.cryptoRsaFromJwk(n, e);
          type = 'public';
        }
        operation(handle, ctx,
          'the JWK is not a usable RSA key (a 512- to 16384-bit modulus, consistent numbers)', 'DataError');
        info = rsaInfo(handle, false, ctx); // cryptoRsaFromJwk has checked the private numbers
      } else {
        throw error(ctx, `${what} key cannot be imported from '${format}'`, 'NotSupportedError');
      }
      const algorithm = keyAlgorithm(info[0], new Uint8Array(info[1]), alg.hash);
      return newKey(type, extractable, algorithm, usages, handle);
    },

    exportKey(format, s, ctx) {
      if (format === 'spki' || format === 'pkcs8') {
        const isPrivate = format === 'pkcs8';
        if (s.type !== (isPrivate ? 'private' : 'public')) {
          throw error(ctx, `a ${s.type} key cannot be exported as '${format}'`, 'InvalidAccessError');
        }
        return operation(binding.cryptoPkeyExportDer(isPrivate, s.handle), ctx, 'the key could not be encoded');
      }
      if (format === 'jwk') {
        const isPrivate = s.type === 'private';
        const v = operation(binding.cryptoRsaExportJwk(s.handle, isPrivate), ctx, 'the key could not be exported');
        // A JsonWebKey converted to JS: its present members in lexicographic order.
        const jwk = { alg: jwkAlgs.get(s.algorithm.hash) };
        if (isPrivate) {
          jwk.d = v[2];
          jwk.dp = v[5];
          jwk.dq = v[6];
        }
        jwk.e = v[1];
        jwk.ext = s.extractable;
        jwk.key_ops = usagesArray(s);
        jwk.kty = 'RSA';
        jwk.n = v[0];
        if (isPrivate) {
          jwk.p = v[3];
          jwk.q = v[4];
          jwk.qi = v[7];
        }
        return jwk;
      }
      throw error(ctx, `${what} key cannot be exported as '${format}'`, 'NotSupportedError');
    },
  };
}

const hashId = (s) => kHashIds.get(s.algorithm.hash);

function signImpl(name) {
  const impl = rsaImpl(name);
  const isPss = name === 'RSA-PSS';
  impl.sign = (alg, s, data, ctx) => {
    if (s.type !== 'private') throw error(ctx, 'only a private key can sign', 'InvalidAccessError');
    const salt = isPss ? alg.saltLength : undefined;
    return settle(binding.cryptoRsaSign(s.handle, hashId(s), salt, data), (sig) => operation(sig, ctx,
      isPss ? 'the salt is too long for the key and hash' : 'the key is too short for the hash'));
  };
  impl.verify = (alg, s, signature, data, ctx) => {
    if (s.type !== 'public') throw error(ctx, 'only a public key can verify', 'InvalidAccessError');
    // null only when a thread-pool job was refused (the isolate has too many waiting).
    const salt = isPss ? alg.saltLength : undefined;
    return settle(binding.cryptoRsaVerify(s.handle, hashId(s), salt, signature, data),
      (ok) => operation(ok, ctx, 'the verification could not run'));
  };
  return impl;
}

const oaepImpl = rsaImpl('RSA-OAEP');
oaepImpl.encrypt = (alg, s, data, ctx) => {
  if (s.type !== 'public') throw error(ctx, 'only a public key can encrypt', 'InvalidAccessError');
  return settle(binding.cryptoRsaOaep(true, s.handle, hashId(s), alg.label, data),
    (c) => operation(c, ctx, 'the data is too long for RSA-OAEP with this key and hash'));
};
oaepImpl.decrypt = (alg, s, data, ctx) => {
  if (s.type !== 'private') throw error(ctx, 'only a private key can decrypt', 'InvalidAccessError');
  return settle(binding.cryptoRsaOaep(false, s.handle, hashId(s), alg.label, data),
    (m) => operation(m, ctx, 'the data could not be decrypted'));
};

const kKeyParams = { generateKey: toRsaHashedKeyGenParams, importKey: toRsaHashedImportParams };
registerAlgorithm('RSASSA-PKCS1-v1_5', { ...kKeyParams, sign: toAlgorithm, verify: toAlgorithm },
  signImpl('RSASSA-PKCS1-v1_5'));
registerAlgorithm('RSA-PSS', { ...kKeyParams, sign: toRsaPssParams, verify: toRsaPssParams },
  signImpl('RSA-PSS'));
registerAlgorithm('RSA-OAEP', { ...kKeyParams, encrypt: toRsaOaepParams, decrypt: toRsaOaepParams },
  oaepImpl);
