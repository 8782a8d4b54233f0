// The cases of bench/webcrypto.py: crypto.subtle operations timed in one runtime at a time
// (nano-dp test, deno run, bun, node). Each case is an async maker that makes its keys and
// data (outside the timed loop) and returns { op, ok }: op() starts one operation and
// returns its promise, ok(result) says whether a result is right. A maker that throws (an
// algorithm the runtime lacks) is reported as missing; a first result that is not ok, as
// wrong, so a runtime cannot look fast by doing nothing.
const subtle = crypto.subtle;

// n bytes of a fixed pattern (getRandomValues takes at most 64 KiB at a time).
function filled(n) {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}

const KIB = filled(1024);

export const cases = {
  "HMAC-SHA256 sign 1 KiB": async () => {
    const key = await subtle.importKey("raw", filled(32), { name: "HMAC", hash: "SHA-256" },
                                       false, ["sign"]);
    return { op: () => subtle.sign("HMAC", key, KIB), ok: (r) => r.byteLength === 32 };
  },
  "ECDSA P-256 verify 1 KiB": async () => {
    const pair = await subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false,
                                          ["sign", "verify"]);
    const alg = { name: "ECDSA", hash: "SHA-256" };
    const sig = await subtle.sign(alg, pair.privateKey, KIB);
    return { op: () => subtle.verify(alg, pair.publicKey, sig, KIB), ok: (r) => r === true };
  },
  "Ed25519 sign 1 KiB": async () => {
    const pair = await subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
    return { op: () => subtle.sign("Ed25519", pair.privateKey, KIB), ok: (r) => r.byteLength === 64 };
  },
  "SHA-256 1 MiB": async () => {
    const data = filled(1 << 20);
    return { op: () => subtle.digest("SHA-256", data), ok: (r) => r.byteLength === 32 };
  },
  "AES-GCM-256 encrypt 64 KiB": async () => {
    const key = await subtle.importKey("raw", filled(32), "AES-GCM", false, ["encrypt"]);
    // One IV for every call: never do this with real data; here only the cost matters.
    const alg = { name: "AES-GCM", iv: filled(12) };
    const data = filled(64 * 1024);
    return { op: () => subtle.encrypt(alg, key, data), ok: (r) => r.byteLength === data.length + 16 };
  },
  // Not in issue 19's list, but what most JWT verification is (RS256 identity tokens).
  "RSASSA-PKCS1-v1_5 2048 verify 1 KiB": async () => {
    const alg = { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048,
                  publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" };
    const pair = await subtle.generateKey(alg, false, ["sign", "verify"]);
    const sig = await subtle.sign(alg, pair.privateKey, KIB);
    return { op: () => subtle.verify(alg, pair.publicKey, sig, KIB), ok: (r) => r === true };
  },
};

// Runs op for about ms milliseconds, `inFlight` operations at a time (1: a plain await
// loop; more: Promise.all over that many started together, as a server with several
// requests waiting would). Reads the clock once per batch, and grows the batch while a
// batch takes under a millisecond, so reading the clock costs nothing that shows.
async function timed(op, ms, inFlight) {
  let n = 0;
  let batch = 1;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < ms) {
    const b0 = t;
    for (let i = 0; i < batch; i++) {
      if (inFlight === 1) {
        await op();
      } else {
        const all = new Array(inFlight);
        for (let j = 0; j < inFlight; j++) all[j] = op();
        await Promise.all(all);
      }
    }
    n += batch * inFlight;
    t = performance.now();
    if (t - b0 < 1 && batch < 1 << 16) batch *= 2;
  }
  return (n * 1000) / (t - t0);
}

// Times each case (or those named in `only`) sequentially and with `concurrency`
// operations in flight, each for about `ms` after a warm-up as long. Returns one JSON line
// per case and mode: {"case", "inFlight", "ops"} (operations per second), or with
// "missing" (why) or "wrong" (what the first result was) instead of "ops".
export async function run(ms = 300, only = null, concurrency = 16) {
  const out = [];
  for (const [name, make] of Object.entries(cases)) {
    if (only && !only.includes(name)) continue;
    const modes = concurrency > 1 ? [1, concurrency] : [1];
    let c;
    let bad = null;
    try {
      c = await make();
      const first = await c.op();
      if (!c.ok(first)) bad = { wrong: String(first && (first.byteLength ?? first)) };
    } catch (e) {
      bad = { missing: `${e && e.name}: ${e && e.message}` };
    }
    for (const inFlight of modes) {
      if (bad) {
        out.push(JSON.stringify({ case: name, inFlight, ...bad }));
        continue;
      }
      await timed(c.op, ms, inFlight);
      out.push(JSON.stringify({ case: name, inFlight, ops: await timed(c.op, ms, inFlight) }));
    }
  }
  return out.join("\n");
}
