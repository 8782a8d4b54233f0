#!/usr/bin/env python3
"""JWTs between crypto.subtle and the openssl command line (issue 19).

Keys come from `openssl genpkey` (RSA 2048, EC P-256, Ed25519) and `openssl rand` (the HMAC
secret); tokens for HS256, RS256, PS256, ES256 and EdDSA are signed by `openssl` alone. An
app served by nano-dp imports the public keys (spki DER; the secret raw) and must find each
token valid, and the same token with a flipped signature byte, a shortened signature or a
changed payload invalid (verify resolves false). The other way, the app imports the private
keys (pkcs8 DER from `openssl pkcs8 -topk8`) and signs a token with each algorithm, which
`openssl` must verify (and refuse once a byte is flipped). Neither side checks itself, so a
wrong encoding (JWS's r||s for ECDSA, PSS salt length, key formats) fails here.
"""
import atexit
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time

from nanotest import Server, check, expect, run

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
ALGS = ("HS256", "RS256", "PS256", "ES256", "EdDSA")
KEY_OF = {"RS256": "rsa", "PS256": "rsa", "ES256": "ec", "EdDSA": "ed"}
PSS_OPTS = ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"]

# The app: POST /verify with a compact JWS as the body answers {"alg", "valid", "sub"};
# GET /sign/ALG answers a token it signed. Any exception is a 500 naming it, so a failure
# here says what crypto.subtle threw. @KEYS@ becomes {ALG: {verify, sign}} (base64 DER, or
# the HMAC secret's bytes for HS256).
APP = """
const KEYS = @KEYS@;
const ALGS = {
  HS256: { format: 'raw', key: { name: 'HMAC', hash: 'SHA-256' }, op: { name: 'HMAC' } },
  RS256: { format: 'spki', key: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
           op: { name: 'RSASSA-PKCS1-v1_5' } },
  PS256: { format: 'spki', key: { name: 'RSA-PSS', hash: 'SHA-256' },
           op: { name: 'RSA-PSS', saltLength: 32 } },
  ES256: { format: 'spki', key: { name: 'ECDSA', namedCurve: 'P-256' },
           op: { name: 'ECDSA', hash: 'SHA-256' } },
  EdDSA: { format: 'spki', key: { name: 'Ed25519' }, op: { name: 'Ed25519' } },
};
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();
const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
const fromB64url = (s) => bytes(s.replace(/-/g, '+').replace(/_/g, '/'));
const toB64url = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)))
  .replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '');
const json = (value, status = 200) => Response.json(value, { status });

async function verify(token) {
  const [head, body, sig] = token.split('.');
  const alg = JSON.parse(fromUtf8.decode(fromB64url(head))).alg;
  const spec = ALGS[alg];
  if (!spec) return json({ error: `alg ${alg}` }, 400);
  const key = await crypto.subtle.importKey(spec.format, bytes(KEYS[alg].verify), spec.key,
                                            false, ['verify']);
  const valid = await crypto.subtle.verify(spec.op, key, fromB64url(sig),
                                           utf8.encode(`${head}.${body}`));
  const sub = valid ? JSON.parse(fromUtf8.decode(fromB64url(body))).sub : null;
  return json({ alg, valid, sub });
}

async function sign(alg) {
  const spec = ALGS[alg];
  if (!spec) return json({ error: `alg ${alg}` }, 400);
  const key = await crypto.subtle.importKey(spec.format === 'raw' ? 'raw' : 'pkcs8',
                                            bytes(KEYS[alg].sign), spec.key, false, ['sign']);
  const head = toB64url(utf8.encode(JSON.stringify({ alg, typ: 'JWT' })));
  const body = toB64url(utf8.encode(JSON.stringify({ sub: `nano-${alg}`, iat: Math.floor(Date.now() / 1000) })));
  const sig = await crypto.subtle.sign(spec.op, key, utf8.encode(`${head}.${body}`));
  return new Response(`${head}.${body}.${toB64url(sig)}`);
}

export default {
  async fetch(request) {
    const path = new URL(request.url).pathname;
    try {
      if (request.method === 'POST' && path === '/verify') return await verify(await request.text());
      if (path.startsWith('/sign/')) return await sign(path.slice(6));
      return new Response('not found', { status: 404 });
    } catch (e) {
      return json({ error: `${e && e.name}: ${e && e.message}` }, 500);
    }
  },
};
"""


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def openssl(*args, stdin=None, ok=True):
    """Runs the openssl CLI; returns (exit code, stdout bytes). ok: fail unless it exits 0."""
    p = subprocess.run([OPENSSL, *args], input=stdin, capture_output=True, timeout=30)
    if ok and p.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} exited {p.returncode}: "
                             f"{p.stderr.decode(errors='replace').strip()}")
    return p.returncode, p.stdout


