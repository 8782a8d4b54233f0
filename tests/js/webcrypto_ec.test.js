// crypto.subtle's elliptic curves: ECDSA and ECDH (P-256, P-384, P-521), Ed25519, Ed448,
// X25519, X448. Known answers are typed in from RFC 8032 §7.1 (Ed25519 TEST 1-3), RFC 7748
// §6.1 (X25519 Alice and Bob), RFC 6979 A.2.5 (deterministic ECDSA P-256 with SHA-256, used
// here to verify) and RFC 5903 §8.1 (ECDH on the 256-bit random ECP group).
import { test, assert, assertEquals, fail } from "nano:test";
import { hex, rejectsWith, unhex, utf8 } from "./lib/webcrypto_util.js";

const subtle = crypto.subtle;
const b64u = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const cat = (...parts) => unhex(parts.join(""));


// PrivateKeyInfo (RFC 8410 §7) of an Ed25519 seed or an X25519 scalar.
const ed25519Pkcs8 = (seed) => cat("302e020100300506032b657004220420", seed);
const x25519Pkcs8 = (k) => cat("302e020100300506032b656e04220420", k);

// RFC 8032 §7.1: secret key, public key, message, signature.
const kEd25519 = [
  ["9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"],
  ["4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
    "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
    "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"],
  ["c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
    "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
    "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"],
];

test("Ed25519: RFC 8032 §7.1 TEST 1-3 sign to the same signatures and verify", async () => {
  for (const [seed, pub, msg, sig] of kEd25519) {
    const priv = await subtle.importKey("pkcs8", ed25519Pkcs8(seed), "Ed25519", true, ["sign"]);
    const jwk = await subtle.exportKey("jwk", priv);
    assertEquals(jwk.x, b64u(unhex(pub)), "the public key derived from the seed");
    assertEquals(jwk.d, b64u(unhex(seed)));
    assertEquals(hex(await subtle.sign("Ed25519", priv, unhex(msg))), sig, `signature of '${msg}'`);
    const key = await subtle.importKey("raw", unhex(pub), { name: "Ed25519" }, true, ["verify"]);
    assertEquals(await subtle.verify("Ed25519", key, unhex(sig), unhex(msg)), true);
    const bad = unhex(sig);
    bad[10] ^= 1;
    assertEquals(await subtle.verify("Ed25519", key, bad, unhex(msg)), false, "a flipped bit");
    assertEquals(await subtle.verify("Ed25519", key, unhex(sig), utf8("other")), false, "another message");
    assertEquals(await subtle.verify("Ed25519", key, unhex(sig).slice(0, 63), unhex(msg)), false, "63 bytes");
    assertEquals(await subtle.verify("Ed25519", key, new Uint8Array(0), unhex(msg)), false, "empty");
  }
});

test("X25519: RFC 7748 §6.1 Alice and Bob derive the same shared secret", async () => {
  const a = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
  const aPub = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
  const b = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
  const bPub = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";
  const k = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
  const alice = await subtle.importKey("pkcs8", x25519Pkcs8(a), "X25519", true, ["deriveBits"]);
  const bob = await subtle.importKey("jwk", { kty: "OKP", crv: "X25519", d: b64u(unhex(b)), x: b64u(unhex(bPub)) },
    "X25519", true, ["deriveBits", "deriveKey"]);
  assertEquals(hex(await subtle.exportKey("raw", await subtle.importKey("raw", unhex(aPub), "X25519", true, []))), aPub);
  assertEquals((await subtle.exportKey("jwk", alice)).x, b64u(unhex(aPub)), "Alice's public key");
  const alicePub = await subtle.importKey("raw", unhex(aPub), "X25519", false, []);
  const bobPub = await subtle.importKey("raw", unhex(bPub), "X25519", false, []);
  assertEquals(hex(await subtle.deriveBits({ name: "X25519", public: bobPub }, alice, 256)), k);
  assertEquals(hex(await subtle.deriveBits({ name: "X25519", public: alicePub }, bob, null)), k);
  assertEquals(hex(await subtle.deriveBits({ name: "X25519", public: alicePub }, bob, 12)), "4a50", "the first 12 bits");
  await rejectsWith(subtle.deriveBits({ name: "X25519", public: alicePub }, bob, 264), "OperationError");
  // deriveKey: the secret as an AES key.
  const aes = await subtle.deriveKey({ name: "X25519", public: alicePub }, bob, { name: "AES-GCM", length: 128 }, true,
    ["encrypt"]);
  assertEquals(hex(await subtle.exportKey("raw", aes)), k.slice(0, 32));
  // RFC 7748 §6.1: a small-order public key gives all zeros, which the spec refuses.
  const zero = await subtle.importKey("raw", new Uint8Array(32), "X25519", false, []);
  await rejectsWith(subtle.deriveBits({ name: "X25519", public: zero }, alice, 256), "OperationError");
});

// RFC 6979 A.2.5: the P-256 key and the SHA-256 signatures of "sample" and "test".
const kP256 = {
  d: "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721",
  x: "60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6",
  y: "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299",
};
const kP256Sigs = [
  ["sample", "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716" +
    "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8"],
  ["test", "f1abb023518351cd71d881567b1ea663ed3efcf6c5132b354f28d3b0b7d38367" +
    "019f4113742a2b14bd25926b49c649155f267e60d3814b4c0cc84250e46f0083"],
];
const p256Jwk = (withD) => ({ kty: "EC", crv: "P-256", x: b64u(unhex(kP256.x)), y: b64u(unhex(kP256.y)),
  ...(withD ? { d: b64u(unhex(kP256.d)) } : {}) });

