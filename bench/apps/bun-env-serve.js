// Bun: Bun.serve around the json-env module, env built once from the process environment.
import app from "./json-env.js";
const env = { GREETING: process.env.GREETING, FLAGS: JSON.parse(process.env.FLAGS) };
const ctx = { waitUntil() {}, passThroughOnException() {} };
Bun.serve({
  hostname: "127.0.0.1",
  port: Number(process.env.PORT),
  fetch: (request) => app.fetch(request, env, ctx),
});
