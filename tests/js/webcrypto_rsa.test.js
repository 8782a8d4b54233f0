// crypto.subtle RSA: RSASSA-PKCS1-v1_5, RSA-PSS and RSA-OAEP (W3C Web Cryptography API §20-22).
// Known answers come from the `openssl` command line (OpenSSL 3.0) with one fixed key, typed in
// below: RSASSA-PKCS1-v1_5 and RSA-PSS with an empty salt are deterministic, so their
// signatures must come out byte for byte; randomized PSS signatures and OAEP ciphertexts made
// by openssl must verify and decrypt. Then round trips through every format, JWK shapes, the
// spec's errors, and hostile input.
import { test, assert, assertEquals, assertStrictEquals, fail } from "nano:test";
import { hex, rejectsWith, unhex, utf8 } from "./lib/webcrypto_util.js";

const subtle = crypto.subtle;
const unbase64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const F4 = new Uint8Array([1, 0, 1]);


// A 2048-bit key made with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`;
// its numbers as `openssl rsa -text` prints them, in base64url (JWA §6.3).
const kJwk = {
  kty: "RSA",
  n: "tghmD3lG6yzQPmWgYIAZTP7cUL9ID1QE3kp2ezzOnGqoBrMPKEoFBKeHWLwqzE1Eqz2vL5iZKMrea9noMFSvJPv1_z5PBC9i" +
    "gyVvkFDP-2sBm-f9Ievn3dC73f07_wrWocubQ2jkWoGuSLOVg_PmjLpzp6iTryF1xXO84bEi0L5XkaHkSv8Ed9zdDiNxYqOs" +
    "gcF_ffW0Tnvrbf86gSKUr_erPrd33fUSYB4Q5rGNB49kLj7ByIsweqc9p_Euoc2m2wLboU47J83FO_7fT_STXZ2ldeUBcqlQ" +
    "D-OGqlfvY2etKhgY0tGWDyLLdGFh9QdBBwoC8XO4fRhwJyXi51vWSQ",
  e: "AQAB",
  d: "BmAbmFB6aA41FO-2Qur5ooq36KlqZVm0pJxzCInuqpJ0ZBetYOSGxyJJnpVTN73qY8el9RghH8lLKk0te_6F9oOkmqtHVTGG" +
    "VRWLPMC30r8YBVUwtm7EENluBa5dhZHkRoe9CQq0GhS5_UMyP2GGzPL9eKfHfwtq9olr2h5mxmzKUep7qKrJGLWzFwrQELCm" +
    "z5KXFVgEjqJqlcZrBAUi2zF85EgYDS7b3RB4RGBAjVRjMOh4WsvRKQThJ5_xN5CCuUwrdCh52QEJmLPX5FJrjHVw5ilIhEMf" +
    "3dr22JZwLvpRpWIpCIDsANldeJf50Et1UZVuyb2zu6ByrTC8RCdNAQ",
  p: "8mjPmPi3IFFnFWAMRq38lO8ONNOerZB-lKUVlvotSQRs-YtBsqcs3hAIojCIkDhv3HdCgIcXkJRFLpV_BLEAS7TyyeYwD5kl" +
    "6Ge3Kuw_gfxIsYHKV1CVY0t5cm-q9MY1bSRZMFRga-iY9pH2FkeT8ms2bm43ruzo1oHDF45mOXE",
  q: "wD0HzU_tIbJ0KqLywjhA1kPzwe-p3hJ-4D5apITvBsghLTpzbaGs8tDTxz815VwkThhHIxNVSwsb_4zbzQ2uipuXPCZ-Ffpx" +
    "vY4nEkekITGik1aHOEYa5laATpKRO70cxEGyS8GpsPq9eMPF0CVQxpLlAwUmdYZ_8Vl2QuIwvlk",
  dp: "auc6FjYpXIFJuq1-_HSiXXQHidiBs_1zNU6QdOKjsf3XqT12nbkIGm5rwEszDpc1Db8yfsgU5lfdIqwfNgxxGvIT2GJBc7-Q" +
    "biu_JZjGcSa3UEDy4QrSttWEG6mPdR8sVJOhGaU8WJpdSvAX3L94SYJqoMzOlcA49tCHHw5XmqE",
  dq: "L_KI8aKPyKnT45aE6gBR259TOvnl6me-kXu76_DkFVLxQ3CivaNnmaCQUc_oR26192yCwbLewTriHtkpMXnKIPQxwmTvadfv" +
    "apH8GMkZnNXecNVSIK0LpIvKsM5JvxaqCCFCsTZ6dpPzkh1yRzonbX_R8vDj6MhFPRNNNd1ovvE",
  qi: "vlhLQu5_1vV90nfWsFe7CcTFYeFytEp5AzpLpc3oQW2GvvKAPmDQImyNmS0Ogy0bCTuvqBizgGLmWA95KSFq7t0_kBTKeT8V" +
    "wkT5NJ2rgfeo7AxVUCSOh-wVRdczKcBQhsDNFxKooP6G18x3e2PH5HHxiyt0NdjN14h9lULbjpg",
};
// `openssl pkcs8 -topk8 -nocrypt -outform DER` and `openssl pkey -pubout -outform DER`.
const kPkcs8 = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC2CGYPeUbrLNA+ZaBggBlM/txQv0gPVATeSnZ7PM6caqgG" +
    "sw8oSgUEp4dYvCrMTUSrPa8vmJkoyt5r2egwVK8k+/X/Pk8EL2KDJW+QUM/7awGb5/0h6+fd0Lvd/Tv/Ctahy5tDaORaga5I" +
    "s5WD8+aMunOnqJOvIXXFc7zhsSLQvleRoeRK/wR33N0OI3Fio6yBwX999bROe+tt/zqBIpSv96s+t3fd9RJgHhDmsY0Hj2Qu" +
    "PsHIizB6pz2n8S6hzabbAtuhTjsnzcU7/t9P9JNdnaV15QFyqVAP44aqV+9jZ60qGBjS0ZYPIst0YWH1B0EHCgLxc7h9GHAn" +
    "JeLnW9ZJAgMBAAECggEABmAbmFB6aA41FO+2Qur5ooq36KlqZVm0pJxzCInuqpJ0ZBetYOSGxyJJnpVTN73qY8el9RghH8lL" +
    "Kk0te/6F9oOkmqtHVTGGVRWLPMC30r8YBVUwtm7EENluBa5dhZHkRoe9CQq0GhS5/UMyP2GGzPL9eKfHfwtq9olr2h5mxmzK" +
    "Uep7qKrJGLWzFwrQELCmz5KXFVgEjqJqlcZrBAUi2zF85EgYDS7b3RB4RGBAjVRjMOh4WsvRKQThJ5/xN5CCuUwrdCh52QEJ" +
    "mLPX5FJrjHVw5ilIhEMf3dr22JZwLvpRpWIpCIDsANldeJf50Et1UZVuyb2zu6ByrTC8RCdNAQKBgQDyaM+Y+LcgUWcVYAxG" +
    "rfyU7w40056tkH6UpRWW+i1JBGz5i0GypyzeEAiiMIiQOG/cd0KAhxeQlEUulX8EsQBLtPLJ5jAPmSXoZ7cq7D+B/EixgcpX" +
    "UJVjS3lyb6r0xjVtJFkwVGBr6Jj2kfYWR5PyazZubjeu7OjWgcMXjmY5cQKBgQDAPQfNT+0hsnQqovLCOEDWQ/PB76neEn7g" +
    "PlqkhO8GyCEtOnNtoazy0NPHPzXlXCROGEcjE1VLCxv/jNvNDa6Km5c8Jn4V+nG9jicSR6QhMaKTVoc4RhrmVoBOkpE7vRzE" +
    "QbJLwamw+r14w8XQJVDGkuUDBSZ1hn/xWXZC4jC+WQKBgGrnOhY2KVyBSbqtfvx0ol10B4nYgbP9czVOkHTio7H916k9dp25" +
    "CBpua8BLMw6XNQ2/Mn7IFOZX3SKsHzYMcRryE9hiQXO/kG4rvyWYxnEmt1BA8uEK0rbVhBupj3UfLFSToRmlPFiaXUrwF9y/" +
    "eEmCaqDMzpXAOPbQhx8OV5qhAoGAL/KI8aKPyKnT45aE6gBR259TOvnl6me+kXu76/DkFVLxQ3CivaNnmaCQUc/oR26192yC" +
    "wbLewTriHtkpMXnKIPQxwmTvadfvapH8GMkZnNXecNVSIK0LpIvKsM5JvxaqCCFCsTZ6dpPzkh1yRzonbX/R8vDj6MhFPRNN" +
    "Nd1ovvECgYEAvlhLQu5/1vV90nfWsFe7CcTFYeFytEp5AzpLpc3oQW2GvvKAPmDQImyNmS0Ogy0bCTuvqBizgGLmWA95KSFq" +
    "7t0/kBTKeT8VwkT5NJ2rgfeo7AxVUCSOh+wVRdczKcBQhsDNFxKooP6G18x3e2PH5HHxiyt0NdjN14h9lULbjpg=";