test("ECDSA P-256: RFC 6979 A.2.5 signatures verify; ours verify and are 64 bytes r || s", async () => {
  const alg = { name: "ECDSA", hash: "SHA-256" };
  const pub = await subtle.importKey("raw", cat("04", kP256.x, kP256.y), { name: "ECDSA", namedCurve: "P-256" },
    true, ["verify"]);
  for (const [msg, sig] of kP256Sigs) {
    assertEquals(await subtle.verify(alg, pub, unhex(sig), utf8(msg)), true, msg);
    assertEquals(await subtle.verify({ name: "ECDSA", hash: "SHA-384" }, pub, unhex(sig), utf8(msg)), false, "another hash");
    const bad = unhex(sig);
    bad[40] ^= 0x80;
    assertEquals(await subtle.verify(alg, pub, bad, utf8(msg)), false, "a flipped bit");
  }
  // Malformed signatures verify false and never throw: short, long, DER, zeros, all ones.
  const good = unhex(kP256Sigs[0][1]);
  const der = cat("3044", "0220", kP256Sigs[0][1].slice(0, 64), "0220", kP256Sigs[0][1].slice(64));
  for (const sig of [good.slice(0, 63), cat(kP256Sigs[0][1], "00"), der, new Uint8Array(64), new Uint8Array(64).fill(255),
    new Uint8Array(0), new Uint8Array(132)]) {
    assertEquals(await subtle.verify(alg, pub, sig, utf8("sample")), false, `a signature of ${sig.length} bytes`);
  }
  const priv = await subtle.importKey("jwk", p256Jwk(true), { name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]);
  for (const hash of ["SHA-1", "SHA-256", "SHA-384", "SHA-512"]) {
    const sig = await subtle.sign({ name: "ECDSA", hash }, priv, utf8("sample"));
    assertEquals(sig.byteLength, 64, hash);
    assertEquals(await subtle.verify({ name: "ECDSA", hash }, pub, sig, utf8("sample")), true, hash);
  }
});

// The native verifies r || s as DER it writes itself: each integer minimal, a zero byte before a
// high bit. P-521's top byte is 0 or 1, so about half its signatures have an r or s with a
// leading zero; P-256's have a high bit half the time. A MiB of data verifies on the thread pool.
test("ECDSA: many signatures of each curve verify (leading zeros, high bits); a MiB on the pool", async () => {
  for (const [namedCurve, hash, count] of [["P-256", "SHA-256", 300], ["P-384", "SHA-384", 60], ["P-521", "SHA-512", 60]]) {
    const { publicKey, privateKey } = await subtle.generateKey({ name: "ECDSA", namedCurve }, false, ["sign", "verify"]);
    const alg = { name: "ECDSA", hash };
    const n = { "P-256": 32, "P-384": 48, "P-521": 66 }[namedCurve];
    let zeros = 0;
    for (let i = 0; i < count; i++) {
      const msg = utf8(`message ${i}`);
      const sig = new Uint8Array(await subtle.sign(alg, privateKey, msg));
      if (sig[0] === 0 || sig[n] === 0) zeros++;
      assertEquals(await subtle.verify(alg, publicKey, sig, msg), true, `${namedCurve} #${i}`);
      if (i % 10 === 0) {
        const bad = sig.slice();
        bad[n - 1] ^= 1;
        assertEquals(await subtle.verify(alg, publicKey, bad, msg), false, `${namedCurve} #${i} r changed`);
        assertEquals(await subtle.verify(alg, publicKey, sig, utf8(`other ${i}`)), false, `${namedCurve} #${i} data`);
      }
    }
    if (namedCurve === "P-521") assert(zeros > 5, `P-521 signatures with a leading zero: ${zeros}`);
    const big = new Uint8Array((1 << 20) + 3).fill(7);
    const sig = await subtle.sign(alg, privateKey, big);
    assertEquals(await subtle.verify(alg, publicKey, sig, big), true, `${namedCurve} a MiB`);
    big[5] = 8;
    assertEquals(await subtle.verify(alg, publicKey, sig, big), false, `${namedCurve} a MiB, changed`);
  }
});