def der_read(buf, pos, tag):
    """One DER TLV of the given tag at buf[pos:] (short or long length form); returns
    (value, position after it)."""
    expect(pos + 2 <= len(buf) and buf[pos] == tag, f"DER: no tag {tag:#x} at {pos} in {buf.hex()}")
    n, pos = buf[pos + 1], pos + 2
    if n & 0x80:
        width = n & 0x7F
        n, pos = int.from_bytes(buf[pos:pos + width], "big"), pos + width
    expect(pos + n <= len(buf), f"DER: length {n} past the end of {buf.hex()}")
    return buf[pos:pos + n], pos + n


def ecdsa_der_to_jws(der, size=32):
    """openssl's ECDSA signature, ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }
    (RFC 3279 §2.2.3), to JWS's r || s with each left-padded to the curve size (RFC 7518
    §3.4)."""
    seq, end = der_read(der, 0, 0x30)
    expect(end == len(der), "bytes after the ECDSA-Sig-Value")
    r, pos = der_read(seq, 0, 0x02)
    s, pos = der_read(seq, pos, 0x02)
    expect(pos == len(seq), "bytes after s in the ECDSA-Sig-Value")
    return b"".join(v.lstrip(b"\0").rjust(size, b"\0") for v in (r, s))


def ecdsa_jws_to_der(sig):
    """The reverse: r || s to DER, each INTEGER minimal and positive (a 0 byte before a
    high bit)."""
    def integer(v):
        v = v.lstrip(b"\0") or b"\0"
        if v[0] & 0x80:
            v = b"\0" + v
        return bytes([0x02, len(v)]) + v
    half = len(sig) // 2
    body = integer(sig[:half]) + integer(sig[half:])
    expect(len(body) < 0x80, "P-256 signatures fit the short length form")
    return bytes([0x30, len(body)]) + body


