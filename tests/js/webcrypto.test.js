// crypto.subtle (W3C Web Cryptography API): digest, HMAC, CryptoKey, algorithm normalization
// and the spec's errors. Known answers are typed in from FIPS 180-4's examples, RFC 4231
// (HMAC-SHA-256/384/512) and RFC 2202 (HMAC-SHA-1).
import { test, assert, assertEquals, assertStrictEquals, assertThrows, fail } from "nano:test";
import { hex, rejectsWith, unhex, utf8 } from "./lib/webcrypto_util.js";

const subtle = crypto.subtle;
const fill = (byte, n) => new Uint8Array(n).fill(byte);


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

// encrypt and decrypt copy large data only when normalizing the algorithm could run app code
// (25_webcrypto.js isInertAlgorithm); whatever the algorithm object, the result is that of the
// data as it was when the call began.
test("AES encrypt/decrypt of large data: the data as at the call, whatever the algorithm runs", async () => {
  const sum = async (bytes) => hex(await subtle.digest("SHA-256", bytes)); // hex of 64 KiB is slow
  const key = await subtle.importKey("raw", fill(3, 32), "AES-GCM", false, ["encrypt", "decrypt"]);
  const iv = fill(9, 12);
  const original = new Uint8Array(65536).map((_, i) => i * 7);
  const sealed = new Uint8Array(await subtle.encrypt({ name: "AES-GCM", iv }, key, original.slice()));
  const expected = await sum(sealed);
  const cases = [
    ["plain", () => ({ name: "AES-GCM", iv })],
    ["null prototype", () => ({ __proto__: null, name: "AES-GCM", iv, tagLength: 128 })],
    ["getter on iv", (data) => ({ name: "AES-GCM", get iv() { data[0] ^= 1; return iv; } })],
    ["getter on name", (data) => ({ get name() { data.fill(0); return "AES-GCM"; }, iv })],
    ["Proxy", (data) => new Proxy({ name: "AES-GCM", iv }, { get(t, k) { data[1] ^= 1; return t[k]; } })],
    ["object name", (data) => ({ name: { toString() { data[2] ^= 1; return "AES-GCM"; } }, iv })],
    ["object tagLength", (data) => ({ name: "AES-GCM", iv, tagLength: { valueOf() { data[3] ^= 1; return 128; } } })],
    ["class instance", (data) => new (class { get name() { data[4] ^= 1; return "AES-GCM"; } get iv() { return iv; } })()],
  ];
  for (const [what, make] of cases) {
    const data = original.slice();
    assertEquals(await sum(await subtle.encrypt(make(data), key, data)), expected, what);
    const view = new DataView(original.slice().buffer);
    assertEquals(await sum(await subtle.encrypt(make(new Uint8Array(view.buffer)), key, view)), expected, `${what} (DataView)`);
  }
  Object.defineProperty(Object.prototype, "additionalData", { configurable: true, get() { this.touched = true; return undefined; } });
  try {
    const data = original.slice();
    const alg = { name: "AES-GCM", iv };
    Object.defineProperty(Object.prototype, "tagLength", { configurable: true, get() { data[5] ^= 1; return undefined; } });
    assertEquals(await sum(await subtle.encrypt(alg, key, data)), expected, "a getter on Object.prototype");
  } finally {
    delete Object.prototype.additionalData;
    delete Object.prototype.tagLength;
  }
  // Decrypting: the same, and a round trip of the spared path.
  assertEquals(await sum(await subtle.decrypt({ name: "AES-GCM", iv }, key, sealed)), await sum(original));
  const again = sealed.slice();
  const alg = { name: "AES-GCM", get iv() { again[0] ^= 1; return iv; } };
  assertEquals(await sum(await subtle.decrypt(alg, key, again)), await sum(original), "decrypt, a getter changing the data");
  // A detached buffer holds no bytes: the tag of nothing.
  const gone = original.slice().buffer;
  structuredClone(gone, { transfer: [gone] });
  assertEquals((await subtle.encrypt({ name: "AES-GCM", iv }, key, gone)).byteLength, 16);
  // Other ciphers spare the copy too; RSA-OAEP (not one of them) still copies.
  for (const name of ["AES-CBC", "AES-CTR"]) {
    const k = await subtle.importKey("raw", fill(3, 16), name, false, ["encrypt"]);
    const alg = name === "AES-CBC" ? { name, iv: fill(1, 16) } : { name, counter: fill(1, 16), length: 64 };
    const want = await sum(await subtle.encrypt(alg, k, original.slice()));
    const data = original.slice();
    assertEquals(await sum(await subtle.encrypt(alg, k, data)), want, name);
    const tricky = { ...alg, get name() { data[0] ^= 1; return name; } };
    assertEquals(await sum(await subtle.encrypt(tricky, k, data)), want, `${name}, a getter`);
  }
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
  for (const name of ["AES-XTS"]) {
    await rejectsWith(subtle.importKey("raw", bytes, name, true, ["sign"]), "NotSupportedError");
    await rejectsWith(subtle.generateKey({ name, hash: "SHA-256" }, true, ["sign"]), "NotSupportedError");
    await rejectsWith(subtle.encrypt({ name }, key, bytes), "NotSupportedError");
    await rejectsWith(subtle.decrypt(name, key, bytes), "NotSupportedError");
    await rejectsWith(subtle.deriveBits(name, key, 128), "NotSupportedError");
    await rejectsWith(subtle.deriveKey(name, key, "HMAC", true, ["sign"]), "NotSupportedError");
    await rejectsWith(subtle.wrapKey("raw", key, key, name), "NotSupportedError");
    await rejectsWith(subtle.unwrapKey("raw", bytes, key, name, "HMAC", true, ["sign"]), "NotSupportedError");
  }
  // HMAC itself encrypts, derives and wraps nothing; AES-KW only wraps; the KDFs only derive.
  await rejectsWith(subtle.encrypt("HMAC", key, bytes), "NotSupportedError");
  await rejectsWith(subtle.wrapKey("raw", key, key, "HMAC"), "NotSupportedError");
  await rejectsWith(subtle.encrypt("AES-KW", key, bytes), "NotSupportedError");
  await rejectsWith(subtle.deriveBits("HMAC", key, 128), "NotSupportedError");
  await rejectsWith(subtle.generateKey({ name: "PBKDF2" }, false, ["deriveBits"]), "NotSupportedError");
  await rejectsWith(subtle.generateKey({ name: "HKDF" }, false, ["deriveBits"]), "NotSupportedError");
  await rejectsWith(subtle.encrypt({ name: "PBKDF2" }, key, bytes), "NotSupportedError");
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

// --- AES (second increment) ------------------------------------------------------------------
// Known answers typed in from NIST SP 800-38A (F.2.1 CBC-AES128, F.5.1 CTR-AES128), McGrew &
// Viega's GCM specification (test cases 3 and 4), RFC 3394 §4.1, RFC 6070 and RFC 5869.

const aesKey = (name, bytes, usages = ["encrypt", "decrypt"], extractable = true) =>
  subtle.importKey("raw", bytes, name, extractable, usages);

const sp800_38a = {
  key: "2b7e151628aed2a6abf7158809cf4f3c",
  plaintext: "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51" +
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710",
  cbcIv: "000102030405060708090a0b0c0d0e0f",
  cbc: "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2" +
    "73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7",
  ctrCounter: "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
  ctr: "874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff" +
    "5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee",
};

test("AES-CBC: SP 800-38A F.2.1, PKCS#7 padding added and removed", async () => {
  const key = await aesKey("AES-CBC", unhex(sp800_38a.key));
  const iv = unhex(sp800_38a.cbcIv);
  const pt = unhex(sp800_38a.plaintext);
  const ct = await subtle.encrypt({ name: "AES-CBC", iv }, key, pt);
  assert(ct instanceof ArrayBuffer);
  assertEquals(ct.byteLength, 80, "a whole block of padding follows 64 bytes");
  assertEquals(hex(ct).slice(0, 128), sp800_38a.cbc);
  assertEquals(hex(await subtle.decrypt({ name: "AES-CBC", iv }, key, ct)), sp800_38a.plaintext);
  // Padding of odd lengths, the empty plaintext included.
  for (const n of [0, 1, 15, 16, 17]) {
    const c = await subtle.encrypt({ name: "aes-cbc", iv }, key, fill(7, n));
    assertEquals(c.byteLength, (Math.floor(n / 16) + 1) * 16);
    assertEquals(hex(await subtle.decrypt({ name: "AES-CBC", iv }, key, c)), hex(fill(7, n)));
  }
  // Without its padding block the last block's "padding" is data: not valid PKCS#7.
  await rejectsWith(subtle.decrypt({ name: "AES-CBC", iv }, key, unhex(sp800_38a.cbc)), "OperationError");
  await rejectsWith(subtle.decrypt({ name: "AES-CBC", iv }, key, new Uint8Array(ct, 0, 79)), "OperationError");
  await rejectsWith(subtle.decrypt({ name: "AES-CBC", iv }, key, new Uint8Array(0)), "OperationError");
  await rejectsWith(subtle.encrypt({ name: "AES-CBC", iv: new Uint8Array(12) }, key, pt), "OperationError");
  await rejectsWith(subtle.decrypt({ name: "AES-CBC", iv: new Uint8Array(17) }, key, ct), "OperationError");
  await rejectsWith(subtle.encrypt({ name: "AES-CBC" }, key, pt), "TypeError");
  await rejectsWith(subtle.encrypt({ name: "AES-CBC", iv: "0123456789abcdef" }, key, pt), "TypeError");
});

test("AES-CTR: SP 800-38A F.5.1, and the counter wraps within its length bits", async () => {
  const key = await aesKey("AES-CTR", unhex(sp800_38a.key));
  const counter = unhex(sp800_38a.ctrCounter);
  const pt = unhex(sp800_38a.plaintext);
  for (const length of [128, 64, 9]) {
    const ct = await subtle.encrypt({ name: "AES-CTR", counter, length }, key, pt);
    assertEquals(hex(ct), sp800_38a.ctr, `length ${length}`);
    assertEquals(hex(await subtle.decrypt({ name: "AES-CTR", counter, length }, key, ct)), sp800_38a.plaintext);
  }
  // length 8: the counter byte ff wraps to 00 after the first block, the bytes to its left
  // stay fe: blocks 2-4 are those of a run starting at ...fe00.
  const wrapped = new Uint8Array(await subtle.encrypt({ name: "AES-CTR", counter, length: 8 }, key, pt));
  assertEquals(hex(wrapped.subarray(0, 16)), sp800_38a.ctr.slice(0, 32));
  const from00 = unhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfe00");
  const rest = new Uint8Array(await subtle.encrypt({ name: "AES-CTR", counter: from00, length: 128 }, key, pt.subarray(16)));
  assertEquals(hex(wrapped.subarray(16)), hex(rest));
  assert(hex(wrapped) !== sp800_38a.ctr);
  // Partial blocks; 2 counter bits give 4 blocks, a fifth would repeat a counter value.
  assertEquals(hex(await subtle.encrypt({ name: "AES-CTR", counter, length: 128 }, key, pt.subarray(0, 5))),
    sp800_38a.ctr.slice(0, 10));
  assertEquals((await subtle.encrypt({ name: "AES-CTR", counter, length: 2 }, key, fill(0, 64))).byteLength, 64);
  await rejectsWith(subtle.encrypt({ name: "AES-CTR", counter, length: 2 }, key, fill(0, 65)), "OperationError");
  await rejectsWith(subtle.encrypt({ name: "AES-CTR", counter, length: 0 }, key, pt), "OperationError");
  await rejectsWith(subtle.encrypt({ name: "AES-CTR", counter, length: 129 }, key, pt), "OperationError");
  await rejectsWith(subtle.encrypt({ name: "AES-CTR", counter, length: 256 }, key, pt), "TypeError");
  await rejectsWith(subtle.encrypt({ name: "AES-CTR", counter: new Uint8Array(8), length: 64 }, key, pt), "OperationError");
  await rejectsWith(subtle.encrypt({ name: "AES-CTR", counter }, key, pt), "TypeError");
});

const gcm = {
  key: "feffe9928665731c6d6a8f9467308308",
  iv: "cafebabefacedbaddecaf888",
  plaintext: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72" +
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
  ct3: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e" +
    "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
  tag3: "4d5c2af327cd64a62cf35abd2ba6fab4",
  aad4: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
  tag4: "5bc94fbc3221a5db94fae95ae7121a47",
};

test("AES-GCM: McGrew-Viega test cases 3 and 4, tag lengths, a bad tag is OperationError", async () => {
  const key = await aesKey("AES-GCM", unhex(gcm.key));
  const iv = unhex(gcm.iv);
  const ct3 = await subtle.encrypt({ name: "AES-GCM", iv }, key, unhex(gcm.plaintext));
  assertEquals(hex(ct3), gcm.ct3 + gcm.tag3);
  assertEquals(hex(await subtle.decrypt({ name: "AES-GCM", iv }, key, ct3)), gcm.plaintext);
  const additionalData = unhex(gcm.aad4);
  const pt4 = unhex(gcm.plaintext).subarray(0, 60);
  const ct4 = await subtle.encrypt({ name: "AES-GCM", iv, additionalData, tagLength: 128 }, key, pt4);
  assertEquals(hex(ct4), gcm.ct3.slice(0, 120) + gcm.tag4);
  assertEquals(hex(await subtle.decrypt({ name: "AES-GCM", iv, additionalData }, key, ct4)), hex(pt4));
  // A truncated tag is the tag's first bytes.
  for (const tagLength of [32, 64, 96, 104, 112, 120]) {
    const c = await subtle.encrypt({ name: "AES-GCM", iv, additionalData, tagLength }, key, pt4);
    assertEquals(hex(c), gcm.ct3.slice(0, 120) + gcm.tag4.slice(0, tagLength / 4), `tagLength ${tagLength}`);
    assertEquals(hex(await subtle.decrypt({ name: "AES-GCM", iv, additionalData, tagLength }, key, c)), hex(pt4));
  }
  // A flipped bit anywhere, other additional data or a missing tag: OperationError.
  const bad = new Uint8Array(ct4.slice(0));
  bad[bad.length - 1] ^= 1;
  await rejectsWith(subtle.decrypt({ name: "AES-GCM", iv, additionalData }, key, bad), "OperationError");
  await rejectsWith(subtle.decrypt({ name: "AES-GCM", iv }, key, ct4), "OperationError");
  await rejectsWith(subtle.decrypt({ name: "AES-GCM", iv }, key, new Uint8Array(15)), "OperationError");
  for (const tagLength of [0, 8, 33, 127]) {
    await rejectsWith(subtle.encrypt({ name: "AES-GCM", iv, tagLength }, key, pt4), "OperationError");
  }
  await rejectsWith(subtle.encrypt({ name: "AES-GCM", iv, tagLength: 256 }, key, pt4), "TypeError");
  await rejectsWith(subtle.encrypt({ name: "AES-GCM", iv: new Uint8Array(0) }, key, pt4), "OperationError");
  // Any non-empty iv length works (GHASH of a long iv).
  for (const n of [1, 16, 128]) {
    const c = await subtle.encrypt({ name: "AES-GCM", iv: fill(3, n) }, key, pt4);
    assertEquals(hex(await subtle.decrypt({ name: "AES-GCM", iv: fill(3, n) }, key, c)), hex(pt4));
  }
});

test("AES-KW: RFC 3394 §4.1 wraps a raw AES key; a tampered wrap is OperationError", async () => {
  const kek = await aesKey("AES-KW", unhex("000102030405060708090a0b0c0d0e0f"), ["wrapKey", "unwrapKey"]);
  const key = await aesKey("AES-CBC", unhex("00112233445566778899aabbccddeeff"), ["encrypt"]);
  const wrapped = await subtle.wrapKey("raw", key, kek, "AES-KW");
  assertEquals(hex(wrapped), "1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5");
  const back = await subtle.unwrapKey("raw", wrapped, kek, { name: "AES-KW" }, "AES-CBC", true, ["decrypt"]);
  assertEquals(back.algorithm, { name: "AES-CBC", length: 128 });
  assertEquals(back.usages, ["decrypt"]);
  assertEquals(hex(await subtle.exportKey("raw", back)), "00112233445566778899aabbccddeeff");
  const tampered = new Uint8Array(wrapped);
  tampered[0] ^= 1;
  await rejectsWith(subtle.unwrapKey("raw", tampered, kek, "AES-KW", "AES-CBC", true, ["decrypt"]), "OperationError");
  await rejectsWith(subtle.unwrapKey("raw", tampered.subarray(0, 20), kek, "AES-KW", "AES-CBC", true, ["decrypt"]), "OperationError");
  // Data not a multiple of 8 bytes: an HMAC key of 12 bytes cannot be wrapped raw.
  const hmac12 = await hmacKey(fill(1, 12), "SHA-256", ["sign"], true);
  await rejectsWith(subtle.wrapKey("raw", hmac12, kek, "AES-KW"), "OperationError");
  // An AES-KW key only wraps: its usages are wrapKey and unwrapKey.
  await rejectsWith(aesKey("AES-KW", fill(0, 16), ["encrypt"]), "SyntaxError");
  await rejectsWith(subtle.encrypt("AES-KW", kek, fill(0, 16)), "NotSupportedError");
});

test("wrapKey/unwrapKey: HMAC and AES keys as raw and jwk through AES-KW, GCM, CBC and CTR", async () => {
  const hmac = await hmacKey(utf8("a secret of 24 bytes!!!!"), "SHA-384", ["sign", "verify"], true);
  const aes = await subtle.generateKey({ name: "AES-GCM", length: 256 }, true, ["encrypt", "decrypt"]);
  const kw = await subtle.generateKey({ name: "AES-KW", length: 192 }, false, ["wrapKey", "unwrapKey"]);
  const wrappers = [
    [kw, "AES-KW"],
    [await subtle.generateKey({ name: "AES-GCM", length: 128 }, false, ["wrapKey", "unwrapKey"]),
      { name: "AES-GCM", iv: fill(9, 12), additionalData: utf8("aad") }],
    [await subtle.generateKey({ name: "AES-CBC", length: 256 }, false, ["wrapKey", "unwrapKey"]),
      { name: "AES-CBC", iv: fill(5, 16) }],
    [await subtle.generateKey({ name: "AES-CTR", length: 128 }, false, ["wrapKey", "unwrapKey"]),
      { name: "AES-CTR", counter: fill(1, 16), length: 32 }],
  ];
  const data = utf8("wrap me");
  for (const [wrapper, alg] of wrappers) {
    for (const format of ["raw", "jwk"]) {
      const label = `${wrapper.algorithm.name} ${format}`;
      // jwk JSON is not a multiple of 8 bytes in general; AES-KW wraps raw only here.
      if (alg === "AES-KW" && format === "jwk") continue;
      const w1 = await subtle.wrapKey(format, hmac, wrapper, alg);
      const k1 = await subtle.unwrapKey(format, w1, wrapper, alg, { name: "HMAC", hash: "SHA-384" }, true, ["sign"]);
      assertEquals(hex(await subtle.exportKey("raw", k1)), hex(utf8("a secret of 24 bytes!!!!")), label);
      assertEquals(k1.algorithm, { name: "HMAC", hash: { name: "SHA-384" }, length: 192 }, label);
      assertEquals(hex(await subtle.sign("HMAC", k1, data)), hex(await subtle.sign("HMAC", hmac, data)), label);
      const w2 = await subtle.wrapKey(format, aes, wrapper, alg);
      const k2 = await subtle.unwrapKey(format, w2, wrapper, alg, "AES-GCM", false, ["decrypt"]);
      assertStrictEquals(k2.extractable, false);
      const ct = await subtle.encrypt({ name: "AES-GCM", iv: fill(2, 12) }, aes, data);
      assertEquals(hex(await subtle.decrypt({ name: "AES-GCM", iv: fill(2, 12) }, k2, ct)), hex(data), label);
    }
  }
  // The decrypted jwk is JSON with the key's members.
  const [gcmWrapper, gcmAlg] = wrappers[1];
  const jwkBytes = await subtle.decrypt(gcmAlg, await subtle.importKey("raw",
    await subtle.exportKey("raw", aes), "AES-GCM", true, ["decrypt"]), await subtle.encrypt(
    { name: "AES-GCM", iv: fill(2, 12) }, aes, utf8("{}"))).catch(() => null);
  assertStrictEquals(jwkBytes, null, "another key's tag does not authenticate");
  const w = new Uint8Array(await subtle.wrapKey("jwk", aes, gcmWrapper, gcmAlg));
  const k = await subtle.unwrapKey("jwk", w, gcmWrapper, gcmAlg, "AES-GCM", true, ["encrypt"]);
  assertEquals((await subtle.exportKey("jwk", k)).alg, "A256GCM");
  // Misuse: a non-extractable key, a wrapper without the usage, another algorithm's key, a
  // name that neither wraps nor encrypts, unwrapped bytes that are not a JWK.
  const secret = await hmacKey(fill(1, 16), "SHA-256", ["sign"], false);
  await rejectsWith(subtle.wrapKey("raw", secret, kw, "AES-KW"), "InvalidAccessError");
  const encOnly = await subtle.generateKey({ name: "AES-GCM", length: 128 }, false, ["encrypt"]);
  await rejectsWith(subtle.wrapKey("raw", aes, encOnly, gcmAlg), "InvalidAccessError");
  await rejectsWith(subtle.wrapKey("raw", aes, kw, gcmAlg), "InvalidAccessError");
  await rejectsWith(subtle.wrapKey("spki", aes, kw, "AES-KW"), "NotSupportedError");
  const notJson = await subtle.encrypt(gcmAlg, aes, utf8("not json"));
  const aesWrapper = await subtle.importKey("raw", await subtle.exportKey("raw", aes), "AES-GCM", false, ["unwrapKey"]);
  await rejectsWith(subtle.unwrapKey("jwk", notJson, aesWrapper, gcmAlg, "AES-GCM", true, ["encrypt"]), "DataError");
  await rejectsWith(subtle.unwrapKey("raw", w, gcmWrapper, gcmAlg, "AES-GCM", true, []), "DataError");
  const rawWrapped = await subtle.wrapKey("raw", aes, gcmWrapper, gcmAlg);
  await rejectsWith(subtle.unwrapKey("raw", rawWrapped, gcmWrapper, gcmAlg, "AES-GCM", true, []), "SyntaxError");
  await rejectsWith(subtle.unwrapKey("raw", rawWrapped, gcmWrapper, gcmAlg, "PBKDF2", true, ["deriveBits"]), "SyntaxError");
});

test("AES generateKey, importKey and exportKey: lengths, raw and jwk round trips, JWK alg values", async () => {
  for (const name of ["AES-GCM", "AES-CBC", "AES-CTR", "AES-KW"]) {
    const usages = name === "AES-KW" ? ["unwrapKey", "wrapKey"] : ["decrypt", "encrypt", "wrapKey"];
    const suffix = name === "AES-KW" ? "KW" : name.slice(4);
    for (const length of [128, 192, 256]) {
      const key = await subtle.generateKey({ name: name.toLowerCase(), length }, true, usages);
      assertEquals(key.type, "secret");
      assertEquals(key.algorithm, { name, length });
      assertStrictEquals(key.algorithm, key.algorithm);
      const raw = await subtle.exportKey("raw", key);
      assertEquals(raw.byteLength, length / 8);
      const jwk = await subtle.exportKey("jwk", key);
      assertEquals(Object.keys(jwk), ["alg", "ext", "k", "key_ops", "kty"]);
      assertEquals(jwk.alg, `A${length}${suffix}`);
      assertEquals(jwk.kty, "oct");
      assertEquals(jwk.ext, true);
      assertEquals(jwk.key_ops, key.usages);
      const fromJwk = await subtle.importKey("jwk", jwk, name, true, usages);
      assertEquals(hex(await subtle.exportKey("raw", fromJwk)), hex(raw));
      const fromRaw = await subtle.importKey("raw", raw, { name }, false, usages.slice(0, 1));
      assertStrictEquals(fromRaw.extractable, false);
      assertEquals(fromRaw.algorithm.length, length);
      await rejectsWith(subtle.exportKey("raw", fromRaw), "InvalidAccessError");
      // A JWK naming another length or mode is DataError.
      const other = length === 128 ? 256 : 128;
      await rejectsWith(subtle.importKey("jwk", { ...jwk, alg: `A${other}${suffix}` }, name, true, usages), "DataError");
      await rejectsWith(subtle.importKey("jwk", { ...jwk, alg: `A${length}XYZ` }, name, true, usages), "DataError");
    }
    for (const length of [0, 64, 100, 512]) {
      await rejectsWith(subtle.generateKey({ name, length }, true, usages), "OperationError");
    }
    await rejectsWith(subtle.generateKey({ name }, true, usages), "TypeError");
    await rejectsWith(subtle.generateKey({ name, length: 65536 }, true, usages), "TypeError");
    await rejectsWith(subtle.generateKey({ name, length: 128 }, true, []), "SyntaxError");
    await rejectsWith(subtle.generateKey({ name, length: 128 }, true, ["sign"]), "SyntaxError");
    for (const n of [0, 8, 15, 17, 33, 64]) {
      await rejectsWith(subtle.importKey("raw", new Uint8Array(n), name, true, usages), "DataError");
    }
    await rejectsWith(subtle.importKey("raw", new Uint8Array(16), name, true, []), "SyntaxError");
    await rejectsWith(subtle.importKey("raw", new Uint8Array(16), name, true, ["deriveBits"]), "SyntaxError");
    await rejectsWith(subtle.importKey("spki", new Uint8Array(16), name, true, usages), "NotSupportedError");
    await rejectsWith(subtle.importKey("jwk", { kty: "RSA", k: "AAAAAAAAAAAAAAAAAAAAAA" }, name, true, usages), "DataError");
    await rejectsWith(subtle.importKey("jwk", { kty: "oct" }, name, true, usages), "DataError");
    await rejectsWith(subtle.importKey("jwk", { kty: "oct", k: "AAAA" }, name, true, usages), "DataError");
    await rejectsWith(subtle.importKey("jwk", { kty: "oct", k: "AAAAAAAAAAAAAAAAAAAAAA", use: "sig" }, name, true, usages), "DataError");
    await rejectsWith(subtle.importKey("jwk", { kty: "oct", k: "AAAAAAAAAAAAAAAAAAAAAA", ext: false }, name, true, usages), "DataError");
    await rejectsWith(subtle.importKey("jwk", { kty: "oct", k: "AAAAAAAAAAAAAAAAAAAAAA", key_ops: ["sign"] }, name, true, usages), "DataError");
    const ok = await subtle.importKey("jwk", { kty: "oct", k: "AAAAAAAAAAAAAAAAAAAAAA", use: "enc" }, name, false, usages);
    assertEquals(ok.algorithm.length, 128);
  }
});

test("AES misuse: wrong algorithm, missing usage, mismatched names reject with InvalidAccessError", async () => {
  const gcmKey = await aesKey("AES-GCM", fill(1, 16), ["encrypt"]);
  const cbcKey = await aesKey("AES-CBC", fill(1, 16), ["encrypt", "decrypt"]);
  const iv = fill(0, 16);
  await rejectsWith(subtle.encrypt({ name: "AES-CBC", iv }, gcmKey, utf8("x")), "InvalidAccessError");
  await rejectsWith(subtle.decrypt({ name: "AES-GCM", iv }, gcmKey, fill(0, 32)), "InvalidAccessError");
  const hmac = await hmacKey(fill(1, 16), "SHA-256", ["sign"]);
  await rejectsWith(subtle.encrypt({ name: "AES-CBC", iv }, hmac, utf8("x")), "InvalidAccessError");
  await rejectsWith(subtle.sign("HMAC", cbcKey, utf8("x")), "InvalidAccessError");
  await rejectsWith(subtle.encrypt({ name: "AES-CBC", iv }, cbcKey, "text"), "TypeError");
  await rejectsWith(subtle.encrypt({ name: "AES-CBC", iv }, cbcKey), "TypeError");
});

test("encrypt copies the data before normalizing the algorithm, which can run app code", async () => {
  const key = await aesKey("AES-CTR", unhex(sp800_38a.key));
  const data = unhex(sp800_38a.plaintext);
  const alg = { name: "AES-CTR", get counter() { data.fill(0); return unhex(sp800_38a.ctrCounter); }, length: 64 };
  assertEquals(hex(await subtle.encrypt(alg, key, data)), sp800_38a.ctr);
});

// --- PBKDF2 and HKDF -------------------------------------------------------------------------

const rfc5869 = [
  { ikm: "0b".repeat(22), salt: "000102030405060708090a0b0c", info: "f0f1f2f3f4f5f6f7f8f9", length: 42,
    okm: "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865" },
  { ikm: range(0x00, 0x50), salt: range(0x60, 0xb0), info: range(0xb0, 0x100), length: 82,
    okm: "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87" },
  { ikm: "0b".repeat(22), salt: "", info: "", length: 42,
    okm: "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8" },
];
function range(from, to) {
  let s = "";
  for (let i = from; i < to; i++) s += i.toString(16).padStart(2, "0");
  return s;
}
const bytesOf = (h) => (h === "" ? new Uint8Array(0) : unhex(h));

test("PBKDF2: RFC 6070 HMAC-SHA-1 cases (1, 2 and 4096 iterations, and a longer output)", async () => {
  const key = await subtle.importKey("raw", utf8("password"), "PBKDF2", false, ["deriveBits", "deriveKey"]);
  assertEquals(key.algorithm, { name: "PBKDF2" });
  assertStrictEquals(key.extractable, false);
  const cases = [[1, "0c60c80f961f0e71f3a9b524af6012062fe037a6"], [2, "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"],
    [4096, "4b007901b765489abead49d926f721d065a429c1"]];
  for (const [iterations, dk] of cases) {
    const bits = await subtle.deriveBits({ name: "PBKDF2", hash: "SHA-1", salt: utf8("salt"), iterations }, key, 160);
    assert(bits instanceof ArrayBuffer);
    assertEquals(hex(bits), dk, `${iterations} iterations`);
  }
  const long = await subtle.importKey("raw", utf8("passwordPASSWORDpassword"), "PBKDF2", false, ["deriveBits"]);
  assertEquals(hex(await subtle.deriveBits({ name: "PBKDF2", hash: { name: "SHA-1" },
    salt: utf8("saltSALTsaltSALTsaltSALTsaltSALTsalt"), iterations: 4096 }, long, 200)),
  "3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038");
  // Each hash, checked against hashlib.pbkdf2_hmac's output for the same inputs.
  const byHash = { "SHA-256": "120fb6cffcf8b32c43e7225256c4f837a86548c9", "SHA-384": "c0e14f06e49e32d73f9f52ddf1d0c5c719160923",
    "SHA-512": "867f70cf1ade02cff3752599a3a53dc4af34c7a6" };
  for (const hash of Object.keys(byHash)) {
    assertEquals(hex(await subtle.deriveBits({ name: "PBKDF2", hash, salt: utf8("salt"), iterations: 1 }, key, 160)), byHash[hash], hash);
  }
  assertEquals((await subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt: utf8("salt"), iterations: 1 }, key, 0)).byteLength, 0);
});

