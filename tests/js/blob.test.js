// Blob, File and FormData, and the Body mixin's blob()/formData().
import { test, assert, assertEquals, assertThrows, assertRejects } from "nano:test";

test("Blob concatenates strings, buffers and blobs", async () => {
  const b = new Blob(["hé", new Uint8Array([33]), new Blob(["?"]), new ArrayBuffer(1)], { type: "Text/Plain" });
  assertEquals([b.size, b.type], [6, "text/plain"]);
  assertEquals([...await b.bytes()], [0x68, 0xc3, 0xa9, 0x21, 0x3f, 0]);
  assertEquals(new Blob([], { type: "ünïcode" }).type, "");
  assertThrows(() => new Blob("not a sequence"), TypeError);
  assertThrows(() => new Blob([], { endings: "bogus" }), TypeError);
});

test("slice follows negative indexes and clamps", async () => {
  const b = new Blob(["abcdef"]);
  assertEquals(await b.slice(1, -1).text(), "bcde");
  assertEquals(await b.slice(-2).text(), "ef");
  assertEquals(await b.slice(4, 2).text(), "");
  assertEquals(b.slice(0, 1, "X/Y").type, "x/y");
});

test("native endings and File metadata", async () => {
  const f = new File(["a\r\nb\rc"], "n.txt", { endings: "native", type: "text/plain", lastModified: 42 });
  assertEquals([f.name, f.lastModified, f.type], ["n.txt", 42, "text/plain"]);
  assertEquals(await f.text(), "a\nb\nc");
  assert(f instanceof Blob);
  assertThrows(() => new File(["x"]), TypeError);
});

test("FormData entries: strings, Blobs become Files", () => {
  const fd = new FormData();
  fd.append("a", "1");
  fd.append("a", "2");
  fd.append("file", new Blob(["x"], { type: "text/plain" }));
  fd.set("named", new Blob(["y"]), "y.bin");
  assertEquals(fd.getAll("a"), ["1", "2"]);
  assertEquals(fd.get("file").name, "blob");
  assertEquals(fd.get("named").name, "y.bin");
  fd.set("a", "3");
  assertEquals([...fd.keys()], ["a", "file", "named"]);
  fd.delete("file");
  assert(!fd.has("file"));
  assertThrows(() => fd.append("x", "y", "filename-without-blob"), TypeError);
  assertThrows(() => new FormData({}), TypeError);
});

test("a FormData body round-trips through multipart/form-data", async () => {
  const fd = new FormData();
  fd.append("greeting", "hi\nthere");
  fd.append("upload", new File(["\u00ffbytes"], "a \"q\".txt", { type: "text/x" }));
  const req = new Request("http://h/", { method: "POST", body: fd });
  assert(req.headers.get("content-type").startsWith("multipart/form-data; boundary="));
  const back = await req.formData();
  assertEquals(back.get("greeting"), "hi\r\nthere");
  const file = back.get("upload");
  assertEquals([file.name, file.type, await file.text()], ["a %22q%22.txt", "text/x", "\u00ffbytes"]);
});

test("urlencoded bodies and blob() with the content type", async () => {
  const res = new Response(new URLSearchParams("a=1&b=%20"));
  assertEquals(res.headers.get("content-type"), "application/x-www-form-urlencoded;charset=UTF-8");
  assertEquals([...await res.formData()], [["a", "1"], ["b", " "]]);
  const blob = await new Response("x", { headers: { "content-type": "A/B" } }).blob();
  assertEquals([blob.type, blob.size], ["a/b", 1]);
  assertEquals(new Response(new Blob(["z"], { type: "t/u" })).headers.get("content-type"), "t/u");
  await assertRejects(new Response("x").formData(), TypeError);
});

test("FileReader reads as text, ArrayBuffer, binary string and data URL with events", async () => {
  const read = (method, blob, ...args) => new Promise((resolve, reject) => {
    const r = new FileReader();
    const events = [];
    for (const t of ["loadstart", "progress", "load", "loadend"]) r.addEventListener(t, () => events.push(t));
    r.onerror = reject;
    r.onloadend = () => resolve([r.result, events, r.readyState]);
    r[method](blob, ...args);
    assertEquals(r.readyState, FileReader.LOADING);
  });
  const blob = new Blob(["héllo"], { type: "text/plain" });
  const [text, events, state] = await read("readAsText", blob);
  assertEquals([text, events, state], ["héllo", ["loadstart", "progress", "load", "loadend"], FileReader.DONE]);
  assertEquals((await read("readAsArrayBuffer", blob))[0].byteLength, 6);
  assertEquals((await read("readAsBinaryString", new Blob([new Uint8Array([255, 65])])))[0], "\xffA");
  assertEquals((await read("readAsDataURL", blob))[0], "data:text/plain;base64,aMOpbGxv");
  assertEquals((await read("readAsText", new Blob([new Uint8Array([0xe9])]), "latin1"))[0], "é");
});

test("FileReader refuses a second read while loading; abort() fires abort and loadend", async () => {
  const r = new FileReader();
  r.readAsText(new Blob(["x"]));
  assertThrows(() => r.readAsText(new Blob(["y"])), DOMException);
  const events = [];
  r.onabort = () => events.push("abort");
  r.onloadend = () => events.push("loadend");
  r.onload = () => events.push("load");
  r.abort();
  await new Promise((resolve) => setTimeout(resolve, 10));
  assertEquals([events, r.result, r.readyState], [["abort", "loadend"], null, FileReader.DONE]);
});

test("URL.createObjectURL makes unique blob: URLs; revokeObjectURL forgets them", () => {
  const blob = new Blob(["x"]);
  const a = URL.createObjectURL(blob);
  const b = URL.createObjectURL(new File(["y"], "f"));
  assert(a !== b);
  assert(/^blob:null\/[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(a), a);
  assertEquals(new URL(a).protocol, "blob:");
  URL.revokeObjectURL(a);
  URL.revokeObjectURL("not a blob url"); // ignored
  assertThrows(() => URL.createObjectURL("not a blob"), TypeError);
});