class Keys:
    """Keys made by the openssl CLI in a directory of their own (removed at exit): for each
    of rsa, ec, ed the private key PEM, the public key PEM, spki DER and pkcs8 DER; and an
    HMAC secret."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="nano-e2e-jwt-")
        atexit.register(shutil.rmtree, self.dir, True)
        self.hmac_hex = openssl("rand", "-hex", "32")[1].decode().strip()
        gen = {"rsa": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
               "ec": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
               "ed": ["-algorithm", "ED25519"]}
        self.spki, self.pkcs8 = {}, {}
        for name, args in gen.items():
            openssl("genpkey", *args, "-out", self.path(f"{name}.pem"))
            openssl("pkey", "-in", self.path(f"{name}.pem"), "-pubout", "-out", self.path(f"{name}.pub.pem"))
            self.spki[name] = openssl("pkey", "-in", self.path(f"{name}.pem"), "-pubout", "-outform", "DER")[1]
            self.pkcs8[name] = openssl("pkcs8", "-topk8", "-nocrypt", "-in", self.path(f"{name}.pem"),
                                       "-outform", "DER")[1]

    def path(self, name):
        return os.path.join(self.dir, name)

    def app_keys(self):
        """What the app gets: base64 of the HMAC secret, spki DER and pkcs8 DER per alg."""
        b64 = lambda b: base64.b64encode(b).decode()
        keys = {"HS256": {"verify": b64(bytes.fromhex(self.hmac_hex)), "sign": b64(bytes.fromhex(self.hmac_hex))}}
        for alg, name in KEY_OF.items():
            keys[alg] = {"verify": b64(self.spki[name]), "sign": b64(self.pkcs8[name])}
        return keys

    def write(self, name, data):
        with open(self.path(name), "wb") as f:
            f.write(data)
        return self.path(name)

    def sign(self, alg, data):
        """data signed by openssl as JWS alg says (the JWS form: r || s for ES256)."""
        if alg == "HS256":
            return openssl("dgst", "-sha256", "-mac", "HMAC", "-macopt", f"hexkey:{self.hmac_hex}",
                           "-binary", stdin=data)[1]
        key = self.path(f"{KEY_OF[alg]}.pem")
        if alg == "EdDSA":
            return openssl("pkeyutl", "-sign", "-inkey", key, "-rawin", "-in", self.write("in.bin", data))[1]
        extra = PSS_OPTS if alg == "PS256" else []
        sig = openssl("dgst", "-sha256", "-sign", key, *extra, "-binary", stdin=data)[1]
        return ecdsa_der_to_jws(sig) if alg == "ES256" else sig

    def verifies(self, alg, data, sig):
        """Whether openssl finds sig (JWS form) a valid signature of data."""
        if alg == "HS256":
            return self.sign(alg, data) == sig
        pub = self.path(f"{KEY_OF[alg]}.pub.pem")
        data_file = self.write("data.bin", data)
        if alg == "EdDSA":
            code, _ = openssl("pkeyutl", "-verify", "-pubin", "-inkey", pub, "-rawin", "-in", data_file,
                              "-sigfile", self.write("sig.bin", sig), ok=False)
            return code == 0
        if alg == "ES256":
            if len(sig) != 64:
                return False
            sig = ecdsa_jws_to_der(sig)
        extra = PSS_OPTS if alg == "PS256" else []
        code, _ = openssl("dgst", "-sha256", "-verify", pub, *extra, "-signature",
                          self.write("sig.bin", sig), data_file, ok=False)
        return code == 0


_keys = None


def keys():
    """The one key set of this run (RSA key generation takes a while; made once)."""
    global _keys
    if _keys is None:
        _keys = Keys()
    return _keys


def app_source():
    return APP.replace("@KEYS@", json.dumps(keys().app_keys()))


def openssl_token(alg, claims):
    """A compact JWS (RFC 7515 §7.1) of claims, signed by openssl."""
    head = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    return f"{head}.{body}.{b64url(keys().sign(alg, f'{head}.{body}'.encode()))}"


def altered(token):
    """(what, token) pairs that must not verify: one signature byte flipped (first, middle,
    last), the signature one byte short, and a payload changed under the old signature."""
    head, body, sig = token.split(".")
    raw = unb64url(sig)
    out = []
    for where, i in (("first", 0), ("middle", len(raw) // 2), ("last", len(raw) - 1)):
        flipped = bytearray(raw)
        flipped[i] ^= 0x01
        out.append((f"{where} signature byte flipped", f"{head}.{body}.{b64url(bytes(flipped))}"))
    out.append(("signature one byte short", f"{head}.{body}.{b64url(raw[:-1])}"))
    claims = json.loads(unb64url(body))
    claims["sub"] = "admin"
    out.append(("payload changed", f"{head}.{b64url(json.dumps(claims).encode())}.{sig}"))
    return out


def app_verify(server, token):
    """What the app says of token: its JSON answer, or the status and body when not 200."""
    r = server.request("POST", "/verify", headers={"Content-Type": "text/plain"}, body=token)
    if r.status != 200:
        return f"{r.status} {r.text}"
    return json.loads(r.text)


@check
def tokens_openssl_signed_verify_and_altered_ones_do_not():
    now = int(time.time())
    tokens = {alg: openssl_token(alg, {"sub": f"openssl-{alg}", "iat": now, "exp": now + 600})
              for alg in ALGS}
    wrong = {}  # (alg, answer) -> the tokens that got it, so one error is listed once
    with Server(app_source()) as s:
        for alg, token in tokens.items():
            got = app_verify(s, token)
            if got != {"alg": alg, "valid": True, "sub": f"openssl-{alg}"}:
                wrong.setdefault((alg, str(got)), []).append("valid token")
            for what, bad in altered(token):
                got = app_verify(s, bad)
                if not isinstance(got, dict) or got.get("valid") is not False:
                    wrong.setdefault((alg, str(got)), []).append(what)
    expect(not wrong, "crypto.subtle.verify of openssl's tokens:\n  " + "\n  ".join(
        f"{alg} {', '.join(whats)}: {got}" for (alg, got), whats in wrong.items()))


@check
def tokens_the_app_signs_verify_with_openssl():
    wrong = []
    with Server(app_source()) as s:
        for alg in ALGS:
            r = s.request("GET", f"/sign/{alg}")
            if r.status != 200:
                wrong.append(f"{alg}: {r.status} {r.text}")
                continue
            head, body, sig = r.text.split(".")
            header, claims, raw = json.loads(unb64url(head)), json.loads(unb64url(body)), unb64url(sig)
            if header.get("alg") != alg or claims.get("sub") != f"nano-{alg}":
                wrong.append(f"{alg}: header {header}, claims {claims}")
            data = f"{head}.{body}".encode()
            if not keys().verifies(alg, data, raw):
                wrong.append(f"{alg}: openssl refuses the signature ({len(raw)} bytes: {raw.hex()})")
                continue
            flipped = bytearray(raw)
            flipped[len(raw) // 2] ^= 0x01
            # The harness's own check: openssl must tell a bad signature from a good one.
            expect(not keys().verifies(alg, data, bytes(flipped)), f"{alg}: openssl accepts a flipped byte")
    expect(not wrong, "tokens signed by crypto.subtle, checked by openssl:\n  " + "\n  ".join(wrong))


if __name__ == "__main__":
    run()
