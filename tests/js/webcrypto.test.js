// crypto.subtle (W3C Web Cryptography API): digest, HMAC, CryptoKey, algorithm normalization
// and the spec's errors. Known answers are typed in from FIPS 180-4's examples, RFC 4231
// (HMAC-SHA-256/384/512) and RFC 2202 (HMAC-SHA-1).
import { test, assert, assertEquals, assertStrictEquals, assertThrows, fail } from "nano:test";

const subtle = crypto.subtle;
const utf8 = (s) => new TextEncoder().encode(s);
const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");
const fill = (byte, n) => new Uint8Array(n).fill(byte);

// The promise rejects with a DOMException of that name (or, for "TypeError", a TypeError).
async function rejectsWith(promise, name) {
  assert(promise instanceof Promise, "the method returns a promise");
  try {
    await promise;
  } catch (e) {
    if (name === "TypeError") {
      assert(e instanceof TypeError, `expected a TypeError, got ${e}`);
    } else {
      assert(e instanceof DOMException, `expected a DOMException ${name}, got ${e}`);
      assertEquals(e.name, name, e.message);
    }
    return e;
  }
  fail(`expected a rejection with ${name}`);
}

const hmacKey = (bytes, hash, usages = ["sign", "verify"], extractable = false) =>
  subtle.importKey("raw", bytes, { name: "HMAC", hash }, extractable, usages);

test("crypto.subtle is a SubtleCrypto from a getter on Crypto.prototype, the same object each time", () => {
  assert(subtle instanceof SubtleCrypto);
  assertStrictEquals(crypto.subtle, subtle);
  const desc = Object.getOwnPropertyDescriptor(Crypto.prototype, "subtle");
  assert(typeof desc.get === "function" && desc.set === undefined && desc.enumerable);
  assertThrows(() => desc.get.call({}), TypeError);
  assertEquals(Object.prototype.toString.call(subtle), "[object SubtleCrypto]");
  for (const m of ["encrypt", "decrypt", "sign", "verify", "digest", "generateKey", "deriveKey",
    "deriveBits", "importKey", "exportKey", "wrapKey", "unwrapKey"]) {
    assertEquals(typeof SubtleCrypto.prototype[m], "function", m);
  }
  assertEquals([SubtleCrypto.prototype.digest.length, SubtleCrypto.prototype.importKey.length,
    SubtleCrypto.prototype.deriveBits.length, SubtleCrypto.prototype.unwrapKey.length], [2, 5, 2, 7]);
});

test("SubtleCrypto and CryptoKey cannot be constructed by apps", () => {
  assertThrows(() => new SubtleCrypto(), TypeError, "Illegal constructor");
  assertThrows(() => new CryptoKey(), TypeError, "Illegal constructor");
  assertThrows(() => { class K extends CryptoKey {} new K(); }, TypeError, "Illegal constructor");
});