// sign and verify copy the data (and signature) only when normalizing the algorithm could run
// app code (25_webcrypto.js isInertAlgorithm); either way the data as at the call counts.
test("ECDSA sign and verify: the data and signature as at the call, whatever the algorithm runs", async () => {
  const { publicKey, privateKey } = await subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
  const msg = utf8("the message");
  const sig = new Uint8Array(await subtle.sign({ name: "ECDSA", hash: "SHA-256" }, privateKey, msg));
  const cases = [
    ["plain", () => ({ name: "ECDSA", hash: "SHA-256" })],
    ["hash object", () => ({ name: "ECDSA", hash: { name: "SHA-256" } })],
    ["getter on hash", (d, s) => ({ name: "ECDSA", get hash() { d[0] ^= 1; s[0] ^= 1; return "SHA-256"; } })],
    ["getter on hash.name", (d, s) => ({ name: "ECDSA", hash: { get name() { d[1] ^= 1; s[1] ^= 1; return "SHA-256"; } } })],
    ["Proxy hash", (d, s) => ({ name: "ECDSA", hash: new Proxy({ name: "SHA-256" }, { get(t, k) { d[2] ^= 1; s[2] ^= 1; return t[k]; } }) })],
    ["Proxy", (d, s) => new Proxy({ name: "ECDSA", hash: "SHA-256" }, { get(t, k) { d[3] ^= 1; s[3] ^= 1; return t[k]; } })],
    ["object name", (d, s) => ({ name: { toString() { d[4] ^= 1; s[4] ^= 1; return "ECDSA"; } }, hash: "SHA-256" })],
    ["lower-case name, getter on hash", (d, s) => ({ name: "ecdsa", get hash() { d[5] ^= 1; s[5] ^= 1; return "SHA-256"; } })],
  ];
  for (const [what, make] of cases) {
    const d = msg.slice(), s = sig.slice();
    assertEquals(await subtle.verify(make(d, s), publicKey, s, d), true, what);
    const d2 = msg.slice(), s2 = sig.slice();
    const made = new Uint8Array(await subtle.sign(make(d2, s2), privateKey, d2));
    assertEquals(await subtle.verify({ name: "ECDSA", hash: "SHA-256" }, publicKey, made, msg), true, `${what}: signed the data as at the call`);
  }
  Object.defineProperty(Object.prototype, "namedCurve", { configurable: true, get() { return undefined; } });
  const d = msg.slice(), s = sig.slice();
  Object.defineProperty(Object.prototype, "hash", { configurable: true, get() { d[0] ^= 1; s[0] ^= 1; return "SHA-256"; } });
  try {
    assertEquals(await subtle.verify({ name: "ECDSA" }, publicKey, s, d), true, "a getter on Object.prototype");
  } finally {
    delete Object.prototype.hash;
    delete Object.prototype.namedCurve;
  }
});

test("ECDH P-256: RFC 5903 §8.1 shared secret, both ways; length truncates", async () => {
  const i = "c88f01f510d9ac3f70a292daa2316de544e9aab8afe84049c62a9c57862d1433";
  const gix = "dad0b65394221cf9b051e1feca5787d098dfe637fc90b9ef945d0c3772581180";
  const giy = "5271a0461cdb8252d61f1c456fa3e59ab1f45b33accf5f58389e0577b8990bb3";
  const r = "c6ef9c5d78ae012a011164acb397ce2088685d8f06bf9be0b283ab46476bee53";
  const grx = "d12dfb5289c8d4f81208b70270398c342296970a0bccb74c736fc7554494bf63";
  const gry = "56fbf3ca366cc23e8157854c13c58d6aac23f046ada30f8353e74f33039872ab";
  const girx = "d6840f6b42f6edafd13116e0e12565202fef8e9ece7dce03812464d04b9442de";
  const alg = { name: "ECDH", namedCurve: "P-256" };
  const jwk = (x, y, d) => ({ kty: "EC", crv: "P-256", x: b64u(unhex(x)), y: b64u(unhex(y)), ...(d ? { d: b64u(unhex(d)) } : {}) });
  const initiator = await subtle.importKey("jwk", jwk(gix, giy, i), alg, true, ["deriveBits"]);
  const responder = await subtle.importKey("jwk", jwk(grx, gry, r), alg, true, ["deriveBits"]);
  const gr = await subtle.importKey("raw", cat("04", grx, gry), alg, true, []);
  const gi = await subtle.importKey("spki", await subtle.exportKey("spki", await subtle.importKey("jwk", jwk(gix, giy), alg, true, [])),
    alg, true, []);
  assertEquals(hex(await subtle.deriveBits({ name: "ECDH", public: gr }, initiator, 256)), girx);
  assertEquals(hex(await subtle.deriveBits({ name: "ECDH", public: gi }, responder, null)), girx);
  assertEquals(hex(await subtle.deriveBits({ name: "ECDH", public: gi }, responder, 128)), girx.slice(0, 32));
  assertEquals(hex(await subtle.deriveBits({ name: "ECDH", public: gi }, responder, 4)), "d0");
  assertEquals((await subtle.deriveBits({ name: "ECDH", public: gi }, responder, 0)).byteLength, 0);
  await rejectsWith(subtle.deriveBits({ name: "ECDH", public: gi }, responder, 264), "OperationError");
});

