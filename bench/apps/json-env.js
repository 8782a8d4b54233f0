// The "JSON with env" app of bench/tenants.py: a JSON body built from env (a string var and
// a JSON var) and a per-isolate counter. nano-dp and workerd pass env natively; deno, bun and
// node get it from small wrappers (*-env-serve.*) that read GREETING and FLAGS from the
// process environment once at start-up (FLAGS parsed as JSON).
let counter = 0;
export default {
  async fetch(request, env, ctx) {
    return Response.json({ greeting: env.GREETING, n: ++counter, flags: env.FLAGS });
  },
};