const kSpki = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAtghmD3lG6yzQPmWgYIAZTP7cUL9ID1QE3kp2ezzOnGqoBrMPKEoF" +
    "BKeHWLwqzE1Eqz2vL5iZKMrea9noMFSvJPv1/z5PBC9igyVvkFDP+2sBm+f9Ievn3dC73f07/wrWocubQ2jkWoGuSLOVg/Pm" +
    "jLpzp6iTryF1xXO84bEi0L5XkaHkSv8Ed9zdDiNxYqOsgcF/ffW0Tnvrbf86gSKUr/erPrd33fUSYB4Q5rGNB49kLj7ByIsw" +
    "eqc9p/Euoc2m2wLboU47J83FO/7fT/STXZ2ldeUBcqlQD+OGqlfvY2etKhgY0tGWDyLLdGFh9QdBBwoC8XO4fRhwJyXi51vW" +
    "SQIDAQAB";
// `openssl dgst -sha256 -sign` of "abc" (RSASSA-PKCS1-v1_5 is deterministic)
const kSigPkcs1Sha256 = "504b16e312274309e9e062d7a652120fa9dbdcda2b3da5512fe076a91c76dc17c14c8741a399e955c5813d5ac3381ac2" +
    "c1932e3fce3e380b96a0a5383fdb12d828fea4135cfe6353691b48dcd4eefd46a3e2f91edcd6ea47b602df90b542054e" +
    "fa82305a6c180b198124aec46cbdb65f672c526c709101dbb86ec3b6e7dabb9c280413b26295f926cf8b774fcf224190" +
    "3f3219ab43127c93237c36632aa08daab5a2642397da09f33f28fdca9c4c68f7f3aede9d6ec8a392cdc86b4f02cff0b9" +
    "e3deaff68a3872145f625489a14bb385701b63da8f5b9aa423b0f424883a3052c1b6f4c47656af4584f0e3ac1afee3d0" +
    "1ebf948ed93aec71a6f09ec02c20b573";
// `openssl dgst -sha1 -sign` of "abc"
const kSigPkcs1Sha1 = "8eaf874d374ec0a4067c74ab25c20ec1e961bd4f9614a1268da3f79b2409d10886419ebb9077088c01211c7ddb5af7d1" +
    "b8f07dc300f687677dbdc45c78e66bca1f407c235404545ae68ceb999e7ce56c892e0cc33e864014d3189b6a0305c784" +
    "cc2b69c8faf23cf678be49fd2e1a05ea61cb1ed4ae1879fb602eae86b8867029e07ea35f49f9a2ed4d44eac4e6c60da5" +
    "ab8aaff10117301d2b6ee62a5952b80ecf579caaf63102959c9f245fd3017f03ec3bde33e4b6343900c19db1ecf83c87" +
    "b336f192437769aba861697a46e0eeecccfec202230635ae12ebd85c6adfb4eccb9828e738e8b6349629f6d6a452d97c" +
    "93979e6a8134590d59ba14d76736dc09";
// `openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32` of "abc"
const kSigPss256 = "241b3c52f25a60178ef2ced83134cc569c7cea8a673dc1d4007c2d6653bbf2e947800197a13b4aa848c3e34ded176aa5" +
    "92a7edab83025550ac4fb309ced0c36b66144e4b76a0ab17e1c44fd6a7a9b0385ccc680d3f3fb8840a971eff7e4311ed" +
    "bf90d8c4c0ef88a18517d66dd245cd854fc0b821a82fa2e1918d8c66785fda136d9a97a78591cc5634a61e1ee7e993aa" +
    "298c74705bb40fd33485c1b1a1fc7cd6c78be13c186a7cce7f73e2c613f9f8ae1f8898644e5b841aadd64df0fb165dac" +
    "7a2d1daa52b3101afdb27c9476c913398a08adee63ef8204ad2d8f6570eabb817b72d24d45746e82428113e25da48c52" +
    "eb806153396023cf092fc49ae5f06855";
// the same with SHA-384 and rsa_pss_saltlen:0
const kSigPss384Salt0 = "4d214ccdd367a5c2a53a79f0c4b91b9bd80a123c6e665f2cf821f4c73d9296f65b0acb37ea85391cdbd028faddecbd65" +
    "f6e35c15ff64ce09ccff8f81dddd656433c5f3a421604dba89663ceb02814266514b875e9b4176bdc9779a589338d792" +
    "13fc7bd3467c99062db3b2ad0bcac23736c8922fa139dea2972fc174e56adad56a0cf51e3a501c78e8a22cd6dcd722a9" +
    "9bd3eafb7f707777773218a28e8bdeb2d38404fa10dad2be33b5444d6db2453ea2652ddf9c8b1093916d3d8ef2254b1a" +
    "d7ac6e1b7f431677396955f3893f493a1212efc05ebd470e585fbfe78b3c0f8b7754d336e5d4caf4463e14a1ed491464" +
    "548d91e12117886e2d58c74828511ac0";