test("PBKDF2 misuse: iterations 0, null or odd lengths, import rules", async () => {
  const key = await subtle.importKey("raw", utf8("password"), "PBKDF2", false, ["deriveBits"]);
  const alg = { name: "PBKDF2", hash: "SHA-256", salt: utf8("salt"), iterations: 1 };
  await rejectsWith(subtle.deriveBits({ ...alg, iterations: 0 }, key, 128), "OperationError");
  await rejectsWith(subtle.deriveBits(alg, key, null), "OperationError");
  await rejectsWith(subtle.deriveBits(alg, key), "OperationError");
  await rejectsWith(subtle.deriveBits(alg, key, 129), "OperationError");
  // The bound on iterations times output blocks (docs/api.md): 10,000,000.
  await rejectsWith(subtle.deriveBits({ ...alg, iterations: 10000001 }, key, 128), "OperationError");
  await rejectsWith(subtle.deriveBits({ ...alg, iterations: 5000001 }, key, 512), "OperationError");
  await rejectsWith(subtle.deriveBits({ ...alg, iterations: -1 }, key, 128), "TypeError");
  await rejectsWith(subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", iterations: 1 }, key, 128), "TypeError");
  await rejectsWith(subtle.deriveBits({ name: "PBKDF2", salt: utf8("s"), iterations: 1 }, key, 128), "TypeError");
  await rejectsWith(subtle.deriveBits({ ...alg, hash: "MD5" }, key, 128), "NotSupportedError");
  await rejectsWith(subtle.deriveBits({ ...alg, name: "HKDF", info: utf8("") }, key, 128), "InvalidAccessError");
  await rejectsWith(subtle.deriveKey(alg, key, { name: "AES-GCM", length: 128 }, false, ["encrypt"]), "InvalidAccessError");
  await rejectsWith(subtle.importKey("raw", utf8("p"), "PBKDF2", true, ["deriveBits"]), "SyntaxError");
  await rejectsWith(subtle.importKey("raw", utf8("p"), "PBKDF2", false, ["encrypt"]), "SyntaxError");
  await rejectsWith(subtle.importKey("raw", utf8("p"), "PBKDF2", false, []), "SyntaxError");
  await rejectsWith(subtle.importKey("jwk", { kty: "oct", k: "cA" }, "PBKDF2", false, ["deriveBits"]), "NotSupportedError");
  await rejectsWith(subtle.exportKey("raw", key), "NotSupportedError");
  const hmac = await hmacKey(fill(1, 16), "SHA-256", ["sign"]);
  await rejectsWith(subtle.deriveBits(alg, hmac, 128), "InvalidAccessError");
});

test("HKDF: RFC 5869 test cases 1-3 (SHA-256), length limits", async () => {
  for (const [i, c] of rfc5869.entries()) {
    const key = await subtle.importKey("raw", bytesOf(c.ikm), { name: "HKDF" }, false, ["deriveBits"]);
    assertEquals(key.algorithm, { name: "HKDF" });
    const okm = await subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt: bytesOf(c.salt), info: bytesOf(c.info) },
      key, c.length * 8);
    assertEquals(hex(okm), c.okm, `test case ${i + 1}`);
  }
  const key = await subtle.importKey("raw", bytesOf(rfc5869[0].ikm), "HKDF", false, ["deriveBits"]);
  const alg = { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: new Uint8Array(0) };
  assertEquals((await subtle.deriveBits(alg, key, 255 * 256)).byteLength, 255 * 32);
  assertEquals((await subtle.deriveBits(alg, key, 0)).byteLength, 0);
  await rejectsWith(subtle.deriveBits(alg, key, 255 * 256 + 8), "OperationError");
  await rejectsWith(subtle.deriveBits(alg, key, 12), "OperationError");
  await rejectsWith(subtle.deriveBits(alg, key, null), "OperationError");
  await rejectsWith(subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt: alg.salt }, key, 128), "TypeError");
  await rejectsWith(subtle.deriveBits({ name: "HKDF", salt: alg.salt, info: alg.info }, key, 128), "TypeError");
  await rejectsWith(subtle.importKey("raw", utf8("k"), "HKDF", true, ["deriveBits"]), "SyntaxError");
  await rejectsWith(subtle.importKey("raw", utf8("k"), "HKDF", false, ["sign"]), "SyntaxError");
  await rejectsWith(subtle.importKey("jwk", { kty: "oct", k: "aw" }, "HKDF", false, ["deriveBits"]), "NotSupportedError");
  const deriveKeyOnly = await subtle.importKey("raw", utf8("k"), "HKDF", false, ["deriveKey"]);
  await rejectsWith(subtle.deriveBits(alg, deriveKeyOnly, 128), "InvalidAccessError");
});

