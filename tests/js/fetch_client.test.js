// fetch() without the network: arguments, schemes, data: and blob: URLs, and the errors of
// transfers that cannot start. Network behaviour is tests/e2e/test_fetch.py's.
import { test, assert, assertEquals, assertRejects } from "nano:test";

test("fetch is a global function of length 1 that rejects rather than throws", async () => {
  assertEquals([typeof fetch, fetch.length, fetch.name], ["function", 1, "fetch"]);
  const desc = Object.getOwnPropertyDescriptor(globalThis, "fetch");
  assertEquals([desc.writable, desc.enumerable, desc.configurable], [true, true, true]);
  const p = fetch();
  assert(p instanceof Promise);
  await assertRejects(() => p, TypeError);
  await assertRejects(() => fetch("http://h/", { method: "TRACE" }), TypeError);
  await assertRejects(() => fetch("not a url"), TypeError);
  await assertRejects(() => fetch("http://h/", { method: "GET", body: "x" }), TypeError);
});

test("schemes other than http, https, data and blob are network errors", async () => {
  for (const url of ["ftp://h/x", "file:///etc/passwd", "about:blank", "ws://h/", "javascript:1"]) {
    const err = await assertRejects(() => fetch(url), TypeError);
    assert(err.message.includes("not http, https, data or blob"), err.message);
  }
});

test("an aborted signal rejects with its reason before anything starts", async () => {
  const reason = new Error("stop");
  const got = await fetch("http://127.0.0.1:1/", { signal: AbortSignal.abort(reason) }).catch((e) => e);
  assertEquals(got, reason);
  const dflt = await fetch("http://127.0.0.1:1/", { signal: AbortSignal.abort() }).catch((e) => e);
  assertEquals([dflt.name, dflt instanceof DOMException], ["AbortError", true]);
});

test("data: URLs: percent-encoded and base64 bodies, MIME types, failures", async () => {
  const cases = [
    ["data:,Hello%2C%20World!", "text/plain;charset=US-ASCII", "Hello, World!"],
    ["data:text/plain;base64,SGVsbG8sIFdvcmxkIQ==", "text/plain", "Hello, World!"],
    ["data:;base64,SGk=", "text/plain;charset=US-ASCII", "Hi"],
    ["data:text/html;charset=utf-8,%E2%82%AC", "text/html;charset=utf-8", "\u20ac"],
    ["data:application/json,{%22a%22:1}#frag", "application/json", '{"a":1}'],
    ["data:bogus,x", "text/plain;charset=US-ASCII", "x"],
  ];
  for (const [url, type, text] of cases) {
    const r = await fetch(url);
    assertEquals([r.status, r.statusText, r.ok, r.headers.get("content-type"), await r.text()],
      [200, "OK", true, type, text], url);
    assertEquals(r.url, url.split("#")[0]);
    assert(!r.redirected);
  }
  const bytes = new Uint8Array(await (await fetch("data:application/octet-stream;base64,AP8=")).arrayBuffer());
  assertEquals([...bytes], [0, 255]);
  await assertRejects(() => fetch("data:nocomma"), TypeError);
  await assertRejects(() => fetch("data:;base64,!!!!"), TypeError);
});

test("a fetched response's headers are immutable", async () => {
  const r = await fetch("data:,x");
  let err = null;
  try {
    r.headers.set("x", "y");
  } catch (e) {
    err = e;
  }
  assert(err instanceof TypeError);
  const c = r.clone();
  assertEquals([await c.text(), await r.text()], ["x", "x"]);
  assert(c.headers.get("content-type") !== null);
});

test("blob: URLs: GET of a registered Blob, with its type and size", async () => {
  const url = URL.createObjectURL(new Blob(["blob body"], { type: "text/x" }));
  const r = await fetch(url);
  assertEquals([r.status, r.headers.get("content-type"), r.headers.get("content-length"), await r.text()],
    [200, "text/x", "9", "blob body"]);
  const untyped = await fetch(URL.createObjectURL(new Blob([new Uint8Array([1, 2])])));
  assertEquals([untyped.headers.get("content-type"), untyped.headers.get("content-length")], [null, "2"]);
  await assertRejects(() => fetch(url, { method: "POST", body: "x" }), TypeError);
  URL.revokeObjectURL(url);
  await assertRejects(() => fetch(url), TypeError);
});

test("a refused connection is a TypeError that names the URL and why", async () => {
  const err = await assertRejects(() => fetch("http://127.0.0.1:2/x"), TypeError);
  assert(err.message.includes("http://127.0.0.1:2/x") && err.message.includes("could not connect"),
    err.message);
});

test("the Fetch Standard's bad ports are refused before any connection", async () => {
  for (const port of [1, 22, 25, 6667, 10080]) {
    const err = await assertRejects(() => fetch(`http://127.0.0.1:${port}/`), TypeError);
    assert(err.message.includes("is blocked"), err.message);
  }
});

test("a request body is used once fetched", async () => {
  const req = new Request("data:,x", { method: "POST", body: "payload" });
  await fetch(req);
  assert(req.bodyUsed);
  await assertRejects(() => fetch(req), TypeError);
});