// `openssl pkeyutl -encrypt` of "abc", rsa_oaep_md:sha256, rsa_mgf1_md:sha256, label "label"
const kOaep256Label = "0e9cbfc3c30fbe473afe02222b83dc0cc25c94444da13ddd8a35088f21b426ccb30282f16800a42b27a984cd399b14a6" +
    "2979ff883c69e50fc2a161a4f7476c4eb4661f7c9acbf668331577f31e93af523d6bdeb86adf8216919ed26fd6698530" +
    "49f967e4ff68c30dfb937f68acc5285e4468c109430f8aa823d7fb0d4321fd1d8f5f49f772a3ea946622eac90056a8ee" +
    "fe874f480a8492c5ec9fd191d214da4dec1d12dc2509db37dfc8ca36142ba36d25f7c9eed61646668b0a5f2b6d5eb49f" +
    "1b1a3298e21b2e54e97762353db9198a14e8c5338a24a367f549bc5806a54c3b4b8cc0ffeae116a0441589520a744dd3" +
    "8c73b622de6ac71e61c19db90fd05d61";
// the same with SHA-1 and no label
const kOaep1 = "ab4162519833af0de73eb7404de073ab8fef72b5946f26f120c35ee25781eaa4bef92160f8afd0c155ffdc545cc34e5a" +
    "65021f92790689c7486e9a8804b1008401800abfcf545d4f6c4886dbb269afe7c32b354c21838cfb6120200ff68a5dc8" +
    "edda7ff2935bbffd091278a21c62ab3eb9f53aea2c562f0550f07f8010eb50d54271b8f9ab5a59c979c9118557e64114" +
    "3eb453cc452399f6ce092b0b436cb8127c89ce8a97b0d5810f14c57a5aba0c615b69cc45474f23235df59d63bf0bd84e" +
    "fc7653a1a75ed34bd8da405ec79c797abeacbe5084728896086960b259fe3361310015e5ece9040a777817d8a430bf8d" +
    "5acdb77cfff54f9933bbc3f1e7ff7029";

// An EC P-256 key and an RSA key restricted to PSS (id-RSASSA-PSS), from `openssl genpkey`:
// neither is an rsaEncryption key.
const kEcSpki = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE/PO8SHxfFi9y0NFc7YY2RYxb/nTw9eFXvkSY64PP+sZnfdnz/vGUGvvw" +
  "PsjZuyamKy+nW/Zoj203v4XQXGqceQ==";
const kPssOidSpki = "MIGdMAsGCSqGSIb3DQEBCgOBjQAwgYkCgYEA7WKYGiVXu8Xk22WVlJdHPyW0TFPbNz1DVQubu0uGD5zBV6Vi3s32jG" +
  "Lko5ew9SJ6bYmvoAPz3a2/YvMLs3aofu4KnHcvRnU5c9kOCVTQCSfC7z8dvBzOqueWvjDB1opdTu1vXczsMy8n+659IjjeuMgxCzUe" +
  "ogDskFF9ukERW8kCAwEAAQ==";

const importPair = async (name, hash, pubUsages, privUsages, extractable = false) => ({
  publicKey: await subtle.importKey("spki", unbase64(kSpki), { name, hash }, extractable, pubUsages),
  privateKey: await subtle.importKey("pkcs8", unbase64(kPkcs8), { name, hash }, extractable, privUsages),
});
const gen = (name, modulusLength = 1024, usages = undefined, extra = {}) =>
  subtle.generateKey({ name, modulusLength, publicExponent: F4, hash: "SHA-256", ...extra }, true,
    usages ?? (name === "RSA-OAEP" ? ["encrypt", "decrypt", "wrapKey", "unwrapKey"] : ["sign", "verify"]));

// Started by the first test, checked by the last: a 4096-bit generation takes seconds here.
let pending4096;

test("generateKey of a 4096-bit key runs on the thread pool: the call returns at once and timers fire meanwhile", async () => {
  let ticks = 0;
  const interval = setInterval(() => ticks++, 10);
  const t0 = Date.now();
  pending4096 = gen("RSA-PSS", 4096);
  assert(Date.now() - t0 < 100, `generateKey returned after ${Date.now() - t0} ms`);
  await new Promise((resolve) => setTimeout(resolve, 200));
  clearInterval(interval);
  assert(ticks >= 5, `only ${ticks} ticks of a 10 ms interval in 200 ms`);
});

test("RSASSA-PKCS1-v1_5: openssl's signatures come out byte for byte and verify", async () => {
  const data = utf8("abc");
  for (const [hash, want] of [["SHA-256", kSigPkcs1Sha256], ["SHA-1", kSigPkcs1Sha1]]) {
    const { publicKey, privateKey } = await importPair("RSASSA-PKCS1-v1_5", hash, ["verify"], ["sign"]);
    const sig = await subtle.sign("RSASSA-PKCS1-v1_5", privateKey, data);
    assert(sig instanceof ArrayBuffer);
    assertEquals(hex(sig), want, hash);
    assertStrictEquals(await subtle.verify({ name: "RSASSA-PKCS1-v1_5" }, publicKey, unhex(want), data), true);
    assertStrictEquals(await subtle.verify("RSASSA-PKCS1-v1_5", publicKey, unhex(want), utf8("abd")), false);
  }
  // A SHA-256 signature does not verify with a SHA-1 key.
  const { publicKey } = await importPair("RSASSA-PKCS1-v1_5", "SHA-1", ["verify"], ["sign"]);
  assertStrictEquals(await subtle.verify("RSASSA-PKCS1-v1_5", publicKey, unhex(kSigPkcs1Sha256), data), false);
});

test("verify of a malformed signature is false, never an error", async () => {
  const { publicKey } = await importPair("RSASSA-PKCS1-v1_5", "SHA-256", ["verify"], ["sign"]);
  const pss = await importPair("RSA-PSS", "SHA-256", ["verify"], ["sign"]);
  const good = unhex(kSigPkcs1Sha256);
  const flipped = good.slice();
  flipped[100] ^= 1;
  const bad = [new Uint8Array(0), good.slice(1), new Uint8Array([...good, 0]), flipped,
    new Uint8Array(256).fill(0xff), new Uint8Array(256), new Uint8Array(1 << 16)];
  for (const sig of bad) {
    assertStrictEquals(await subtle.verify("RSASSA-PKCS1-v1_5", publicKey, sig, utf8("abc")), false);
    assertStrictEquals(await subtle.verify({ name: "RSA-PSS", saltLength: 32 }, pss.publicKey, sig, utf8("abc")), false);
  }
  // A salt length no key can hold.
  assertStrictEquals(await subtle.verify({ name: "RSA-PSS", saltLength: 4294967295 }, pss.publicKey,
    unhex(kSigPss256), utf8("abc")), false);
});