test("deriveKey: AES and HMAC keys from PBKDF2 and HKDF hold the derived bits", async () => {
  const pbkdf2 = await subtle.importKey("raw", utf8("password"), "PBKDF2", false, ["deriveKey", "deriveBits"]);
  const p = { name: "PBKDF2", hash: "SHA-1", salt: utf8("salt"), iterations: 4096 };
  const aes = await subtle.deriveKey(p, pbkdf2, { name: "AES-GCM", length: 128 }, true, ["encrypt"]);
  assertEquals(aes.algorithm, { name: "AES-GCM", length: 128 });
  assertEquals(aes.usages, ["encrypt"]);
  assertEquals(hex(await subtle.exportKey("raw", aes)), "4b007901b765489abead49d926f721d0");
  const hkdf = await subtle.importKey("raw", bytesOf(rfc5869[0].ikm), "HKDF", false, ["deriveKey"]);
  const h = { name: "HKDF", hash: "SHA-256", salt: bytesOf(rfc5869[0].salt), info: bytesOf(rfc5869[0].info) };
  // HMAC without a length: the hash's block size (SHA-1: 512 bits).
  const mac = await subtle.deriveKey(h, hkdf, { name: "HMAC", hash: "SHA-1" }, true, ["sign"]);
  assertEquals(mac.algorithm, { name: "HMAC", hash: { name: "SHA-1" }, length: 512 });
  const expected = await subtle.deriveBits(h, await subtle.importKey("raw", bytesOf(rfc5869[0].ikm), "HKDF", false, ["deriveBits"]), 512);
  assertEquals(hex(await subtle.exportKey("raw", mac)), hex(expected));
  assertEquals(hex(expected).slice(0, 84), rfc5869[0].okm);
  const mac256 = await subtle.deriveKey(h, hkdf, { name: "HMAC", hash: "SHA-256", length: 256 }, false, ["verify"]);
  assertEquals(mac256.algorithm.length, 256);
  const kw = await subtle.deriveKey(h, hkdf, { name: "AES-KW", length: 256 }, false, ["wrapKey"]);
  assertEquals(kw.algorithm, { name: "AES-KW", length: 256 });
  // The spec's errors: a bad AES length, an HMAC length of 0, a KDF as the derived type, no
  // usages, usages the derived algorithm does not have.
  await rejectsWith(subtle.deriveKey(h, hkdf, { name: "AES-GCM", length: 100 }, true, ["encrypt"]), "OperationError");
  await rejectsWith(subtle.deriveKey(h, hkdf, { name: "AES-GCM" }, true, ["encrypt"]), "TypeError");
  await rejectsWith(subtle.deriveKey(h, hkdf, { name: "HMAC", hash: "SHA-256", length: 0 }, true, ["sign"]), "TypeError");
  await rejectsWith(subtle.deriveKey(h, hkdf, "HKDF", false, ["deriveBits"]), "OperationError");
  await rejectsWith(subtle.deriveKey(h, hkdf, { name: "AES-CBC", length: 128 }, true, []), "SyntaxError");
  await rejectsWith(subtle.deriveKey(h, hkdf, { name: "AES-CBC", length: 128 }, true, ["sign"]), "SyntaxError");
  await rejectsWith(subtle.deriveKey(h, hkdf, { name: "ECDH", namedCurve: "P-256" }, true, ["deriveBits"]),
    "NotSupportedError"); // ECDH has no "get key length"
  await rejectsWith(subtle.deriveKey(h, hkdf, { name: "ECDH" }, true, ["deriveBits"]), "TypeError");
  await rejectsWith(subtle.deriveKey({ ...h, hash: "SHA-3" }, hkdf, { name: "AES-CBC", length: 128 }, true, ["encrypt"]), "NotSupportedError");
});

