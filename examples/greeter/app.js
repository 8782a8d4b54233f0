// A small app that shows what the control plane does to a running app (make demo):
//   GET /            a greeting from env.GREETING, and how many requests this isolate served:
//                    the count keeps going when the env changes (no restart, module state kept)
//   GET /slow?ms=N   answers after N ms (default 5000): a request in flight while the app is
//                    redeployed or removed, to watch it finish
// Runs unchanged on Cloudflare Workers and Deno (`deno serve`).
let served = 0;

export default {
  async fetch(request, env) {
    served++;
    const url = new URL(request.url);
    if (url.pathname === "/slow") {
      const ms = Math.min(Number(url.searchParams.get("ms") ?? 5000) || 0, 60000);
      await new Promise((resolve) => setTimeout(resolve, ms));
      return new Response(`slow request done after ${ms} ms\n`);
    }
    const greeting = env.GREETING ?? "Hello";
    return new Response(`${greeting} World (request ${served} served by this isolate)\n`);
  },
};
