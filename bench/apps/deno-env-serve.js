// Deno: `deno serve` passes (request, info), not env, so this wrapper builds env once from
// the process environment (GREETING, FLAGS as JSON) and calls the module's fetch with it.
import app from "./json-env.js";
const env = { GREETING: Deno.env.get("GREETING"), FLAGS: JSON.parse(Deno.env.get("FLAGS")) };
const ctx = { waitUntil() {}, passThroughOnException() {} };
export default { fetch: (request) => app.fetch(request, env, ctx) };
