// Bun: serve the module's fetch on $PORT (Bun.serve with the Workers-style signature).
import app from "./hello.js";
Bun.serve({
  hostname: "127.0.0.1",
  port: Number(process.env.PORT),
  fetch: (request) => app.fetch(request, {}, { waitUntil() {}, passThroughOnException() {} }),
});
