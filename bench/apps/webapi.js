// The cases of bench/webapi.py: small, common Web API operations, each timed in a loop in
// one runtime at a time (nano-dp run, deno run, bun, node). Each case is a maker returning
// the operation, so that setting up (and an API the runtime lacks, reported as missing)
// stays outside the loop. Every operation returns something, so it cannot be dropped.
const href = "http://example.test:8080/api/users/123?sort=desc&limit=10";
const text25 = "hello world, this is text";

export const cases = {
  "new URL": () => () => new URL(href),
  "new URL + searchParams.get": () => () => new URL(href).searchParams.get("limit"),
  "url.href": () => { const u = new URL("http://h/a/b?c=d"); return () => u.href; },
  "url.pathname =": () => {
    const u = new URL("http://h/a/b?c=d");
    return () => { u.pathname = "/x/y"; return u.href; };
  },
  "new Request(url)": () => () => new Request(href),
  "new Request POST": () => () => new Request("http://h/x", {
    method: "POST", headers: { "content-type": "application/json" }, body: '{"a":1}' }),
  "new Response(text)": () => () => new Response("hello"),
  "new Response(text, {headers})": () => () => new Response("x", {
    status: 201, headers: { "content-type": "text/plain" } }),
  "Response.json": () => () => Response.json({ a: 1, b: "two" }),
  "new Headers(record)": () => () => new Headers({ "content-type": "application/json", "x-id": "1" }),
  "new Headers(pairs)": () => () => new Headers([["content-type", "application/json"], ["x-id", "1"]]),
  "new Headers(headers)": () => {
    const h = new Headers({ a: "1", b: "2", c: "3" });
    return () => new Headers(h);
  },
  "headers.get": () => {
    const h = new Headers({ "content-type": "text/plain", "user-agent": "bench" });
    return () => h.get("user-agent");
  },
  "request.clone": () => { const r = new Request("http://h/x"); return () => r.clone(); },
  "response.clone": () => { const r = new Response("x"); return () => r.clone(); },
  "await response.text": () => async () => (await new Response("hello").text()).length,
  "await request.json": () => async () => (await new Request("http://h/x", {
    method: "POST", body: '{"a":1}' }).json()).a,
  "TextEncoder.encode (25 B)": () => { const e = new TextEncoder(); return () => e.encode(text25); },
  "TextDecoder.decode (25 B)": () => {
    const d = new TextDecoder();
    const b = new TextEncoder().encode(text25);
    return () => d.decode(b);
  },
  "crypto.randomUUID": () => () => crypto.randomUUID(),
  "crypto.getRandomValues (16 B)": () => {
    const b = new Uint8Array(16);
    return () => crypto.getRandomValues(b);
  },
  "structuredClone": () => { const o = { a: 1, b: [1, 2, 3], c: "x" }; return () => structuredClone(o); },
  "btoa": () => () => btoa("hello world, hello world"),
  "atob": () => () => atob("aGVsbG8gd29ybGQsIGhlbGxvIHdvcmxk"),
  "URLSearchParams toString": () => {
    const p = new URLSearchParams("a=1&b=2&c=hello+world");
    return () => p.toString();
  },
  "URLPattern.test": () => {
    const p = new URLPattern({ pathname: "/users/:id" });
    return () => p.test("http://h/users/123");
  },
  "URLPattern.exec": () => {
    const p = new URLPattern({ pathname: "/users/:id" });
    return () => p.exec("http://h/users/123");
  },
  "new Blob": () => () => new Blob(["hello", " world"]),
  "FormData append+get": () => () => { const f = new FormData(); f.append("a", "1"); return f.get("a"); },
  "new AbortController": () => () => new AbortController(),
  "AbortSignal.timeout": () => () => AbortSignal.timeout(1000),
  "EventTarget dispatch": () => {
    const t = new EventTarget();
    t.addEventListener("x", () => {});
    return () => t.dispatchEvent(new Event("x"));
  },
  "new ReadableStream + read": () => async () => {
    const s = new ReadableStream({ start(c) { c.enqueue("a"); c.close(); } });
    return (await s.getReader().read()).value;
  },
  "new DOMException": () => () => new DOMException("x", "AbortError"),
  "performance.now": () => () => performance.now(),
};

// Times each case (or those named in `only`) for about `ms` milliseconds after a warm-up
// of the same length. Returns lines "NS_PER_OP<TAB>name", or "missing<TAB>name" where the
// runtime lacks the API.
export async function run(ms = 300, only = null) {
  const out = [];
  for (const [name, make] of Object.entries(cases)) {
    if (only && !only.includes(name)) continue;
    let op;
    try {
      op = make();
      await op();
    } catch {
      out.push(`missing\t${name}`);
      continue;
    }
    const isAsync = op.constructor.name === "AsyncFunction";
    const batch = isAsync ? 100 : 1000;
    let perOp = 0;
    for (const phase of ["warm", "measure"]) {
      let n = 0;
      const t0 = performance.now();
      let t = t0;
      while (t - t0 < ms) {
        if (isAsync) for (let i = 0; i < batch; i++) await op();
        else for (let i = 0; i < batch; i++) op();
        n += batch;
        t = performance.now();
      }
      if (phase === "measure") perOp = ((t - t0) * 1e6) / n;
    }
    out.push(`${perOp.toFixed(0)}\t${name}`);
  }
  return out.join("\n");
}