test("RSA-PSS: openssl's signatures verify with their salt length only; an empty salt is deterministic", async () => {
  const data = utf8("abc");
  const k256 = await importPair("RSA-PSS", "SHA-256", ["verify"], ["sign"]);
  assertStrictEquals(await subtle.verify({ name: "RSA-PSS", saltLength: 32 }, k256.publicKey, unhex(kSigPss256), data), true);
  assertStrictEquals(await subtle.verify({ name: "RSA-PSS", saltLength: 31 }, k256.publicKey, unhex(kSigPss256), data), false);
  assertStrictEquals(await subtle.verify({ name: "RSA-PSS", saltLength: 32 }, k256.publicKey, unhex(kSigPss256), utf8("abd")), false);
  const k384 = await importPair("RSA-PSS", "SHA-384", ["verify"], ["sign"]);
  assertStrictEquals(await subtle.verify({ name: "RSA-PSS", saltLength: 0 }, k384.publicKey, unhex(kSigPss384Salt0), data), true);
  assertEquals(hex(await subtle.sign({ name: "RSA-PSS", saltLength: 0 }, k384.privateKey, data)), kSigPss384Salt0);
  // A random salt: two signatures differ, both verify.
  const a = await subtle.sign({ name: "RSA-PSS", saltLength: 32 }, k256.privateKey, data);
  const b = await subtle.sign({ name: "RSA-PSS", saltLength: 32 }, k256.privateKey, data);
  assert(hex(a) !== hex(b), "two PSS signatures with a salt differ");
  for (const sig of [a, b]) {
    assertStrictEquals(await subtle.verify({ name: "RSA-PSS", saltLength: 32 }, k256.publicKey, sig, data), true);
  }
  // RFC 8017 §9.1.1: the salt fits in emLen - hLen - 2 bytes (256 - 32 - 2 for this key).
  const longest = await subtle.sign({ name: "RSA-PSS", saltLength: 222 }, k256.privateKey, data);
  assertStrictEquals(await subtle.verify({ name: "RSA-PSS", saltLength: 222 }, k256.publicKey, longest, data), true);
  await rejectsWith(subtle.sign({ name: "RSA-PSS", saltLength: 223 }, k256.privateKey, data), "OperationError");
  await rejectsWith(subtle.sign({ name: "RSA-PSS", saltLength: 4294967295 }, k256.privateKey, data), "OperationError");
});

test("RSA-OAEP: openssl's ciphertexts decrypt; the label must match; the plaintext has a bound", async () => {
  const k256 = await importPair("RSA-OAEP", "SHA-256", ["encrypt", "wrapKey"], ["decrypt", "unwrapKey"]);
  const k1 = await importPair("RSA-OAEP", "SHA-1", ["encrypt"], ["decrypt"]);
  const text = (buf) => new TextDecoder().decode(buf);
  assertEquals(text(await subtle.decrypt({ name: "RSA-OAEP", label: utf8("label") }, k256.privateKey, unhex(kOaep256Label))), "abc");
  assertEquals(text(await subtle.decrypt({ name: "RSA-OAEP" }, k1.privateKey, unhex(kOaep1))), "abc");
  assertEquals(text(await subtle.decrypt({ name: "RSA-OAEP", label: new Uint8Array(0) }, k1.privateKey, unhex(kOaep1))), "abc");
  await rejectsWith(subtle.decrypt({ name: "RSA-OAEP" }, k256.privateKey, unhex(kOaep256Label)), "OperationError");
  await rejectsWith(subtle.decrypt({ name: "RSA-OAEP", label: utf8("label") }, k1.privateKey, unhex(kOaep256Label)), "OperationError");
  const tampered = unhex(kOaep1);
  tampered[7] ^= 0x80;
  for (const c of [tampered, new Uint8Array(0), unhex(kOaep1).slice(1), new Uint8Array(256).fill(0xff)]) {
    await rejectsWith(subtle.decrypt("RSA-OAEP", k1.privateKey, c), "OperationError");
  }
  // RFC 8017 §7.1.1: at most k - 2 hLen - 2 bytes (256 - 64 - 2 with SHA-256).
  for (const n of [0, 1, 190]) {
    const plain = new Uint8Array(n).map((_, i) => i);
    const c = await subtle.encrypt({ name: "RSA-OAEP", label: utf8("x") }, k256.publicKey, plain);
    assertEquals(c.byteLength, 256);
    assertEquals(hex(await subtle.decrypt({ name: "RSA-OAEP", label: utf8("x") }, k256.privateKey, c)), hex(plain));
  }
  await rejectsWith(subtle.encrypt("RSA-OAEP", k256.publicKey, new Uint8Array(191)), "OperationError");
  await rejectsWith(subtle.encrypt("RSA-OAEP", k1.publicKey, new Uint8Array(215)), "OperationError");
});