test("patched prototypes do not break AES, wrapping or PBKDF2", async () => {
  const key = await aesKey("AES-GCM", unhex(gcm.key), ["encrypt", "decrypt", "wrapKey", "unwrapKey"]);
  const saved = { stringify: JSON.stringify, parse: JSON.parse, toJSON: Object.prototype.toJSON,
    iter: Array.prototype[Symbol.iterator], get: Map.prototype.get, has: Set.prototype.has };
  let pe, pw, pd;
  const pbkdf2 = await subtle.importKey("raw", utf8("password"), "PBKDF2", false, ["deriveBits"]);
  const iv = unhex(gcm.iv), pt = unhex(gcm.plaintext), salt = utf8("salt"); // before the patches
  try {
    JSON.stringify = () => { throw new Error("patched stringify"); };
    JSON.parse = () => { throw new Error("patched parse"); };
    Object.prototype.toJSON = () => "patched";
    Array.prototype[Symbol.iterator] = function* () { yield "patched"; };
    Map.prototype.get = () => undefined;
    Set.prototype.has = () => false;
    pe = subtle.encrypt({ name: "AES-GCM", iv }, key, pt);
    pw = subtle.wrapKey("jwk", key, key, { name: "AES-GCM", iv });
    pd = subtle.deriveBits({ name: "PBKDF2", hash: "SHA-1", salt, iterations: 2 }, pbkdf2, 160);
  } finally {
    JSON.stringify = saved.stringify;
    JSON.parse = saved.parse;
    delete Object.prototype.toJSON;
    Array.prototype[Symbol.iterator] = saved.iter;
    Map.prototype.get = saved.get;
    Set.prototype.has = saved.has;
  }
  assertEquals(hex(await pe), gcm.ct3 + gcm.tag3);
  const jwk = JSON.parse(new TextDecoder().decode(await subtle.decrypt({ name: "AES-GCM", iv: unhex(gcm.iv) }, key, await pw)));
  assertEquals(jwk, { alg: "A128GCM", ext: true, k: "_v_pkoZlcxxtao-UZzCDCA", key_ops: ["encrypt", "decrypt", "wrapKey", "unwrapKey"], kty: "oct" });
  assertEquals(hex(await pd), "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957");
});