test("EC keys round-trip through raw, spki, pkcs8 and jwk on every curve; JWK shapes", async () => {
  for (const [name, usages, pubUsages] of [["ECDSA", ["sign", "verify"], ["verify"]], ["ECDH", ["deriveBits"], []]]) {
    for (const [namedCurve, n] of [["P-256", 32], ["P-384", 48], ["P-521", 66]]) {
      const alg = { name, namedCurve };
      const { publicKey, privateKey } = await subtle.generateKey(alg, true, usages);
      assertEquals([publicKey.type, publicKey.extractable, publicKey.usages], ["public", true, pubUsages]);
      assertEquals(publicKey.algorithm, { name, namedCurve });
      assertEquals(privateKey.algorithm, { name, namedCurve });
      assert(publicKey.algorithm !== privateKey.algorithm);
      const raw = new Uint8Array(await subtle.exportKey("raw", publicKey));
      assertEquals([raw.length, raw[0]], [1 + 2 * n, 4], "uncompressed point");
      const spki = await subtle.exportKey("spki", publicKey);
      const pkcs8 = await subtle.exportKey("pkcs8", privateKey);
      const jwk = await subtle.exportKey("jwk", privateKey);
      assertEquals(Object.keys(jwk), ["crv", "d", "ext", "key_ops", "kty", "x", "y"]);
      assertEquals([jwk.kty, jwk.crv, jwk.ext, jwk.key_ops], ["EC", namedCurve, true, usages.filter((u) => u !== "verify")]);
      for (const m of ["x", "y", "d"]) assertEquals(jwk[m].length, Math.ceil(n * 4 / 3), m);
      const pubJwk = await subtle.exportKey("jwk", publicKey);
      assertEquals(Object.keys(pubJwk), ["crv", "ext", "key_ops", "kty", "x", "y"]);
      assertEquals(hex(unhex(hex(raw))), hex(cat("04", hex(Uint8Array.from(atob(pubJwk.x.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0))),
        hex(Uint8Array.from(atob(pubJwk.y.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0))))));
      const again = [
        await subtle.importKey("raw", raw, alg, true, pubUsages),
        await subtle.importKey("spki", spki, alg, true, pubUsages),
        await subtle.importKey("jwk", pubJwk, alg, true, pubUsages),
      ];
      for (const k of again) assertEquals(hex(await subtle.exportKey("spki", k)), hex(spki));
      const privs = [
        await subtle.importKey("pkcs8", pkcs8, alg, true, privateKey.usages),
        await subtle.importKey("jwk", jwk, alg, true, privateKey.usages),
      ];
      for (const k of privs) assertEquals(hex(await subtle.exportKey("pkcs8", k)), hex(pkcs8));
      if (name === "ECDSA") {
        const sig = await subtle.sign({ name, hash: "SHA-512" }, privs[1], utf8("m"));
        assertEquals(sig.byteLength, 2 * n);
        assertEquals(await subtle.verify({ name, hash: "SHA-512" }, again[0], sig, utf8("m")), true);
      } else {
        const bits = await subtle.deriveBits({ name, public: again[2] }, privs[0], null);
        assertEquals(bits.byteLength, n);
      }
    }
  }
});

test("EC import: a compressed point is accepted and exported uncompressed; JWK alg rules", async () => {
  const alg = { name: "ECDSA", namedCurve: "P-256" };
  const odd = parseInt(kP256.y.slice(-2), 16) & 1;
  const compressed = cat(odd ? "03" : "02", kP256.x);
  const key = await subtle.importKey("raw", compressed, alg, true, ["verify"]);
  assertEquals(hex(await subtle.exportKey("raw", key)), `04${kP256.x}${kP256.y}`);
  assertEquals(await subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, unhex(kP256Sigs[0][1]), utf8("sample")), true);
  // ECDSA: alg must be the curve's ES alg; ECDH ignores it.
  await subtle.importKey("jwk", { ...p256Jwk(false), alg: "ES256" }, alg, true, ["verify"]);
  await rejectsWith(subtle.importKey("jwk", { ...p256Jwk(false), alg: "ES384" }, alg, true, ["verify"]), "DataError");
  await subtle.importKey("jwk", { ...p256Jwk(false), alg: "whatever" }, { name: "ECDH", namedCurve: "P-256" }, true, []);
  await rejectsWith(subtle.importKey("jwk", { ...p256Jwk(false), use: "enc" }, alg, true, ["verify"]), "DataError");
  await rejectsWith(subtle.importKey("jwk", { ...p256Jwk(true), use: "sig" }, { name: "ECDH", namedCurve: "P-256" }, true,
    ["deriveBits"]), "DataError");
  // The exported ECDSA JWK has no alg (the spec sets none); Ed25519's is "Ed25519".
  assertEquals((await subtle.exportKey("jwk", key)).alg, undefined);
});