test("formats: spki and pkcs8 round trip byte for byte; jwk holds openssl's numbers; jwk import gives the same key", async () => {
  for (const name of ["RSASSA-PKCS1-v1_5", "RSA-PSS", "RSA-OAEP"]) {
    const oaep = name === "RSA-OAEP";
    const { publicKey, privateKey } = await importPair(name, "SHA-256", oaep ? ["encrypt"] : ["verify"],
      oaep ? ["decrypt"] : ["sign"], true);
    assertEquals(hex(await subtle.exportKey("spki", publicKey)), hex(unbase64(kSpki)), name);
    assertEquals(hex(await subtle.exportKey("pkcs8", privateKey)), hex(unbase64(kPkcs8)), name);
    const alg = { "RSASSA-PKCS1-v1_5": "RS256", "RSA-PSS": "PS256", "RSA-OAEP": "RSA-OAEP-256" }[name];
    const jwk = await subtle.exportKey("jwk", privateKey);
    assertEquals(Object.keys(jwk), ["alg", "d", "dp", "dq", "e", "ext", "key_ops", "kty", "n", "p", "q", "qi"]);
    assertEquals(jwk, { ...kJwk, alg, ext: true, key_ops: [oaep ? "decrypt" : "sign"] });
    const pub = await subtle.exportKey("jwk", publicKey);
    assertEquals(Object.keys(pub), ["alg", "e", "ext", "key_ops", "kty", "n"]);
    assertEquals(pub, { alg, e: kJwk.e, ext: true, key_ops: [oaep ? "encrypt" : "verify"], kty: "RSA", n: kJwk.n });
    const fromJwk = await subtle.importKey("jwk", kJwk, { name, hash: "SHA-256" }, true, oaep ? ["decrypt"] : ["sign"]);
    assertEquals(fromJwk.type, "private");
    assertEquals(hex(await subtle.exportKey("pkcs8", fromJwk)), hex(unbase64(kPkcs8)), name);
    const pubFromJwk = await subtle.importKey("jwk", { kty: "RSA", n: kJwk.n, e: kJwk.e }, { name, hash: "SHA-256" },
      true, []);
    assertEquals(pubFromJwk.type, "public");
    assertEquals(hex(await subtle.exportKey("spki", pubFromJwk)), hex(unbase64(kSpki)), name);
  }
  // The key made from the JWK signs as openssl does.
  const k = await subtle.importKey("jwk", { ...kJwk, alg: "RS256" }, { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
    false, ["sign"]);
  assertEquals(hex(await subtle.sign("RSASSA-PKCS1-v1_5", k, utf8("abc"))), kSigPkcs1Sha256);
});

test("CryptoKey shapes: RsaHashedKeyAlgorithm, types, usages split between the pair, extractable", async () => {
  const { publicKey, privateKey } = await subtle.generateKey({ name: "rsa-oaep", modulusLength: 1024,
    publicExponent: new Uint8Array([0, 1, 0, 1]), hash: { name: "sha-512" } }, false,
    ["unwrapKey", "encrypt", "decrypt", "encrypt"]);
  assertEquals(publicKey.type, "public");
  assertEquals(privateKey.type, "private");
  assertStrictEquals(publicKey.extractable, true);
  assertStrictEquals(privateKey.extractable, false);
  assertEquals(publicKey.usages, ["encrypt"]);
  assertEquals(privateKey.usages, ["decrypt", "unwrapKey"]);
  assertEquals(Object.keys(privateKey.algorithm), ["name", "modulusLength", "publicExponent", "hash"]);
  assertEquals(privateKey.algorithm.name, "RSA-OAEP");
  assertEquals(privateKey.algorithm.modulusLength, 1024);
  assertEquals(privateKey.algorithm.hash, { name: "SHA-512" });
  // generateKey keeps the exponent as given (the spec's step); import gives it without zeros.
  assertEquals(privateKey.algorithm.publicExponent, new Uint8Array([0, 1, 0, 1]));
  assert(publicKey.algorithm.publicExponent !== privateKey.algorithm.publicExponent, "a copy per key");
  assertStrictEquals(privateKey.algorithm, privateKey.algorithm);
  const imported = await subtle.importKey("spki", await subtle.exportKey("spki", publicKey),
    { name: "RSA-OAEP", hash: "SHA-512" }, false, ["encrypt"]);
  assertEquals(imported.algorithm.publicExponent, F4);
  assertEquals(imported.algorithm.modulusLength, 1024);
  await rejectsWith(subtle.exportKey("jwk", privateKey), "InvalidAccessError");
  // e = 3 works too.
  const three = await subtle.generateKey({ name: "RSASSA-PKCS1-v1_5", modulusLength: 1024,
    publicExponent: new Uint8Array([3]), hash: "SHA-1" }, true, ["sign", "verify"]);
  assertEquals((await subtle.exportKey("jwk", three.publicKey)).e, "Aw");
  const sig = await subtle.sign("RSASSA-PKCS1-v1_5", three.privateKey, utf8("x"));
  assertStrictEquals(await subtle.verify("RSASSA-PKCS1-v1_5", three.publicKey, sig, utf8("x")), true);
  // A clone (structuredClone) shares the key.
  const clone = structuredClone(three.publicKey);
  assert(clone !== three.publicKey && clone instanceof CryptoKey);
  assertEquals(clone.algorithm, three.publicKey.algorithm);
  assertStrictEquals(await subtle.verify("RSASSA-PKCS1-v1_5", clone, sig, utf8("x")), true);
});

test("generated keys round trip through every format and still work", async () => {
  for (const name of ["RSASSA-PKCS1-v1_5", "RSA-PSS", "RSA-OAEP"]) {
    const oaep = name === "RSA-OAEP";
    const pair = await gen(name);
    const alg = { name, hash: "SHA-256" };
    const pub = [
      await subtle.importKey("spki", await subtle.exportKey("spki", pair.publicKey), alg, true, oaep ? ["encrypt"] : ["verify"]),
      await subtle.importKey("jwk", await subtle.exportKey("jwk", pair.publicKey), alg, true, oaep ? ["encrypt"] : ["verify"]),
    ];
    const priv = [
      await subtle.importKey("pkcs8", await subtle.exportKey("pkcs8", pair.privateKey), alg, true, oaep ? ["decrypt"] : ["sign"]),
      await subtle.importKey("jwk", await subtle.exportKey("jwk", pair.privateKey), alg, true, oaep ? ["decrypt"] : ["sign"]),
    ];
    const params = name === "RSA-PSS" ? { name, saltLength: 20 } : { name };
    for (const p of priv) {
      for (const q of pub) {
        if (oaep) {
          const c = await subtle.encrypt(params, q, utf8("secret"));
          assertEquals(new TextDecoder().decode(await subtle.decrypt(params, p, c)), "secret");
        } else {
          const sig = await subtle.sign(params, p, utf8("m"));
          assertStrictEquals(await subtle.verify(params, q, sig, utf8("m")), true);
        }
      }
    }
  }
});

test("RSA-OAEP wraps and unwraps keys (through encrypt and decrypt)", async () => {
  // A 2048-bit key: an AES key's JWK text (about 90 bytes) is too long for 1024 bits and SHA-256.
  const { publicKey, privateKey } = await importPair("RSA-OAEP", "SHA-256", ["wrapKey"], ["unwrapKey"]);
  const aes = await subtle.generateKey({ name: "AES-GCM", length: 128 }, true, ["encrypt"]);
  for (const format of ["raw", "jwk"]) {
    const wrapped = await subtle.wrapKey(format, aes, publicKey, { name: "RSA-OAEP", label: utf8("w") });
    assertEquals(wrapped.byteLength, 256);
    const back = await subtle.unwrapKey(format, wrapped, privateKey, { name: "RSA-OAEP", label: utf8("w") },
      "AES-GCM", true, ["encrypt"]);
    assertEquals(hex(await subtle.exportKey("raw", back)), hex(await subtle.exportKey("raw", aes)));
  }
  const pkcs1 = await gen("RSASSA-PKCS1-v1_5");
  await rejectsWith(subtle.wrapKey("raw", aes, pkcs1.publicKey, "RSASSA-PKCS1-v1_5"), "NotSupportedError");
});

test("misuse: the key's type, algorithm and usages are checked", async () => {
  const { publicKey, privateKey } = await importPair("RSASSA-PKCS1-v1_5", "SHA-256", ["verify"], ["sign"]);
  const pss = await importPair("RSA-PSS", "SHA-256", ["verify"], ["sign"]);
  const oaep = await importPair("RSA-OAEP", "SHA-256", ["encrypt"], ["decrypt"]);
  const data = utf8("abc");
  await rejectsWith(subtle.sign({ name: "RSA-PSS", saltLength: 0 }, privateKey, data), "InvalidAccessError");
  await rejectsWith(subtle.sign("RSASSA-PKCS1-v1_5", pss.privateKey, data), "InvalidAccessError");
  await rejectsWith(subtle.verify("RSASSA-PKCS1-v1_5", privateKey, unhex(kSigPkcs1Sha256), data), "InvalidAccessError");
  await rejectsWith(subtle.sign("RSASSA-PKCS1-v1_5", publicKey, data), "InvalidAccessError");
  await rejectsWith(subtle.encrypt("RSA-OAEP", oaep.privateKey, data), "InvalidAccessError");
  await rejectsWith(subtle.decrypt("RSA-OAEP", oaep.publicKey, unhex(kOaep1)), "InvalidAccessError");
  await rejectsWith(subtle.encrypt("RSA-OAEP", publicKey, data), "InvalidAccessError");
  // A key imported without the usage.
  const noSign = await subtle.importKey("jwk", kJwk, { name: "RSA-OAEP", hash: "SHA-256" }, false, ["unwrapKey"]);
  await rejectsWith(subtle.decrypt("RSA-OAEP", noSign, unhex(kOaep1)), "InvalidAccessError");
  // WebIDL: RsaPssParams.saltLength is required and [EnforceRange]; label is a BufferSource.
  await rejectsWith(subtle.sign("RSA-PSS", pss.privateKey, data), "TypeError");
  await rejectsWith(subtle.sign({ name: "RSA-PSS", saltLength: -1 }, pss.privateKey, data), "TypeError");
  await rejectsWith(subtle.sign({ name: "RSA-PSS", saltLength: 2 ** 32 }, pss.privateKey, data), "TypeError");
  await rejectsWith(subtle.encrypt({ name: "RSA-OAEP", label: "x" }, oaep.publicKey, data), "TypeError");
  // The encrypt/decrypt and sign/verify algorithms do not cross.
  await rejectsWith(subtle.encrypt("RSA-PSS", pss.publicKey, data), "NotSupportedError");
  await rejectsWith(subtle.sign("RSA-OAEP", oaep.privateKey, data), "NotSupportedError");
  await rejectsWith(subtle.deriveBits("RSA-OAEP", oaep.privateKey, 8), "NotSupportedError");
});

test("exportKey: each format for its key type only; raw is not an RSA format", async () => {
  const { publicKey, privateKey } = await importPair("RSA-PSS", "SHA-1", ["verify"], ["sign"], true);
  await rejectsWith(subtle.exportKey("spki", privateKey), "InvalidAccessError");
  await rejectsWith(subtle.exportKey("pkcs8", publicKey), "InvalidAccessError");
  await rejectsWith(subtle.exportKey("raw", publicKey), "NotSupportedError");
  await rejectsWith(subtle.importKey("raw", new Uint8Array(16), { name: "RSA-PSS", hash: "SHA-1" }, true, ["verify"]), "NotSupportedError");
  assertEquals((await subtle.exportKey("jwk", publicKey)).alg, "PS1");
  const nonExtractable = await subtle.importKey("pkcs8", unbase64(kPkcs8), { name: "RSA-PSS", hash: "SHA-1" }, false, ["sign"]);
  for (const f of ["pkcs8", "jwk"]) await rejectsWith(subtle.exportKey(f, nonExtractable), "InvalidAccessError");
});

test("generateKey: parameters, usages and their errors", async () => {
  const bad = async (alg, usages, name) => rejectsWith(subtle.generateKey(
    { name: "RSASSA-PKCS1-v1_5", modulusLength: 1024, publicExponent: F4, hash: "SHA-256", ...alg }, true,
    usages ?? ["sign", "verify"]), name);
  for (const modulusLength of [0, 512, 1016, 1020, 8200, 16384, 4294967295]) {
    await bad({ modulusLength }, undefined, "OperationError");
  }
  for (const e of [[], [0], [1], [2], [1, 0, 0], [1, 0, 0, 0, 0, 1], [0xff, 0xff, 0xff, 0xff, 0xff]]) {
    await bad({ publicExponent: new Uint8Array(e) }, undefined, "OperationError");
  }
  // Usages come first: a bad usage is a SyntaxError even with bad numbers.
  await bad({ modulusLength: 1 }, ["sign", "encrypt"], "SyntaxError");
  await bad({}, ["verify"], "SyntaxError"); // the private key would have no usage
  await bad({}, [], "SyntaxError");
  await rejectsWith(subtle.generateKey({ name: "RSA-OAEP", modulusLength: 1024, publicExponent: F4, hash: "SHA-1" },
    true, ["encrypt", "sign"]), "SyntaxError");
  await rejectsWith(subtle.generateKey({ name: "RSA-OAEP", modulusLength: 1024, publicExponent: F4, hash: "SHA-1" },
    true, ["encrypt", "wrapKey"]), "SyntaxError");
  // WebIDL: required members; BigInteger is a Uint8Array; [EnforceRange] modulusLength.
  await bad({ modulusLength: undefined }, undefined, "TypeError");
  await bad({ modulusLength: 2 ** 32 }, undefined, "TypeError");
  await bad({ modulusLength: NaN }, undefined, "TypeError");
  await bad({ publicExponent: undefined }, undefined, "TypeError");
  await bad({ publicExponent: [1, 0, 1] }, undefined, "TypeError");
  await bad({ publicExponent: new Uint16Array([3]) }, undefined, "TypeError");
  await bad({ publicExponent: new Uint8Array(new SharedArrayBuffer(3)) }, undefined, "TypeError");
  await bad({ hash: undefined }, undefined, "TypeError");
  await bad({ hash: "MD5" }, undefined, "NotSupportedError");
});

test("importKey jwk: kty, use, key_ops, ext, alg and the numbers are checked", async () => {
  const pkcs1 = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
  const pub = { kty: "RSA", n: kJwk.n, e: kJwk.e };
  const imp = (jwk, usages = ["sign"], alg = pkcs1, extractable = false) =>
    subtle.importKey("jwk", jwk, alg, extractable, usages);
  // Accepted.
  await imp({ ...kJwk, alg: "RS256", use: "sig", key_ops: ["verify", "sign"], ext: true }, ["sign"], pkcs1, true);
  await imp({ ...kJwk, alg: "RSA-OAEP-384", use: "enc" }, ["unwrapKey"], { name: "RSA-OAEP", hash: "SHA-384" });
  await imp({ ...kJwk, alg: "RSA-OAEP" }, ["decrypt"], { name: "RSA-OAEP", hash: "SHA-1" });
  await imp({ ...kJwk, alg: "PS512" }, ["sign"], { name: "RSA-PSS", hash: "SHA-512" });
  // SyntaxError: usages of the other half, or none for a private key.
  await rejectsWith(imp(kJwk, ["verify"]), "SyntaxError");
  await rejectsWith(imp(pub, ["sign"]), "SyntaxError");
  await rejectsWith(imp(kJwk, []), "SyntaxError");
  await rejectsWith(imp(kJwk, ["encrypt"], { name: "RSA-OAEP", hash: "SHA-1" }), "SyntaxError");
  // DataError.
  const data = [
    { ...kJwk, kty: "EC" }, { ...kJwk, kty: "RSA\0" }, { ...kJwk, kty: undefined },
    { ...kJwk, use: "enc" }, { ...kJwk, key_ops: ["verify"] }, { ...kJwk, key_ops: ["sign", "sign"] },
    { ...kJwk, alg: "RS384" }, { ...kJwk, alg: "PS256" }, { ...kJwk, alg: "RS256\0" }, { ...kJwk, alg: "rs256" },
    { ...kJwk, n: undefined }, { ...kJwk, e: undefined }, { ...kJwk, p: undefined }, { ...kJwk, qi: undefined },
    { ...kJwk, dp: undefined, dq: undefined, p: undefined, q: undefined, qi: undefined },
    { ...kJwk, dp: kJwk.dq, dq: kJwk.dp }, { ...kJwk, p: kJwk.q, q: kJwk.p }, { ...kJwk, d: kJwk.dp },
    { ...kJwk, e: "Aw" }, { ...kJwk, n: kJwk.n + "A" }, { ...kJwk, n: kJwk.n.slice(0, -4) },
    { ...kJwk, n: "AQAB\0" }, { ...kJwk, n: kJwk.n.replace("-", "+") }, { ...kJwk, n: kJwk.n + "==" },
    { ...kJwk, n: "" }, { ...kJwk, e: "" }, { ...kJwk, e: "AA" }, { ...kJwk, e: "AAAAAQ" },
    { ...kJwk, n: "A".repeat(1 << 20) }, { ...kJwk, n: "_".repeat(1 << 20) }, { ...kJwk, d: "_".repeat(1 << 20) },
  ];
  for (let i = 0; i < data.length; i++) {
    const e = await rejectsWith(imp(data[i]), "DataError").catch((err) => fail(`case ${i}: ${err.message}`));
    assert(e.message.length < 300, `case ${i}: a short message`);
  }
  for (const jwk of [{ ...pub, n: "A".repeat(1 << 20) }, { ...pub, n: "AQAB" }, { ...pub, e: "AQ" },
    { ...pub, e: "AgAA" }, { ...pub, n: kJwk.e, e: kJwk.n }]) {
    await rejectsWith(imp(jwk, ["verify"]), "DataError");
  }
  await rejectsWith(imp({ ...kJwk, ext: false }, ["sign"], pkcs1, true), "DataError");
  // More than two primes.
  await rejectsWith(imp({ ...kJwk, oth: [{ r: "Aw", d: "AQ", t: "AQ" }] }), "NotSupportedError");
  // WebIDL.
  await rejectsWith(imp({ ...kJwk, key_ops: "sign" }), "TypeError");
  await rejectsWith(subtle.importKey("jwk", new Uint8Array(4), pkcs1, false, ["sign"]), "TypeError");
  await rejectsWith(subtle.importKey("jwk", kJwk, { name: "RSA-PSS" }, false, ["sign"]), "TypeError");
});

test("importKey spki and pkcs8: hostile and foreign DER is a DataError", async () => {
  const alg = { name: "RSA-OAEP", hash: "SHA-256" };
  const spki = unbase64(kSpki), pkcs8 = unbase64(kPkcs8);
  const garbage = [new Uint8Array(0), new Uint8Array([0x30]), new Uint8Array([0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
    utf8("-----BEGIN PUBLIC KEY-----"), new Uint8Array(1 << 16), new Uint8Array(4096).fill(0x30)];
  for (const der of [...garbage, pkcs8, spki.slice(0, -1), new Uint8Array([...spki, 0]), unbase64(kEcSpki),
    unbase64(kPssOidSpki)]) {
    await rejectsWith(subtle.importKey("spki", der, alg, true, ["encrypt"]), "DataError");
  }
  const flipped = pkcs8.slice();
  flipped[pkcs8.length - 20] ^= 1; // inside qInv: the numbers no longer agree
  for (const der of [...garbage, spki, pkcs8.slice(0, -1), new Uint8Array([...pkcs8, 0]), flipped]) {
    await rejectsWith(subtle.importKey("pkcs8", der, alg, true, ["decrypt"]), "DataError");
  }
  // Usages are checked before the data.
  await rejectsWith(subtle.importKey("spki", new Uint8Array(0), alg, true, ["decrypt"]), "SyntaxError");
  await rejectsWith(subtle.importKey("pkcs8", new Uint8Array(0), alg, true, ["encrypt"]), "SyntaxError");
  await rejectsWith(subtle.importKey("pkcs8", pkcs8, alg, true, []), "SyntaxError");
});

// A 4104-bit key from `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:4104`: longer than
// 4096 bits, so its operations run on the thread pool.
const kPkcs8Big = "MIIJRgIBADANBgkqhkiG9w0BAQEFAASCCTAwggksAgEAAoICAgCkPoV6NG+oOQC69XAnFC1iLdFoKHRskwsHOB0eax0anlu1W/4l" +
  "/OgjaFQMV5FripqOpPAeYVkYwMlpqG27SEeXizqF3nbeuRG+BSSsIOJlxTAgKY4PdgdOzglFvflhzdH4DjKAsUqMT6eEPENB/p34" +
  "/8z4qM24OY7jJop2Jq0YrIBPI4x89LgFdnTA9+LfsimiuK264Q/78rtpFJ3Amwq6+iOA1KXo5Wzwob2YvmWdvREYedg7UfvZ6QkO" +
  "d6HLp/FYyy7Xx/fM6v7cu+N3FqVJKFvXq5pg8SqLQJqNx2UoZHI8AhmCRBr1H7UcJHZ62wNJXElSzSMsZjioFBmnnOblxZ1WJ5fa" +
  "+ICBj39X1GvqSZwRyoaUOfSPepNeJAhShKpF3NtJClB79mDtNUmIYlInp9hJlrKsrvOypnGuXtBDG8TlnuN7zjaije5Xwy9JbvME" +
  "R4CYreH8DKsqxhwL1ODKzqVDQ5AoOLATZGN00tZ3KidMUtyDe7MxGT6jxtN2HZcEME0UDPQx8tCk655PCCzKSmAxliS3aaZOUbDZ" +
  "fQghKbQwhywMEAhwxIXuSel+Z9cmwjDUpAS18I2kKaAo/m9nCMHHJLya9LnlfN3LTlYiKxFEeeyoZXG0C4sqSdoSesOzofyFCvMY" +
  "yvepXOUenHDzJjdiwO6GSX27LOPcQail+iECAwEAAQKCAgEE+64gTOy503/rjDSKxPyTAt2cfcS5ghUWsxvED18mznjtFdVOSP/w" +
  "ihLpvHLpqr8Bdqzf2ReDTh8WRPFOWjUs2oEsLFmaLI6Gn8CS9dz0lkDdavFX0/6JBCyJGIhTULOvBVxAJhDjVKvaEdt/Cjb4BefN" +
  "wA5cyWdFykavasE780jhzcvugxy9srA8ZhD0tUK44IZJ2hf6bo0D1UerfzC6R0pSN3FwsVxGqTuXwagS2viEr/aw5w3/eKfpD9Vh" +
  "eM8UYPbC/nrM1XDl2NAADhh18aLmtlrE1/BQ4QUHae4uZWzHWA920bLpLrz3lX4gQFqXTFTfraBkcZYEuHZmTNb/DyHjdy2dlgNQ" +
  "4F+R/LIY8ff+sPxBP5WqEGgimO6YLf36NYMKNdrrfYrIeFLJwgNj5rZTkObpsTGA5jKLx2iK/3CoAQevJe0kUzdEIOixrc6HG1z9" +
  "H48Dcl2yBGpODHXW8HrZbVqnROeZOMyI+MoUgUZtvvtDoZKkbk36MQgp+f2k9j20LP9bsmwKBMG8Euec5F+4c/xQ5tLXTGhkHanI" +
  "7G+wu+Za5trwMDzMvGYM9vOQ2GTdd1QWw9Qk2Y+x13RgW6RjnIuopmipK6tOKEWkWhZyTQsmnLv7O6AsEPKWSidDWGHqIXSRonoi" +
  "8pMc8C3CnsmiHDe2l6Ql551Ruc8nCwkCggEBDfckK0R6DOAQSktjbXlUH+nquJ2YT+sKhvXCWQYE+F3wGR4/DoKEZ6hzcaU8+vOJ" +
  "GIek/yeYsOrzgOU6Bzgsz+N4g2c0GgWPtRAHFEDpCPToRXwPh2XGsuTV1IEFcA5lrLFx9B+1pi6Ut7QM/F8Kdu48x3EUCJ0hiwgL" +
  "6BwBO+R3+YG6wAl0d0sU/uvDHCUhNPpz9jYz46h+2rvDBKwe6GBCmIWXXrAFnR8ydSDOsbkyB6bVWJ/nYUjUQWHNbY0D2Yx9gB0J" +
  "oJQd0Z8ZlLWvVKmJ3ROurhNnjJAxhh43k3dPDZabZKtLCrTardu2wBkduROLCUPLsn1jhAjdrmEeMFkCggEBC8LDyNkdNuSMaW+2" +
  "Py+H4R8qb6E1fEIeBjXSHby/k2QtBGLnEvqEirXVsWQBqBQqYijOysFyMLQhiGb5w3W5Lmz25HQZBLPZffG6WNqBfJPSmmlIdtrW" +
  "dmtGAsShpXOqT1CsWXSE+c+tU6u/7JrCpGSnyPXG7EBexlfgDGBjsJzX9wrlmBoDmSK5KpvgYQnDQN4gaZ0QEQIn8neOGkHUXDB8" +
  "UPhlw1esMo4/LV/KSBTfieSzzpTNSGNyhao2iBXUl91mfbj8hOMYHDmEs5XX075XuBmiph6/57aZBldifiso7zJUyO+2UBoya6ER" +
  "0bpeP1p6L1Q8BEs4QmxjUgknnwkCggEBCm4T00S3KrqFMBeR0IcW7ybSqML6qGVQXW9akQZP2/a8hOX0DjAoFwrV/YB9RKdyMqHL" +
  "9sxp22f+KLwKVK39ud2XefwwC2cv5vhrcRLxeEEA4DRBnMvEVINXt/gMSZ5XDV0RUFQGZHDRnUmZkTqiJCTVu9aWMcC49o8x5U5V" +
  "FZgSioP7J8Vn+FhY+/K0q2aHoHuU88OTiWmkJFSq1+h8xOxvkF3lqVApQSm1k4jHFjDMTq6pFCGIuz2bWKFkvXbd8zJb4LzPHeDB" +
  "THdYsZnnsoFUd4ploZjYc0CV3CbhNv+aSPm8YLkVuI9N6x73JA0eB8Wyx16c2VeQZWIBvmTGGTECggEBCqkPqOZMme5O7F+rddjS" +
  "tRf38lnRToHsDzsH65aknKioOZqg1E4qiEVMn1AERGOLC5Dr6VOx+z28S5Tz/t2d7twsa2ZlKyMPGR9dB5+A0fh4ZSjb24h/77VL" +
  "L8UmtP+EOALrRubchkheV0KOZJzfo/3tLLbECnBKuET9PJq+ol95T2AcP2QNMOkNqPbES5F64Di4bqNE5fXrWdhPAbP8F1iHxylx" +
  "rMCywNy5nZp/lBj/i1G4PqAY9+3U6B4i8fW/z6yLc5iTpKzotOTaSaKgkTmu75ylFyk2UIXubZYWHEFpCHC58619t1wXqgHFUjM5" +
  "rPmJWY9kG4xHQcZXvQu5U2kCggEBBLKDaT43HqiPyATDHtnQHtfRM8eEtgAV2Tba9+wFqj/vyIQsMhOZv4Z9iXlGhFVAnSuAxnt9" +
  "yRIYC1JCilsf4o7JZqH9r66Ll7wLW3nmRXh2ANtbNkiATfJWyYwWO9YB4/J1Fnw66ZhmfkLGzYuc6j21AQRFQOkK7fMLcYIkAuso" +
  "8Y8Bo69C8I8s8AytuVJPam2TpwV7z5Q4/7dLzMvXEIyDLki15juZ0Ss6y2HwCRGUCGKIXwVmZ+rfqeDvBd7zzIY4KcCQWx0XRnPx" +
  "+7YEddEz+dWV0IlxgLGvSWpaYu76okznnyBmDkWBdCqab8uMl9VzKxG/bBef4aStZMjIYrg=";

test("long inputs and keys past 4096 bits run on the thread pool, with the same results", async () => {
  const { publicKey, privateKey } = await importPair("RSA-PSS", "SHA-512", ["verify"], ["sign"]);
  const big = new Uint8Array((1 << 20) + 3).map((_, i) => i * 7);
  const sig = await subtle.sign({ name: "RSA-PSS", saltLength: 0 }, privateKey, big);
  const again = await subtle.sign({ name: "RSA-PSS", saltLength: 0 }, privateKey, big);
  assertEquals(hex(sig), hex(again));
  assertStrictEquals(await subtle.verify({ name: "RSA-PSS", saltLength: 0 }, publicKey, sig, big), true);
  big[5] ^= 1;
  assertStrictEquals(await subtle.verify({ name: "RSA-PSS", saltLength: 0 }, publicKey, sig, big), false);
  // The data changes after the call: the job works on its copy.
  const data = new Uint8Array(1 << 20);
  const pending = subtle.sign({ name: "RSA-PSS", saltLength: 0 }, privateKey, data);
  data.fill(1);
  assertStrictEquals(await subtle.verify({ name: "RSA-PSS", saltLength: 0 }, publicKey, await pending,
    new Uint8Array(1 << 20)), true);

  const oaepPriv = await subtle.importKey("pkcs8", unbase64(kPkcs8Big), { name: "RSA-OAEP", hash: "SHA-256" }, true, ["decrypt"]);
  assertEquals(oaepPriv.algorithm.modulusLength, 4104);
  const jwk = await subtle.exportKey("jwk", oaepPriv);
  const oaepPub = await subtle.importKey("jwk", { kty: "RSA", n: jwk.n, e: jwk.e }, { name: "RSA-OAEP", hash: "SHA-256" },
    false, ["encrypt"]);
  const c = await subtle.encrypt({ name: "RSA-OAEP", label: utf8("L") }, oaepPub, utf8("to the pool"));
  assertEquals(c.byteLength, 513);
  assertEquals(new TextDecoder().decode(await subtle.decrypt({ name: "RSA-OAEP", label: utf8("L") }, oaepPriv, c)), "to the pool");
  await rejectsWith(subtle.decrypt({ name: "RSA-OAEP" }, oaepPriv, c), "OperationError");
  await rejectsWith(subtle.encrypt("RSA-OAEP", oaepPub, new Uint8Array(513 - 64 - 1)), "OperationError");
  const signer = await subtle.importKey("pkcs8", unbase64(kPkcs8Big), { name: "RSASSA-PKCS1-v1_5", hash: "SHA-1" }, false, ["sign"]);
  const verifier = await subtle.importKey("jwk", { kty: "RSA", n: jwk.n, e: jwk.e }, { name: "RSASSA-PKCS1-v1_5", hash: "SHA-1" },
    false, ["verify"]);
  const s = await subtle.sign("RSASSA-PKCS1-v1_5", signer, utf8("x"));
  assertStrictEquals(await subtle.verify("RSASSA-PKCS1-v1_5", verifier, s, utf8("x")), true);
  assertStrictEquals(await subtle.verify("RSASSA-PKCS1-v1_5", verifier, s, utf8("y")), false);
});

test("the 4096-bit pair started first is a working RSA-PSS pair", async () => {
  const { publicKey, privateKey } = await pending4096;
  assertEquals(privateKey.algorithm.modulusLength, 4096);
  const sig = await subtle.sign({ name: "RSA-PSS", saltLength: 32 }, privateKey, utf8("big"));
  assertEquals(sig.byteLength, 512);
  assertStrictEquals(await subtle.verify({ name: "RSA-PSS", saltLength: 32 }, publicKey, sig, utf8("big")), true);
});