test("PBKDF2 runs on the thread pool: timers fire meanwhile, concurrent derivations all settle right", async () => {
  const key = await subtle.importKey("raw", utf8("password"), "PBKDF2", false, ["deriveBits"]);
  const t0 = performance.now();
  let derivedAt = 0;
  const slow = subtle.deriveBits({ name: "PBKDF2", hash: "SHA-1", salt: utf8("salt"), iterations: 500000 }, key, 160)
    .then((bits) => { derivedAt = performance.now(); return bits; });
  // The loop thread is free: a timer set after the call fires long before the 500,000
  // iterations (a few hundred ms here; more under the sanitizers' load) are done.
  await new Promise((resolve) => setTimeout(resolve, 20));
  const timerAt = performance.now();
  assertStrictEquals(derivedAt, 0, "the timer fired first");
  assert(timerAt - t0 < 500, `the timer waited ${timerAt - t0} ms`);
  // hashlib.pbkdf2_hmac("sha1", b"password", b"salt", 500000, 20)
  assertEquals(hex(await slow), "1d12d93a92bd6462c5aef7887bd03f7bfca52452");
  assert(derivedAt > timerAt);
  // More derivations than an isolate may run at once (2): the rest wait their turn, in order.
  const cases = [[1, "0c60c80f961f0e71f3a9b524af6012062fe037a6"], [2, "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"],
    [4096, "4b007901b765489abead49d926f721d065a429c1"], [1, "0c60c80f961f0e71f3a9b524af6012062fe037a6"],
    [2, "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"]];
  const order = [];
  const all = cases.map(([iterations], i) => subtle.deriveBits({ name: "PBKDF2", hash: "SHA-1", salt: utf8("salt"), iterations },
    key, 160).then((bits) => { order.push(i); return hex(bits); }));
  const got = await Promise.all(all);
  assertEquals(got, cases.map(([, dk]) => dk));
  assertEquals(order.length, 5);
});