test("OKP keys round-trip through raw, spki, pkcs8 and jwk; JWK shapes; Ed448 and X448 work", async () => {
  for (const [name, usages, pubUsages, n] of [["Ed25519", ["sign", "verify"], ["verify"], 32],
    ["Ed448", ["sign", "verify"], ["verify"], 57], ["X25519", ["deriveKey", "deriveBits"], [], 32],
    ["X448", ["deriveKey", "deriveBits"], [], 56]]) {
    const { publicKey, privateKey } = await subtle.generateKey({ name }, true, usages);
    assertEquals(publicKey.algorithm, { name });
    assertEquals([publicKey.usages, privateKey.usages], [pubUsages, usages.filter((u) => u !== "verify")]);
    const raw = await subtle.exportKey("raw", publicKey);
    assertEquals(raw.byteLength, n);
    const jwk = await subtle.exportKey("jwk", privateKey);
    const isEd = name.startsWith("Ed");
    assertEquals(Object.keys(jwk), isEd ? ["alg", "crv", "d", "ext", "key_ops", "kty", "x"] : ["crv", "d", "ext", "key_ops", "kty", "x"]);
    assertEquals([jwk.kty, jwk.crv, jwk.alg], ["OKP", name, isEd ? name : undefined]);
    const spki = await subtle.exportKey("spki", publicKey);
    const pkcs8 = await subtle.exportKey("pkcs8", privateKey);
    for (const [format, data, u] of [["raw", raw, pubUsages], ["spki", spki, pubUsages], ["pkcs8", pkcs8, privateKey.usages],
      ["jwk", jwk, privateKey.usages], ["jwk", { kty: "OKP", crv: name, x: jwk.x }, pubUsages]]) {
      const k = await subtle.importKey(format, data, name, true, u);
      assertEquals(hex(await subtle.exportKey("raw", k.type === "public" ? k
        : await subtle.importKey("jwk", { kty: "OKP", crv: name, x: jwk.x }, name, true, pubUsages))), hex(raw), format);
      if (format !== "jwk") assertEquals(hex(await subtle.exportKey(format, k)), hex(data), format);
    }
    if (isEd) {
      const sig = await subtle.sign(name, privateKey, utf8("m"));
      assertEquals(sig.byteLength, 2 * n);
      assertEquals(await subtle.verify(name, publicKey, sig, utf8("m")), true);
      assertEquals(await subtle.verify(name, publicKey, sig, utf8("n")), false);
    } else {
      const other = await subtle.generateKey({ name }, true, usages);
      const a = await subtle.deriveBits({ name, public: other.publicKey }, privateKey, null);
      const b = await subtle.deriveBits({ name, public: publicKey }, other.privateKey, n * 8);
      assertEquals([a.byteLength, hex(a)], [n, hex(b)]);
    }
  }
  // The JWK alg of an Ed25519 key: "Ed25519" or "EdDSA", exactly.
  const x = b64u(unhex(kEd25519[0][1]));
  await subtle.importKey("jwk", { kty: "OKP", crv: "Ed25519", x, alg: "EdDSA" }, "Ed25519", true, ["verify"]);
  await rejectsWith(subtle.importKey("jwk", { kty: "OKP", crv: "Ed25519", x, alg: "ed25519" }, "Ed25519", true, ["verify"]),
    "DataError");
  // Ed448 with a context is refused rather than signed without it.
  const ed448 = await subtle.generateKey("Ed448", false, ["sign"]);
  await rejectsWith(subtle.sign({ name: "Ed448", context: new Uint8Array(1) }, ed448.privateKey, utf8("m")), "NotSupportedError");
  assertEquals((await subtle.sign({ name: "Ed448", context: new Uint8Array(0) }, ed448.privateKey, utf8("m"))).byteLength, 114);
});

