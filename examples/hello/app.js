// The smallest NANO app: answers every request with a greeting.
// Runs unchanged on Cloudflare Workers and Deno (`deno serve`).
export default {
  async fetch(request, env, ctx) {
    return new Response("Hello World\n");
  },
};
