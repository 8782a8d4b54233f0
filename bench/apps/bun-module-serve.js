// Bun: serve the Workers module at $APP_MODULE (an absolute path) on $PORT, with the
// Workers-style fetch(request, env, ctx) signature (bench/firstresponse.py).
const app = (await import(process.env.APP_MODULE)).default;
Bun.serve({
  hostname: "127.0.0.1",
  port: Number(process.env.PORT),
  fetch: (request) => app.fetch(request, {}, { waitUntil() {}, passThroughOnException() {} }),
});