test("digest: FIPS 180-4 examples for SHA-1, SHA-256, SHA-384, SHA-512", async () => {
  const abc = {
    "SHA-1": "a9993e364706816aba3e25717850c26c9cd0d89d",
    "SHA-256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    "SHA-384": "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
    "SHA-512": "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
  };
  const empty = {
    "SHA-1": "da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "SHA-256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "SHA-384": "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b",
    "SHA-512": "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
  };
  for (const name of Object.keys(abc)) {
    const out = await subtle.digest(name, utf8("abc"));
    assert(out instanceof ArrayBuffer, "an ArrayBuffer");
    assertEquals(hex(out), abc[name], name);
    assertEquals(hex(await subtle.digest({ name }, new ArrayBuffer(0))), empty[name], name);
  }
  assertEquals(hex(await subtle.digest("SHA-256", utf8("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))),
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
});

test("digest: names match case-insensitively; any BufferSource is read at its offset", async () => {
  const want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  assertEquals(hex(await subtle.digest("sha-256", utf8("abc"))), want);
  assertEquals(hex(await subtle.digest({ name: "Sha-256" }, utf8("abc").buffer)), want);
  const big = utf8("xxabcyy");
  assertEquals(hex(await subtle.digest("SHA-256", new DataView(big.buffer, 2, 3))), want);
  assertEquals(hex(await subtle.digest("SHA-256", big.subarray(2, 5))), want);
  // U+212A KELVIN SIGN lowercases to "k" in Unicode, but names match ASCII-case-insensitively.
  await rejectsWith(subtle.digest("SHA-256\u212A", utf8("abc")), "NotSupportedError");
});

test("digest of a detached buffer is the digest of no bytes (WebIDL: a copy of its bytes)", async () => {
  const empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  for (const alg of ["SHA-256", { name: "SHA-256" }]) {
    const buf = new ArrayBuffer(8);
    const view = new DataView(buf, 2, 4);
    structuredClone(buf, { transfer: [buf] });
    assertEquals(hex(await subtle.digest(alg, view)), empty);
    assertEquals(hex(await subtle.digest(alg, buf)), empty);
  }
});

test("digest copies the data before normalizing the algorithm, which can run app code", async () => {
  const data = utf8("abc");
  const alg = { get name() { data[0] = 0x78; return "SHA-256"; } };
  assertEquals(hex(await subtle.digest(alg, data)),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  assertEquals(data[0], 0x78);
});

// RFC 4231 §4.2-4.8 (case 5, truncated output, does not apply: WebCrypto gives the whole MAC).
const rfc4231 = [
  { key: fill(0x0b, 20), data: utf8("Hi There"),
    "SHA-256": "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
    "SHA-384": "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6",
    "SHA-512": "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854" },
  { key: utf8("Jefe"), data: utf8("what do ya want for nothing?"),
    "SHA-256": "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    "SHA-384": "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649",
    "SHA-512": "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737" },
  { key: fill(0xaa, 20), data: fill(0xdd, 50),
    "SHA-256": "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
    "SHA-384": "88062608d3e6ad8a0aa2ace014c8a86f0aa635d947ac9febe83ef4e55966144b2a5ab39dc13814b94e3ab6e101a34f27",
    "SHA-512": "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb" },
  { key: Uint8Array.from({ length: 25 }, (_, i) => i + 1), data: fill(0xcd, 50),
    "SHA-256": "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
    "SHA-384": "3e8a69b7783c25851933ab6290af6ca77a9981480850009cc5577c6e1f573b4e6801dd23c4a7d679ccf8a386c674cffb",
    "SHA-512": "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3dba91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd" },
  { key: fill(0xaa, 131), data: utf8("Test Using Larger Than Block-Size Key - Hash Key First"),
    "SHA-256": "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    "SHA-384": "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c60c2ef6ab4030fe8296248df163f44952",
    "SHA-512": "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f3526b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598" },
  { key: fill(0xaa, 131),
    data: utf8("This is a test using a larger than block-size key and a larger than block-size data. " +
      "The key needs to be hashed before being used by the HMAC algorithm."),
    "SHA-256": "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
    "SHA-384": "6617178e941f020d351e2f254e8fd32c602420feb0b8fb9adccebb82461e99c5a678cc31e799176d3860e6110c46523e",
    "SHA-512": "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58" },
];

test("HMAC: RFC 4231 test cases 1-4, 6 and 7 sign and verify", async () => {
  for (const [i, tc] of rfc4231.entries()) {
    for (const hash of ["SHA-256", "SHA-384", "SHA-512"]) {
      const what = `case ${i < 4 ? i + 1 : i + 2} ${hash}`;
      const key = await hmacKey(tc.key, hash);
      const mac = await subtle.sign("HMAC", key, tc.data);
      assert(mac instanceof ArrayBuffer, what);
      assertEquals(hex(mac), tc[hash], what);
      assertStrictEquals(await subtle.verify({ name: "hmac" }, key, mac, tc.data), true, what);
      const bad = new Uint8Array(mac);
      bad[bad.length - 1] ^= 1;
      assertStrictEquals(await subtle.verify("HMAC", key, bad, tc.data), false, what);
      assertStrictEquals(await subtle.verify("HMAC", key, new Uint8Array(mac).subarray(1), tc.data), false, what);
    }
  }
});

test("HMAC: RFC 2202 HMAC-SHA-1 test cases 1 and 2", async () => {
  const k1 = await hmacKey(fill(0x0b, 20), "SHA-1");
  assertEquals(hex(await subtle.sign("HMAC", k1, utf8("Hi There"))), "b617318655057264e28bc0b6fb378c8ef146be00");
  const k2 = await hmacKey(utf8("Jefe"), { name: "sha-1" });
  assertEquals(hex(await subtle.sign("HMAC", k2, utf8("what do ya want for nothing?"))),
    "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
});

test("Hono-style use: importKey of a TextEncoder secret, sign, digest", async () => {
  const secret = "Jefe";
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
  const sig = await crypto.subtle.sign("HMAC", key, new TextEncoder().encode("what do ya want for nothing?"));
  assertEquals(hex(sig), rfc4231[1]["SHA-256"]);
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode("abc"));
  assert(d instanceof ArrayBuffer && d.byteLength === 32);
});

test("CryptoKey: type, extractable, algorithm and usages, cached and normalized", async () => {
  const key = await hmacKey(utf8("Jefe"), { name: "sHa-384" }, ["verify", "sign", "verify"], true);
  assert(key instanceof CryptoKey);
  assertEquals(Object.prototype.toString.call(key), "[object CryptoKey]");
  assertEquals([key.type, key.extractable], ["secret", true]);
  assertEquals(key.algorithm, { name: "HMAC", hash: { name: "SHA-384" }, length: 32 });
  assertStrictEquals(key.algorithm, key.algorithm);
  assertEquals(key.usages, ["sign", "verify"]);
  assertStrictEquals(key.usages, key.usages);
  // The cached objects are the app's: changing them changes nothing the key does.
  key.algorithm.hash.name = "SHA-1";
  key.usages.length = 0;
  assertEquals(hex(await subtle.sign("HMAC", key, utf8("what do ya want for nothing?"))), rfc4231[1]["SHA-384"]);
  const getter = Object.getOwnPropertyDescriptor(CryptoKey.prototype, "type").get;
  assertThrows(() => getter.call({}), TypeError);
});

test("HMAC generateKey: default lengths, explicit length, round trips through raw and jwk", async () => {
  for (const [hash, bits] of [["SHA-1", 512], ["SHA-256", 512], ["SHA-384", 1024], ["SHA-512", 1024]]) {
    const key = await subtle.generateKey({ name: "HMAC", hash }, true, ["sign", "verify"]);
    assertEquals(key.algorithm, { name: "HMAC", hash: { name: hash }, length: bits });
    const raw = await subtle.exportKey("raw", key);
    assertEquals(raw.byteLength, bits / 8);
    const jwk = await subtle.exportKey("jwk", key);
    assertEquals(Object.keys(jwk), ["alg", "ext", "k", "key_ops", "kty"]);
    assertEquals([jwk.kty, jwk.alg, jwk.ext, jwk.key_ops], ["oct", `HS${hash.slice(4)}`, true, ["sign", "verify"]]);
    assert(/^[A-Za-z0-9_-]+$/.test(jwk.k), "base64url without padding");
    const data = utf8("round trip");
    const mac = await subtle.sign("HMAC", key, data);
    const fromRaw = await subtle.importKey("raw", raw, { name: "HMAC", hash }, false, ["verify"]);
    const fromJwk = await subtle.importKey("jwk", jwk, { name: "HMAC", hash }, false, ["verify"]);
    assert(await subtle.verify("HMAC", fromRaw, mac, data), `${hash} raw`);
    assert(await subtle.verify("HMAC", fromJwk, mac, data), `${hash} jwk`);
  }
  const short = await subtle.generateKey({ name: "HMAC", hash: "SHA-256", length: 100 }, true, ["sign"]);
  assertEquals(short.algorithm.length, 100);
  const raw = new Uint8Array(await subtle.exportKey("raw", short));
  assertEquals([raw.length, raw[12] & 0x0f], [13, 0]);
  const a = hex(await subtle.exportKey("raw", await subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, true, ["sign"])));
  const b = hex(await subtle.exportKey("raw", await subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, true, ["sign"])));
  assert(a !== b, "generated keys are random");
});

test("HMAC jwk import: a JWK typed from RFC 4231 case 2 signs as the raw key does", async () => {
  const jwk = { kty: "oct", k: "SmVmZQ", alg: "HS256", use: "sig", key_ops: ["sign", "verify"], ext: true };
  const key = await subtle.importKey("jwk", jwk, { name: "HMAC", hash: "SHA-256" }, true, ["sign"]);
  assertEquals(hex(await subtle.sign("HMAC", key, utf8("what do ya want for nothing?"))), rfc4231[1]["SHA-256"]);
  assertEquals(await subtle.exportKey("jwk", key), { alg: "HS256", ext: true, k: "SmVmZQ", key_ops: ["sign"], kty: "oct" });
  assertEquals(hex(await subtle.exportKey("raw", key)), "4a656665");
  // A 1-byte and a 2-byte tail: base64url's short groups.
  for (const [k, bytes] of [["_w", "ff"], ["_-8", "ffef"], ["AAEC", "000102"]]) {
    const key2 = await subtle.importKey("jwk", { kty: "oct", k }, { name: "HMAC", hash: "SHA-1" }, true, ["sign"]);
    assertEquals(hex(await subtle.exportKey("raw", key2)), bytes, k);
  }
});

test("HMAC import length: at most the key's bits and more than its bits less 8", async () => {
  const bytes = fill(7, 4);
  const ok = await subtle.importKey("raw", bytes, { name: "HMAC", hash: "SHA-256", length: 25 }, true, ["sign"]);
  assertEquals(ok.algorithm.length, 25);
  await rejectsWith(subtle.importKey("raw", bytes, { name: "HMAC", hash: "SHA-256", length: 33 }, true, ["sign"]), "DataError");
  await rejectsWith(subtle.importKey("raw", bytes, { name: "HMAC", hash: "SHA-256", length: 24 }, true, ["sign"]), "DataError");
  await rejectsWith(subtle.importKey("raw", new Uint8Array(0), { name: "HMAC", hash: "SHA-256" }, true, ["sign"]), "DataError");
  await rejectsWith(subtle.generateKey({ name: "HMAC", hash: "SHA-256", length: 0 }, true, ["sign"]), "OperationError");
  await rejectsWith(subtle.generateKey({ name: "HMAC", hash: "SHA-256", length: -1 }, true, ["sign"]), "TypeError");
});

test("misuse: usages, extractability and key checks reject with the spec's errors", async () => {
  const key = await hmacKey(utf8("k"), "SHA-256", ["verify"]);
  await rejectsWith(hmacKey(utf8("k"), "SHA-256", ["encrypt"]), "SyntaxError");
  await rejectsWith(hmacKey(utf8("k"), "SHA-256", []), "SyntaxError");
  await rejectsWith(subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, true, []), "SyntaxError");
  await rejectsWith(subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, true, ["sign", "deriveBits"]), "SyntaxError");
  await rejectsWith(hmacKey(utf8("k"), "SHA-256", ["sign", "bogus"]), "TypeError");
  await rejectsWith(subtle.sign("HMAC", key, utf8("x")), "InvalidAccessError");
  const signOnly = await hmacKey(utf8("k"), "SHA-256", ["sign"]);
  await rejectsWith(subtle.verify("HMAC", signOnly, new Uint8Array(32), utf8("x")), "InvalidAccessError");
  await rejectsWith(subtle.exportKey("raw", key), "InvalidAccessError");
  await rejectsWith(subtle.exportKey("jwk", key), "InvalidAccessError");
  const extractable = await hmacKey(utf8("k"), "SHA-256", ["sign"], true);
  await rejectsWith(subtle.exportKey("spki", extractable), "NotSupportedError");
  await rejectsWith(subtle.exportKey("pkcs8", extractable), "NotSupportedError");
  await rejectsWith(subtle.exportKey("der", extractable), "TypeError");
  await rejectsWith(subtle.importKey("spki", utf8("k"), { name: "HMAC", hash: "SHA-256" }, true, ["sign"]), "NotSupportedError");
  await rejectsWith(subtle.sign("HMAC", { type: "secret" }, utf8("x")), "TypeError");
  await rejectsWith(subtle.sign("HMAC", signOnly, "not bytes"), "TypeError");
  await rejectsWith(subtle.sign("HMAC", signOnly, new Uint8Array(new SharedArrayBuffer(4))), "TypeError");
  await rejectsWith(subtle.digest("SHA-256", new SharedArrayBuffer(4)), "TypeError");
});

test("bad JWKs reject with DataError, a JWK/bytes mix-up with TypeError", async () => {
  const alg = { name: "HMAC", hash: "SHA-256" };
  const good = { kty: "oct", k: "SmVmZQ" };
  const imp = (jwk, extractable = false, usages = ["sign"]) => subtle.importKey("jwk", jwk, alg, extractable, usages);
  await imp(good);
  for (const [what, jwk, extractable, usages] of [
    ["kty RSA", { ...good, kty: "RSA" }], ["no kty", { k: "SmVmZQ" }], ["no k", { kty: "oct" }],
    ["alg for another hash", { ...good, alg: "HS512" }], ["alg HS1 for SHA-256", { ...good, alg: "HS1" }],
    ["use enc", { ...good, use: "enc" }], ["key_ops lacks sign", { ...good, key_ops: ["verify"] }],
    ["key_ops repeats", { ...good, key_ops: ["sign", "sign"] }], ["ext false", { ...good, ext: false }, true],
    ["k with padding", { kty: "oct", k: "SmVmZQ==" }], ["k in base64", { kty: "oct", k: "a+b/" }],
    ["k of impossible length", { kty: "oct", k: "SmVmZ" }], ["k with a space", { kty: "oct", k: "SmVm ZQ" }],
    ["empty k", { kty: "oct", k: "" }],
  ]) {
    const e = await rejectsWith(imp(jwk, extractable, usages), "DataError");
    assert(e.message.length > 0, what);
  }
  await rejectsWith(subtle.importKey("raw", good, alg, false, ["sign"]), "TypeError");
  await rejectsWith(subtle.importKey("jwk", utf8("k"), alg, false, ["sign"]), "TypeError");
  await rejectsWith(subtle.importKey("jwk", "SmVmZQ", alg, false, ["sign"]), "TypeError");
  await rejectsWith(subtle.importKey("jwk", { ...good, key_ops: "sign" }, alg, false, ["sign"]), "TypeError");
});

test("unknown and not-yet-supported algorithms reject with NotSupportedError", async () => {
  const key = await hmacKey(utf8("k"), "SHA-256", ["sign", "verify"], true);
  const bytes = utf8("x");
  await rejectsWith(subtle.digest("MD5", bytes), "NotSupportedError");
  await rejectsWith(subtle.digest("SHA-3", bytes), "NotSupportedError");
  await rejectsWith(subtle.digest("HMAC", bytes), "NotSupportedError");
  await rejectsWith(hmacKey(utf8("k"), "MD5"), "NotSupportedError");
  await rejectsWith(subtle.sign("SHA-256", key, bytes), "NotSupportedError");
  for (const name of ["AES-GCM", "AES-CBC", "AES-CTR", "AES-KW", "RSA-OAEP", "RSA-PSS",
    "RSASSA-PKCS1-v1_5", "ECDSA", "ECDH", "Ed25519", "X25519", "PBKDF2", "HKDF"]) {
    await rejectsWith(subtle.importKey("raw", bytes, name, true, ["sign"]), "NotSupportedError");
    await rejectsWith(subtle.generateKey({ name, hash: "SHA-256" }, true, ["sign"]), "NotSupportedError");
    await rejectsWith(subtle.encrypt({ name }, key, bytes), "NotSupportedError");
    await rejectsWith(subtle.decrypt(name, key, bytes), "NotSupportedError");
    await rejectsWith(subtle.deriveBits(name, key, 128), "NotSupportedError");
    await rejectsWith(subtle.deriveKey(name, key, "HMAC", true, ["sign"]), "NotSupportedError");
    await rejectsWith(subtle.wrapKey("raw", key, key, name), "NotSupportedError");
    await rejectsWith(subtle.unwrapKey("raw", bytes, key, name, "HMAC", true, ["sign"]), "NotSupportedError");
  }
  // HMAC itself encrypts, derives and wraps nothing.
  await rejectsWith(subtle.encrypt("HMAC", key, bytes), "NotSupportedError");
  await rejectsWith(subtle.wrapKey("raw", key, key, "HMAC"), "NotSupportedError");
  // An algorithm without a name is a WebIDL TypeError before any name lookup.
  await rejectsWith(subtle.encrypt({}, key, bytes), "TypeError");
  await rejectsWith(subtle.digest({ nam: "SHA-256" }, bytes), "TypeError");
  await rejectsWith(subtle.importKey("raw", bytes, { name: "HMAC" }, true, ["sign"]), "TypeError");
  await rejectsWith(subtle.encrypt("AES-GCM", {}, bytes), "TypeError");
});

test("every method returns a promise and never throws synchronously", async () => {
  for (const m of ["encrypt", "decrypt", "sign", "verify", "digest", "generateKey", "deriveKey",
    "deriveBits", "importKey", "exportKey", "wrapKey", "unwrapKey"]) {
    await rejectsWith(subtle[m](), "TypeError");
    await rejectsWith(SubtleCrypto.prototype[m].call({}, "SHA-256", utf8("x")), "TypeError");
  }
  const throwing = { get name() { throw new RangeError("from a getter"); } };
  const p = subtle.digest(throwing, utf8("x"));
  try { await p; fail("resolved"); } catch (e) { assert(e instanceof RangeError); }
});

test("patched globals and prototypes do not break crypto.subtle", async () => {
  const saved = {
    then: Promise.prototype.then, includes: Array.prototype.includes, push: Array.prototype.push,
    slice: ArrayBuffer.prototype.slice,
    lower: String.prototype.toLowerCase, has: Set.prototype.has, get: Map.prototype.get,
  };
  let pk, pd, ps;
  const mac4231 = new Uint8Array(rfc4231[1]["SHA-256"].match(/../g).map((h) => parseInt(h, 16)));
  try {
    Promise.prototype.then = function () { throw new Error("patched then"); };
    Array.prototype.includes = () => { throw new Error("patched includes"); };
    Array.prototype.push = () => { throw new Error("patched push"); };
    ArrayBuffer.prototype.slice = () => { throw new Error("patched slice"); };
    String.prototype.toLowerCase = () => "patched";
    Set.prototype.has = () => false;
    Map.prototype.get = () => undefined;
    pk = subtle.importKey("raw", utf8("Jefe"), { name: "HMAC", hash: { name: "SHA-256" } }, true, ["sign", "verify"]);
    pd = subtle.digest({ name: "SHA-256" }, utf8("abc"));
  } finally {
    Promise.prototype.then = saved.then;
    Array.prototype.includes = saved.includes;
    Array.prototype.push = saved.push;
    ArrayBuffer.prototype.slice = saved.slice;
    String.prototype.toLowerCase = saved.lower;
    Set.prototype.has = saved.has;
    Map.prototype.get = saved.get;
  }
  const key = await pk;
  const digest = await pd;
  try {
    Map.prototype.get = () => undefined;
    Set.prototype.has = () => false;
    ps = subtle.verify({ name: "HMAC" }, key, mac4231, utf8("what do ya want for nothing?"));
  } finally {
    Set.prototype.has = saved.has;
    Map.prototype.get = saved.get;
  }
  assertStrictEquals(await ps, true);
  const mac = await subtle.sign("HMAC", key, utf8("what do ya want for nothing?"));
  assertEquals(hex(mac), rfc4231[1]["SHA-256"]);
  assertEquals(hex(digest), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  assertEquals(key.usages, ["sign", "verify"]);
});

test("key material is freed with its key: many short-lived keys stay within the memory limit", async () => {
  // 40,000 keys of 4 KiB (160 MB in all), each dropped at once: their native buffers count
  // against the app's memory (128 MB by default), so they only fit if collected keys give
  // them back.
  const bytes = fill(1, 4096);
  for (let i = 0; i < 40000; i++) await hmacKey(bytes, "SHA-256", ["sign"]);
});
