// Bun: serve the proxy benchmark's upstream module on $PORT (bench/proxy.py).
import app from "./proxy-upstream.js";
Bun.serve({
  hostname: "127.0.0.1",
  port: Number(process.env.PORT),
  maxRequestBodySize: 4 * 1024 * 1024 * 1024,
  fetch: (request) => app.fetch(request, {}, { waitUntil() {}, passThroughOnException() {} }),
});
