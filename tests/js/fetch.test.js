// Request, Response and Headers: init members, validation, clone, bodies.
import { test, assert, assertEquals, assertThrows, assertRejects } from "nano:test";

test("RequestInit members are validated and exposed", () => {
  const r = new Request("http://h/x", {
    method: "post", mode: "same-origin", credentials: "include", cache: "no-cache",
    redirect: "manual", referrer: "", referrerPolicy: "no-referrer", integrity: "sha256-x",
    keepalive: true, body: "b",
  });
  assertEquals([r.method, r.mode, r.credentials, r.cache, r.redirect, r.referrer, r.referrerPolicy,
    r.integrity, r.keepalive, r.duplex], ["POST", "same-origin", "include", "no-cache", "manual", "",
    "no-referrer", "sha256-x", true, "half"]);
  assertEquals(new Request("http://h/").referrer, "about:client");
  for (const bad of [{ mode: "navigate" }, { mode: "bogus" }, { cache: "only-if-cached" },
    { credentials: "x" }, { redirect: "x" }, { referrerPolicy: "x" }, { window: {} },
    { signal: {} }, { method: "TRACE" }, { method: "bad method" }, { method: "GET", body: "x" },
    { mode: "no-cors", method: "PUT" }]) {
    assertThrows(() => new Request("http://h/", bad), TypeError, undefined);
  }
});

test("a request's signal follows the one given", () => {
  const ac = new AbortController();
  const r = new Request("http://h/", { signal: ac.signal });
  const copy = new Request(r);
  assert(!r.signal.aborted);
  ac.abort("why");
  assertEquals([r.signal.aborted, r.signal.reason, copy.signal.aborted], [true, "why", true]);
});

test("clone copies the body and leaves the original readable", async () => {
  const r = new Request("http://h/", { method: "PUT", body: "data", headers: { "x-a": "1" } });
  const c = r.clone();
  assertEquals([await c.text(), r.bodyUsed, c.headers.get("x-a")], ["data", false, "1"]);
  assertEquals(await r.text(), "data");
  assert(r.bodyUsed);
  assertThrows(() => r.clone(), TypeError);
  await assertRejects(r.text(), TypeError);
});

test("constructing from a Request takes over its body", async () => {
  const a = new Request("http://h/", { method: "POST", body: "moved" });
  const b = new Request(a);
  assert(a.bodyUsed);
  assertEquals(await b.text(), "moved");
  assertThrows(() => new Request(a), TypeError);
});

test("Response status, statusText, redirect and error", async () => {
  const r = new Response("x", { status: 201, statusText: "Made", headers: [["a", "1"]] });
  assertEquals([r.status, r.statusText, r.ok, r.type, r.headers.get("a")], [201, "Made", true, "default", "1"]);
  assertThrows(() => new Response("", { status: 99 }), RangeError);
  assertThrows(() => new Response("body", { status: 204 }), TypeError);
  assertEquals(Response.redirect("http://h/next", 307).headers.get("location"), "http://h/next");
  assertThrows(() => Response.redirect("http://h/", 200), RangeError);
  const e = Response.error();
  assertEquals([e.type, e.status], ["error", 0]);
  assertEquals(await Response.json({ a: 1 }).json(), { a: 1 });
});

test("Headers: case-insensitive, combined values, set-cookie kept apart, guards", () => {
  const h = new Headers({ "Content-Type": "text/plain" });
  h.append("x-multi", "a");
  h.append("X-Multi", "b");
  h.append("set-cookie", "a=1");
  h.append("set-cookie", "b=2");
  assertEquals([h.get("content-type"), h.get("x-multi"), h.getSetCookie()], ["text/plain", "a, b", ["a=1", "b=2"]]);
  assertEquals([...h.keys()], ["content-type", "set-cookie", "set-cookie", "x-multi"]);
  assertThrows(() => h.append("bad name", "v"), TypeError);
  assertThrows(() => h.append("x", "a\nb"), TypeError);
  assertThrows(() => Response.error().headers.set("a", "b"), TypeError);
});