test("PBKDF2 calls pile up only so far: past 256 pending, OperationError; the rest settle", async () => {
  const key = await subtle.importKey("raw", utf8("password"), "PBKDF2", false, ["deriveBits"]);
  const alg = { name: "PBKDF2", hash: "SHA-256", salt: utf8("salt"), iterations: 1 };
  const outcomes = await Promise.all(Array.from({ length: 300 }, () =>
    subtle.deriveBits(alg, key, 256).then(() => "ok", (e) => e.name)));
  const refused = outcomes.filter((o) => o === "OperationError").length;
  assertEquals(outcomes.filter((o) => o !== "ok" && o !== "OperationError"), []);
  assert(refused >= 300 - 256, `${refused} refused`);
  // Once they have settled, new calls are taken again.
  assertEquals(hex(await subtle.deriveBits(alg, key, 256)).length, 64);
});

test("inputs of a MiB or more run on the thread pool: same results as here, the input copied at the call", async () => {
  const big = new Uint8Array((1 << 20) + (1 << 18));
  for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 12)) & 0xff;
  // digest: the input is copied when the call is made; changing it after does not matter.
  const before = hex(await subtle.digest("SHA-256", big));
  const pending = subtle.digest("SHA-256", big);
  const saved = big.slice();
  big.fill(0);
  assertEquals(hex(await pending), before);
  assert(hex(await subtle.digest("SHA-256", big)) !== before, "a different input, a different digest");
  big.set(saved);
  // AES-CTR over 1.25 MiB (pool) equals the same stream cut in two short calls (here): the second
  // part starts from the counter advanced by the first part's blocks.
  const key = await subtle.importKey("raw", fill(7, 16), "AES-CTR", false, ["encrypt"]);
  const counter = fill(0, 16);
  counter[15] = 0xf0;
  const whole = new Uint8Array(await subtle.encrypt({ name: "AES-CTR", counter, length: 64 }, key, big));
  const cut = 1 << 19; // 32768 blocks
  const first = new Uint8Array(await subtle.encrypt({ name: "AES-CTR", counter, length: 64 }, key, big.subarray(0, cut)));
  const next = counter.slice();
  let carry = cut / 16;
  for (let i = 15; i >= 8 && carry > 0; i--) {
    const v = next[i] + (carry & 0xff);
    next[i] = v & 0xff;
    carry = (carry >>> 8) + (v >> 8);
  }
  const second = new Uint8Array(await subtle.encrypt({ name: "AES-CTR", counter: next, length: 64 }, key,
    big.subarray(cut, 2 * cut)));
  const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  assert(same(whole.subarray(0, cut), first), "the first part matches");
  assert(same(whole.subarray(cut, 2 * cut), second), "the second part matches");
  // AES-GCM and HMAC round trips on the pool; a tampered big ciphertext does not authenticate.
  const gcm = await subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
  const iv = fill(1, 12);
  const sealed = new Uint8Array(await subtle.encrypt({ name: "AES-GCM", iv }, gcm, big));
  assertEquals(sealed.length, big.length + 16);
  assertEquals(hex(await subtle.digest("SHA-256", await subtle.decrypt({ name: "AES-GCM", iv }, gcm, sealed))), before);
  sealed[12345] ^= 1;
  await rejectsWith(subtle.decrypt({ name: "AES-GCM", iv }, gcm, sealed), "OperationError");
  const mac = await hmacKey(utf8("k"), "SHA-256");
  const sig = await subtle.sign("HMAC", mac, big);
  assertStrictEquals(await subtle.verify("HMAC", mac, sig, big), true);
  big[0] ^= 1;
  assertStrictEquals(await subtle.verify("HMAC", mac, sig, big), false);
});