test("misuse: wrong key types, usages, curves and formats get the spec's errors", async () => {
  const ecdsa = await subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
  const ecdh = await subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, false, ["deriveBits"]);
  const ecdh384 = await subtle.generateKey({ name: "ECDH", namedCurve: "P-384" }, true, ["deriveBits"]);
  const x25519 = await subtle.generateKey("X25519", false, ["deriveBits"]);
  const ed = await subtle.generateKey("Ed25519", false, ["sign", "verify"]);
  const sha = { name: "ECDSA", hash: "SHA-256" };
  // generateKey
  await rejectsWith(subtle.generateKey({ name: "ECDSA", namedCurve: "P-192" }, true, ["sign"]), "NotSupportedError");
  await rejectsWith(subtle.generateKey({ name: "ECDSA" }, true, ["sign"]), "TypeError");
  await rejectsWith(subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["encrypt"]), "SyntaxError");
  await rejectsWith(subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["verify"]), "SyntaxError");
  await rejectsWith(subtle.generateKey("X25519", true, []), "SyntaxError");
  await rejectsWith(subtle.generateKey("Ed25519", true, ["deriveBits"]), "SyntaxError");
  // sign / verify with the wrong half or algorithm
  await rejectsWith(subtle.sign(sha, ecdsa.publicKey, utf8("m")), "InvalidAccessError");
  await rejectsWith(subtle.verify(sha, ecdsa.privateKey, new Uint8Array(64), utf8("m")), "InvalidAccessError");
  await rejectsWith(subtle.sign("Ed25519", ecdsa.privateKey, utf8("m")), "InvalidAccessError");
  await rejectsWith(subtle.sign({ name: "ECDSA" }, ecdsa.privateKey, utf8("m")), "TypeError");
  await rejectsWith(subtle.sign({ name: "ECDSA", hash: "MD5" }, ecdsa.privateKey, utf8("m")), "NotSupportedError");
  await rejectsWith(subtle.encrypt({ name: "ECDSA" }, ecdsa.publicKey, utf8("m")), "NotSupportedError");
  await rejectsWith(subtle.deriveBits("Ed25519", ed.privateKey, 8), "NotSupportedError");
  // deriveBits: the public member must be a public key of the same algorithm and curve
  await rejectsWith(subtle.deriveBits({ name: "ECDH", public: ecdh.privateKey }, ecdh.privateKey, 8), "InvalidAccessError");
  await rejectsWith(subtle.deriveBits({ name: "ECDH", public: ecdsa.publicKey }, ecdh.privateKey, 8), "InvalidAccessError");
  await rejectsWith(subtle.deriveBits({ name: "ECDH", public: ecdh384.publicKey }, ecdh.privateKey, 8), "InvalidAccessError");
  await rejectsWith(subtle.deriveBits({ name: "ECDH", public: x25519.publicKey }, ecdh.privateKey, 8), "InvalidAccessError");
  await rejectsWith(subtle.deriveBits({ name: "X25519", public: ecdh.publicKey }, x25519.privateKey, 8), "InvalidAccessError");
  await rejectsWith(subtle.deriveBits({ name: "ECDH", public: {} }, ecdh.privateKey, 8), "TypeError");
  await rejectsWith(subtle.deriveBits({ name: "ECDH" }, ecdh.privateKey, 8), "TypeError");
  await rejectsWith(subtle.deriveBits({ name: "ECDH", public: ecdh.publicKey }, ecdh.publicKey, 8), "InvalidAccessError");
  // export: non-extractable, or the format of the other half
  await rejectsWith(subtle.exportKey("pkcs8", ecdsa.privateKey), "InvalidAccessError");
  await rejectsWith(subtle.exportKey("pkcs8", ecdh384.publicKey), "InvalidAccessError");
  await rejectsWith(subtle.exportKey("raw", ecdh384.privateKey), "InvalidAccessError");
  await rejectsWith(subtle.exportKey("spki", ecdh384.privateKey), "InvalidAccessError");
  // import: usages of the other half, curves that do not match
  const spki384 = await subtle.exportKey("spki", ecdh384.publicKey);
  await rejectsWith(subtle.importKey("spki", spki384, { name: "ECDH", namedCurve: "P-256" }, true, []), "DataError");
  await rejectsWith(subtle.importKey("spki", spki384, { name: "ECDSA", namedCurve: "P-384" }, true, ["sign"]), "SyntaxError");
  await rejectsWith(subtle.importKey("spki", spki384, { name: "ECDH", namedCurve: "P-384" }, true, ["deriveBits"]), "SyntaxError");
  await rejectsWith(subtle.importKey("spki", spki384, "X25519", true, []), "DataError");
  await rejectsWith(subtle.importKey("pkcs8", await subtle.exportKey("pkcs8", ecdh384.privateKey), { name: "ECDH", namedCurve: "P-384" },
    true, []), "SyntaxError");
  await rejectsWith(subtle.importKey("jwk", { ...p256Jwk(false), crv: "P-384" }, { name: "ECDSA", namedCurve: "P-256" }, true,
    ["verify"]), "DataError");
  await rejectsWith(subtle.importKey("jwk", p256Jwk(false), { name: "ECDSA", namedCurve: "P-384" }, true, ["verify"]), "DataError");
  await rejectsWith(subtle.importKey("raw", cat("04", kP256.x, kP256.y), { name: "ECDSA", namedCurve: "P-384" }, true, ["verify"]),
    "DataError");
  await rejectsWith(subtle.importKey("raw", cat("04", kP256.x, kP256.y), { name: "ECDSA", namedCurve: "P-256" }, true, ["sign"]),
    "SyntaxError");
  // A public key without usages is fine.
  assertEquals((await subtle.importKey("raw", cat("04", kP256.x, kP256.y), { name: "ECDSA", namedCurve: "P-256" }, true, [])).usages, []);
  await rejectsWith(subtle.importKey("pkcs8", ed25519Pkcs8(kEd25519[0][0]), "Ed25519", true, []), "SyntaxError");
  await rejectsWith(subtle.importKey("raw", unhex(kEd25519[0][1]), "Ed25519", true, ["sign"]), "SyntaxError");
  await rejectsWith(subtle.importKey("pkcs8", ed25519Pkcs8(kEd25519[0][0]), "X25519", true, ["deriveBits"]), "DataError");
  await rejectsWith(subtle.importKey("jwk", { kty: "OKP", crv: "X25519", x: b64u(unhex(kEd25519[0][1])) }, "Ed25519", true,
    ["verify"]), "DataError");
  // the JWK's x is not the public key of its d
  await rejectsWith(subtle.importKey("jwk", { kty: "OKP", crv: "Ed25519", d: b64u(unhex(kEd25519[0][0])),
    x: b64u(unhex(kEd25519[1][1])) }, "Ed25519", true, ["sign"]), "DataError");
  await rejectsWith(subtle.importKey("jwk", { ...p256Jwk(true), d: b64u(unhex(kP256.x)) }, { name: "ECDSA", namedCurve: "P-256" },
    true, ["sign"]), "DataError");
});

