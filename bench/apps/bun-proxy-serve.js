// Bun: serve the proxy module's fetch on $PORT (Bun.serve, Workers-style signature).
import app from "./proxy.js";
Bun.serve({
  hostname: "127.0.0.1",
  port: Number(process.env.PORT),
  maxRequestBodySize: 4 * 1024 * 1024 * 1024, // the upload is more than Bun's 128 MiB default
  fetch: (request) => app.fetch(request, {}, { waitUntil() {}, passThroughOnException() {} }),
});