test("a string body with lone surrogates reads back as a USVString everywhere", async () => {
  const raw = "a\uD800b\uDC00c\uD83D\uDE00";
  const want = "a\uFFFDb\uFFFDc\uD83D\uDE00";
  assertEquals(await new Response(raw).text(), want);
  assertEquals(await new Request("http://x/", { method: "POST", body: raw }).text(), want);
  const bytes = new Uint8Array(await new Response(raw).arrayBuffer());
  assertEquals([...bytes], [...new TextEncoder().encode(want)]);
  const streamed = await new Response(new Response(raw).body).text();
  assertEquals(streamed, want);
  assertEquals(await new Response(raw).clone().text(), want);
  assertEquals(await Response.json({ s: raw }).json(), { s: raw });
});

// The body algorithms use the runtime's own steps, not public methods or iterators an app may
// have replaced (Fetch's "clone a body" tees, "append" is the Headers/FormData algorithm).
test("bodies: formData(), clone() and a Content-Type default ignore replaced methods", async () => {
  const saved = {
    fdAppend: FormData.prototype.append,
    tee: ReadableStream.prototype.tee,
    hAppend: Headers.prototype.append,
    hHas: Headers.prototype.has,
  };
  const arrayIteratorPrototype = Object.getPrototypeOf([][Symbol.iterator]());
  const next = arrayIteratorPrototype.next;
  const boom = (what) => () => { throw new Error(`${what} used`); };
  FormData.prototype.append = boom("FormData.prototype.append");
  ReadableStream.prototype.tee = boom("ReadableStream.prototype.tee");
  Headers.prototype.append = boom("Headers.prototype.append");
  Headers.prototype.has = boom("Headers.prototype.has");
  const got = {};
  try {
    arrayIteratorPrototype.next = boom("the array iterator");
    const urlencoded = await new Response("a=1&b=2",
      { headers: { "content-type": "application/x-www-form-urlencoded" } }).formData();
    got.urlencoded = urlencoded.get("b");
    const multipart = await new Response(
      "--X\r\ncontent-disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n" +
      "content-type: Text/Plain\r\n\r\nhello\r\n--X\r\ncontent-disposition: form-data; name=\"s\"\r\n\r\n" +
      "str\r\n--X--\r\n", { headers: { "content-type": "multipart/form-data; boundary=X" } }).formData();
    got.file = multipart.get("f");
    got.str = multipart.get("s");
    const streamed = new Response(new ReadableStream({
      start(c) { c.enqueue(new TextEncoder().encode("s")); c.close(); },
    }));
    const copy = streamed.clone();
    got.cloned = (await copy.text()) + (await streamed.text());
    got.requestType = new Request("http://h/", { method: "POST", body: "text" }).headers.get("content-type");
    got.responseType = new Response(new URLSearchParams()).headers.get("content-type");
  } finally {
    arrayIteratorPrototype.next = next;
    FormData.prototype.append = saved.fdAppend;
    ReadableStream.prototype.tee = saved.tee;
    Headers.prototype.append = saved.hAppend;
    Headers.prototype.has = saved.hHas;
  }
  assertEquals(got.urlencoded, "2");
  assert(got.file instanceof File, "a File");
  assertEquals([got.file.name, got.file.type, await got.file.text()], ["a.txt", "text/plain", "hello"]);
  assertEquals(got.str, "str");
  assertEquals(got.cloned, "ss");
  assertEquals(got.requestType, "text/plain;charset=UTF-8");
  assertEquals(got.responseType, "application/x-www-form-urlencoded;charset=UTF-8");
});

test("FormData entries made from Blobs are Files with the Blob's bytes, type and given name", async () => {
  const fd = new FormData();
  fd.append("plain", new Blob(["bytes"], { type: "Text/X" }));
  fd.append("named", new Blob(["b2"]), "given.bin");
  const original = new File(["f"], "orig.txt", { type: "a/b", lastModified: 42 });
  fd.append("renamed", original, "new.txt");
  fd.append("same", original);
  const plain = fd.get("plain");
  assert(plain instanceof File);
  assertEquals([plain.name, plain.type, await plain.text()], ["blob", "text/x", "bytes"]);
  assert(Math.abs(plain.lastModified - Date.now()) < 60000, "now");
  assertEquals(fd.get("named").name, "given.bin");
  const renamed = fd.get("renamed");
  assertEquals([renamed.name, renamed.type, renamed.lastModified, await renamed.text()],
    ["new.txt", "a/b", 42, "f"]);
  assert(renamed !== original, "a new File");
  assert(fd.get("same") === original, "a File given without a name is kept as it is");
});