test("CryptoKey is serializable: structuredClone and postMessage give a working key with the same slots", async () => {
  const key = await subtle.importKey("raw", utf8("secret"), { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
  const copy = structuredClone({ k: key, list: [key] });
  assert(copy.k instanceof CryptoKey, "a CryptoKey");
  assert(copy.k !== key, "a new object");
  assertStrictEquals(copy.list[0], copy.k, "one key cloned once");
  assertEquals(copy.k.type, "secret");
  assertStrictEquals(copy.k.extractable, false);
  assertEquals(copy.k.algorithm, { name: "HMAC", hash: { name: "SHA-256" }, length: 48 });
  assert(copy.k.algorithm !== key.algorithm, "its own algorithm object");
  assertEquals(copy.k.usages, ["sign", "verify"]);
  const data = utf8("data");
  const sig = await subtle.sign("HMAC", copy.k, data);
  assertStrictEquals(await subtle.verify("HMAC", key, sig, data), true);
  // A non-extractable key stays so: the clone cannot be exported either.
  await rejectsWith(subtle.exportKey("raw", copy.k), "InvalidAccessError");
  // Through a MessageChannel.
  const { port1, port2 } = new MessageChannel();
  const got = new Promise((resolve) => { port2.onmessage = (e) => resolve(e.data); });
  port1.postMessage(key);
  const posted = await got;
  port1.close();
  port2.close();
  assert(posted instanceof CryptoKey && posted !== key, "posted as a new CryptoKey");
  assertStrictEquals(await subtle.verify("HMAC", posted, sig, data), true);
  // An object that only looks like a key is cloned as a plain object, not as a key.
  const fake = structuredClone(Object.create(null, { type: { value: "secret", enumerable: true } }));
  assert(!(fake instanceof CryptoKey), "not a CryptoKey");
});

test("long PBKDF2 runs in slices: a job queued behind two long derivations settles before either", async () => {
  const key = await subtle.importKey("raw", utf8("password"), "PBKDF2", false, ["deriveBits"]);
  const order = [];
  const long = (name) => subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt: utf8("salt"), iterations: 100000 },
    key, 256).then((bits) => { order.push(name); return hex(bits); });
  const a = long("a"), b = long("b"); // the isolate's two places on the pool
  const big = new Uint8Array((1 << 20) + 1); // a pool job too, queued behind them
  const d = subtle.digest("SHA-256", big).then(() => order.push("digest"));
  const [ha, hb] = await Promise.all([a, b, d]);
  assertEquals(order[0], "digest", `settled in the order ${order}`);
  assertEquals(ha, hb);
  // RFC 7914 §11 gives PBKDF2-HMAC-SHA-256 only for c = 1 and 80000; check the sliced code
  // against c = 80000 (more than one slice), 64 bytes (two blocks).
  const k2 = await subtle.importKey("raw", utf8("Password"), "PBKDF2", false, ["deriveBits"]);
  const bits = await subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt: utf8("NaCl"), iterations: 80000 }, k2, 512);
  assertEquals(hex(bits), "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56" +
    "a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d");
});