test("hostile key data gets a clean DataError: garbage DER, points off the curve, short or NUL members", async () => {
  const alg = { name: "ECDSA", namedCurve: "P-256" };
  const spki = await subtle.exportKey("spki", await subtle.importKey("jwk", p256Jwk(false), alg, true, ["verify"]));
  const offCurve = unhex(hex(spki));
  offCurve[offCurve.length - 1] ^= 1; // y no longer matches x
  const truncated = new Uint8Array(spki).slice(0, 40);
  const trailing = cat(hex(spki), "00");
  for (const [format, data] of [["spki", offCurve], ["spki", truncated], ["spki", trailing], ["spki", new Uint8Array(0)],
    ["spki", utf8("garbage garbage garbage")], ["pkcs8", new Uint8Array(100)], ["pkcs8", spki],
    ["raw", cat("04", kP256.x, kP256.y.slice(0, -2) + "00")], ["raw", cat("04", kP256.x)], ["raw", new Uint8Array(0)],
    ["raw", new Uint8Array(65)], ["raw", cat("05", kP256.x, kP256.y)], ["raw", cat("02", "ff".repeat(32))],
    ["raw", cat("04", "ff".repeat(64))]]) {
    await rejectsWith(subtle.importKey(format, data, alg, true, format === "pkcs8" ? ["sign"] : ["verify"]), "DataError");
  }
  const jwkCases = [
    { ...p256Jwk(false), x: b64u(unhex(kP256.x).slice(0, 8)) }, // an 8-byte x
    { ...p256Jwk(false), y: b64u(unhex(kP256.y).slice(0, 31)) },
    { ...p256Jwk(false), x: "AA\u0000AAA" },
    { ...p256Jwk(false), x: "%%%" },
    { ...p256Jwk(false), x: undefined },
    { ...p256Jwk(false), y: b64u(new Uint8Array(32)) }, // off the curve
    { ...p256Jwk(false), crv: undefined },
    { ...p256Jwk(false), kty: "OKP" },
  ];
  for (const jwk of jwkCases) await rejectsWith(subtle.importKey("jwk", jwk, alg, true, ["verify"]), "DataError");
  await rejectsWith(subtle.importKey("jwk", { ...p256Jwk(true), d: b64u(new Uint8Array(32)) }, alg, true, ["sign"]), "DataError");
  await rejectsWith(subtle.importKey("jwk", { ...p256Jwk(true), d: "AAAA" }, alg, true, ["sign"]), "DataError");
  for (const [name, n] of [["Ed25519", 32], ["X25519", 32], ["Ed448", 57], ["X448", 56]]) {
    const u = name.startsWith("Ed") ? ["verify"] : [];
    for (const len of [0, 8, n - 1, n + 1]) await rejectsWith(subtle.importKey("raw", new Uint8Array(len), name, true, u), "DataError");
    await rejectsWith(subtle.importKey("jwk", { kty: "OKP", crv: name, x: b64u(new Uint8Array(8)) }, name, true, u), "DataError");
    await rejectsWith(subtle.importKey("jwk", { kty: "OKP", crv: name, x: "\u0000" }, name, true, u), "DataError");
    await rejectsWith(subtle.importKey("jwk", { kty: "OKP", crv: name }, name, true, u), "DataError");
    await rejectsWith(subtle.importKey("spki", new Uint8Array(44), name, true, u), "DataError");
  }
  // Small-order Ed25519 points: the key imports, nothing verifies against it.
  const small = await subtle.importKey("raw", cat("01", "00".repeat(31)), "Ed25519", false, ["verify"]);
  assertEquals(await subtle.verify("Ed25519", small, cat("01", "00".repeat(63)), utf8("")), false);
});

test("patched prototypes do not break EC generation, import, export, signing or derivation", async () => {
  const saved = { iter: Array.prototype[Symbol.iterator], get: Map.prototype.get, has: Set.prototype.has,
    push: Array.prototype.push, set: Uint8Array.prototype.set };
  const alg = { name: "ECDSA", namedCurve: "P-256" };
  const data = utf8("sample"), raw = cat("04", kP256.x, kP256.y), jwk = p256Jwk(true); // before the patches
  const x = b64u(unhex(kEd25519[0][1]));
  // keyUsages is a WebIDL sequence, which iterates with the array's own iterator: an iterable
  // that does not use Array.prototype's.
  const usages = (...list) => ({ [Symbol.iterator]() {
    let i = 0;
    return { next: () => (i < list.length ? { value: list[i++], done: false } : { value: undefined, done: true }) };
  } });
  let pending;
  try {
    Array.prototype[Symbol.iterator] = function* () { yield "patched"; };
    Map.prototype.get = () => undefined;
    Set.prototype.has = () => false;
    Array.prototype.push = () => { throw new Error("patched push"); };
    Uint8Array.prototype.set = () => { throw new Error("patched set"); };
    pending = [
      subtle.generateKey(alg, true, usages("sign", "verify")),
      subtle.importKey("raw", raw, alg, true, usages("verify")),
      subtle.importKey("jwk", jwk, alg, true, usages("sign")),
      subtle.importKey("jwk", { kty: "OKP", crv: "Ed25519", x }, "Ed25519", true, usages("verify")),
      subtle.generateKey("X25519", true, usages("deriveBits")),
    ];
  } finally {
    Array.prototype[Symbol.iterator] = saved.iter;
    Map.prototype.get = saved.get;
    Set.prototype.has = saved.has;
    Array.prototype.push = saved.push;
    Uint8Array.prototype.set = saved.set;
  }
  const [pair, pub, priv, ed, xpair] = await Promise.all(pending);
  assertEquals(pair.publicKey.usages, ["verify"]);
  assertEquals(hex(await subtle.exportKey("raw", pub)), hex(raw));
  assertEquals((await subtle.exportKey("jwk", priv)).d, jwk.d);
  assertEquals(await subtle.verify({ name: "ECDSA", hash: "SHA-256" }, pub, unhex(kP256Sigs[0][1]), data), true);
  assertEquals(hex(await subtle.exportKey("raw", ed)), kEd25519[0][1]);
  assertEquals((await subtle.deriveBits({ name: "X25519", public: xpair.publicKey }, xpair.privateKey, null)).byteLength, 32);
});

