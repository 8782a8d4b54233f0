// The JWT app of bench/webcrypto.py: each request must carry `Authorization: Bearer <jwt>`,
// an HS256 token (RFC 7519) whose signature crypto.subtle.verify checks and whose `exp`
// is in the future; the answer is 200 with the `sub` claim, else 401. The same module runs
// in nano-dp, deno serve, bun, workerd and node. The secret sits here, in the code, so
// that no runtime needs an env adapter; bench/webcrypto.py reads it from this file to make
// its tokens. A bench secret, never a real one.
const SECRET = "nano-bench HS256 secret: not for real use";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
let key = null; // the HMAC key, imported on the first request and kept

function base64url(text) {
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function unauthorized() {
  return new Response("unauthorized\n", { status: 401, headers: { "www-authenticate": "Bearer" } });
}

export default {
  async fetch(request) {
    const auth = request.headers.get("authorization");
    if (auth === null || !auth.startsWith("Bearer ")) return unauthorized();
    const parts = auth.slice(7).split(".");
    if (parts.length !== 3) return unauthorized();
    try {
      const header = JSON.parse(decoder.decode(base64url(parts[0])));
      if (header.alg !== "HS256") return unauthorized();
      key ??= crypto.subtle.importKey("raw", encoder.encode(SECRET),
                                      { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
      const valid = await crypto.subtle.verify("HMAC", await key, base64url(parts[2]),
                                               encoder.encode(`${parts[0]}.${parts[1]}`));
      if (!valid) return unauthorized();
      const claims = JSON.parse(decoder.decode(base64url(parts[1])));
      if (typeof claims.exp !== "number" || claims.exp <= Date.now() / 1000) return unauthorized();
      return new Response(`${claims.sub}\n`);
    } catch {
      return unauthorized(); // not base64url, not JSON: not a token
    }
  },
};
