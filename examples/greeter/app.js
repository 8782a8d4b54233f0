// A small app that shows what the control plane does to a running app (make demo):
//   GET /            a greeting from env.GREETING, the isolate that answered, and how many
//                    greetings that isolate has served.
//   GET /slow?ms=N   answers after N ms (default 5000): a request in flight while the app is
//                    redeployed or removed, to watch it finish
//
// Module state (`served` below) lives in one isolate. nano-dp runs an isolate of the app in
// each of its worker threads, and the kernel hands each new connection to one of them, so
// successive curls can be answered by different isolates, each with its own count. Workers
// and Deno do the same at scale (many isolates of an app, none sharing module state): state
// that must be global belongs in a store, not in a module variable. An env change keeps every
// isolate and its count (no restart); a new deployment starts new isolates, counting from 1.
// Runs unchanged on Cloudflare Workers and Deno (`deno serve`).
let served = 0;
let isolate = ""; // this isolate's name, made at its first request: Workers allows no random
                  // values at the top level of a module

export default {
  async fetch(request, env) {
    isolate ||= crypto.randomUUID().slice(0, 8);
    const url = new URL(request.url);
    if (url.pathname === "/slow") {
      const ms = Math.min(Number(url.searchParams.get("ms") ?? 5000) || 0, 60000);
      await new Promise((resolve) => setTimeout(resolve, ms));
      return new Response(`slow request done after ${ms} ms\n`);
    }
    served++;
    const greeting = env.GREETING ?? "Hello";
    return new Response(
      `${greeting} World (isolate ${isolate}: greeting ${served} of this isolate)\n`);
  },
};