test("structuredClone of EC and OKP keys: same type, algorithm, usages and key", async () => {
  const pair = await subtle.generateKey({ name: "ECDSA", namedCurve: "P-384" }, false, ["sign", "verify"]);
  const priv = structuredClone(pair.privateKey);
  assert(priv instanceof CryptoKey && priv !== pair.privateKey);
  assertEquals([priv.type, priv.extractable, priv.algorithm, priv.usages],
    ["private", false, { name: "ECDSA", namedCurve: "P-384" }, ["sign"]]);
  const sig = await subtle.sign({ name: "ECDSA", hash: "SHA-384" }, priv, utf8("m"));
  assertEquals(await subtle.verify({ name: "ECDSA", hash: "SHA-384" }, structuredClone(pair.publicKey), sig, utf8("m")), true);
  const x = await subtle.generateKey("X448", true, ["deriveBits"]);
  const a = await subtle.deriveBits({ name: "X448", public: structuredClone(x.publicKey) }, structuredClone(x.privateKey), null);
  const b = await subtle.deriveBits({ name: "X448", public: x.publicKey }, x.privateKey, null);
  assertEquals(hex(a), hex(b));
});

test("ECDSA and Ed25519 sign and verify inputs of a MiB or more on the thread pool, with the same results", async () => {
  const big = new Uint8Array((1 << 20) + 3);
  for (let i = 0; i < big.length; i++) big[i] = i & 0xff;
  const ec = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
  const ed = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
  const ecdsa = { name: "ECDSA", hash: "SHA-256" };
  // A signature made on the pool verifies here (the digest of the same bytes), and back.
  const sig = await crypto.subtle.sign(ecdsa, ec.privateKey, big);
  if (sig.byteLength !== 64) throw new Error(`P-256 signature of ${sig.byteLength} bytes`);
  if (!(await crypto.subtle.verify(ecdsa, ec.publicKey, sig, big))) throw new Error("pool ECDSA verify");
  const edSig = await crypto.subtle.sign("Ed25519", ed.privateKey, big);
  // The timer check: on the pool a timer set now fires before the verification settles.
  let fired = false;
  setTimeout(() => { fired = true; }, 0);
  const ok = await crypto.subtle.verify("Ed25519", ed.publicKey, edSig, big);
  if (!ok) throw new Error("pool Ed25519 verify");
  if (!fired) throw new Error("the verification of a MiB ran on the app's thread");
  big[big.length - 1] ^= 1;
  if (await crypto.subtle.verify(ecdsa, ec.publicKey, sig, big)) throw new Error("tampered ECDSA input verified");
  if (await crypto.subtle.verify("Ed25519", ed.publicKey, edSig, big)) throw new Error("tampered Ed25519 input verified");
});

// A P-256 key with explicit curve parameters (openssl ecparam -param_enc explicit), which
// OpenSSL itself would match to prime256v1: RFC 5480's namedCurve is the only form the spec
// accepts.
const kExplicitPkcs8 = "MIIBeQIBADCCAQMGByqGSM49AgEwgfcCAQEwLAYHKoZIzj0BAQIhAP////8AAAABAAAAAAAAAAAAAAAA////////////////MFsEIP////8AAAABAAAAAAAAAAAAAAAA///////////////8BCBaxjXYqjqT57PrvVV2mIa8ZR0GsMxTsPY7zjw+J9JgSwMVAMSdNgiG5wSTamZ44ROdJreBn36QBEEEaxfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpZP40Li/hp/m47n60p8D54WK84zV2sxXs7LtkBoN79R9QIhAP////8AAAAA//////////+85vqtpxeehPO5ysL8YyVRAgEBBG0wawIBAQQgMXSLskFaiAUKPJ0fGJQ9t2hXojbfWtQDG/iHOkkoyh6hRANCAASoQqS2I/UEXAjdsxE+43EEwPTaoMN75F2QVL89Q5o6vXcQnIYpzNtoM6IU769MPXEpp6/qql+OgrMpI4dTb0v5";
const kExplicitSpki = "MIIBSzCCAQMGByqGSM49AgEwgfcCAQEwLAYHKoZIzj0BAQIhAP////8AAAABAAAAAAAAAAAAAAAA////////////////MFsEIP////8AAAABAAAAAAAAAAAAAAAA///////////////8BCBaxjXYqjqT57PrvVV2mIa8ZR0GsMxTsPY7zjw+J9JgSwMVAMSdNgiG5wSTamZ44ROdJreBn36QBEEEaxfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpZP40Li/hp/m47n60p8D54WK84zV2sxXs7LtkBoN79R9QIhAP////8AAAAA//////////+85vqtpxeehPO5ysL8YyVRAgEBA0IABKhCpLYj9QRcCN2zET7jcQTA9Nqgw3vkXZBUvz1Dmjq9dxCchinM22gzohTvr0w9cSmnr+qqX46Csykjh1NvS/k=";

test("spki and pkcs8 keys with explicit curve parameters are DataError, even of P-256's", async () => {
  const b64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  for (const name of ["ECDSA", "ECDH"]) {
    const alg = { name, namedCurve: "P-256" };
    await rejectsWith(subtle.importKey("pkcs8", b64(kExplicitPkcs8), alg, true, name === "ECDSA" ? ["sign"] : ["deriveBits"]), "DataError");
    await rejectsWith(subtle.importKey("spki", b64(kExplicitSpki), alg, true, name === "ECDSA" ? ["verify"] : []), "DataError");
  }
});
