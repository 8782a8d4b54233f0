// URLPattern (WHATWG URL Pattern Standard).
import { test, assert, assertEquals, assertThrows, assertStrictEquals } from "nano:test";

test("named groups, regexp groups and wildcards in a pathname", () => {
  const p = new URLPattern({ pathname: "/books/:id(\\d+)/*" });
  const m = p.exec("https://shop.test/books/42/chapter/1");
  assertEquals(m.pathname.groups, { id: "42", 0: "chapter/1" });
  assertStrictEquals(p.exec("https://shop.test/books/x/y"), null);
  assert(p.hasRegExpGroups);
});

test("constructor strings split into components; missing ones are wildcards", () => {
  const p = new URLPattern("https://*.example.com/:path/x?q=:q#:h");
  assertEquals([p.protocol, p.hostname, p.pathname, p.search, p.hash, p.port],
    ["https", "*.example.com", "/:path/x", "q=:q", ":h", ""]);
  const m = p.exec("https://a.example.com/y/x?q=1#top");
  assertEquals([m.hostname.groups[0], m.pathname.groups.path, m.search.groups.q, m.hash.groups.h],
    ["a", "y", "1", "top"]);
  assertEquals(new URLPattern({}).protocol, "*");
});

test("relative patterns need a base URL", () => {
  assert(new URLPattern("/api/:v", "https://h.test").test("https://h.test/api/2"));
  assertThrows(() => new URLPattern("/api/:v"), TypeError);
});

test("modifiers and groups", () => {
  const p = new URLPattern({ pathname: "/files{/:dir}*/:name{.:ext}?" });
  assertEquals(p.exec({ pathname: "/files/a/b/c.txt" }).pathname.groups, { dir: "a/b", name: "c", ext: "txt" });
  assert(p.test({ pathname: "/files/readme" }));
  assert(!new URLPattern({ pathname: "/x/:y+" }).test({ pathname: "/x/" }));
});

test("fixed text is canonicalized like URLs; ignoreCase", () => {
  assertEquals(new URLPattern({ pathname: "/a b" }).pathname, "/a%20b");
  assertEquals(new URLPattern({ hostname: "café.com" }).hostname, "xn--caf-dma.com");
  assert(new URLPattern({ pathname: "/ABC" }, { ignoreCase: true }).test({ pathname: "/abc" }));
  assert(!new URLPattern({ pathname: "/ABC" }).test({ pathname: "/abc" }));
});

test("bad patterns are TypeErrors", () => {
  assertThrows(() => new URLPattern({ pathname: "/:a/:a" }), TypeError);
  assertThrows(() => new URLPattern({ pathname: "/(?x)" }), TypeError);
  assertThrows(() => new URLPattern({ pathname: "/((a))" }), TypeError);
  assertThrows(() => new URLPattern({ pathname: "/{unclosed" }), TypeError);
});

test("compareComponent orders patterns from most to least specific", () => {
  const cmp = (a, b) => URLPattern.compareComponent("pathname", new URLPattern({ pathname: a }), new URLPattern({ pathname: b }));
  assertEquals(cmp("/foo/bar", "/foo/:bar"), 1);
  assertEquals(cmp("/foo/:bar", "/foo/*"), 1);
  assertEquals(cmp("/foo/:a", "/foo/:b"), 0);
  assertEquals(cmp("/foo/{x}?", "/foo/{x}*"), 1);
  assertEquals(cmp("/a", "/b"), -1);
  assertThrows(() => URLPattern.compareComponent("nope", new URLPattern({}), new URLPattern({})), TypeError);
});

test("test() agrees with exec(); a lone * component yields its whole value as group 0", () => {
  const patterns = [
    { pathname: "/users/:id" }, { pathname: "/users/*" }, { hostname: "*.example.test" },
    { protocol: "http{s}?", pathname: "/a/:b?" }, { search: "q=*" }, { hash: "*" },
    "https://example.test/books/:id(\\d+)", { pathname: "/x", ignoreCase: true }, {},
  ];
  const inputs = [
    "http://h/users/123", "https://example.test/books/42", "https://a.example.test/?q=1#frag",
    "http://h/a/", "http://h/a/b", "http://h/X", "https://example.test/books/x",
    { pathname: "/users/7" }, { hostname: "b.example.test", pathname: "/users/8" },
    { pathname: "/a\nb" }, "data:text/plain,hi",
  ];
  let matched = 0;
  for (const p of patterns) {
    const pattern = new URLPattern(p);
    for (const input of inputs) {
      const result = pattern.exec(input);
      assertEquals(pattern.test(input), result !== null, `${JSON.stringify(p)} ${JSON.stringify(input)}`);
      if (result === null) continue;
      matched++;
      for (const c of ["protocol", "username", "password", "hostname", "port", "pathname", "search", "hash"]) {
        if (pattern[c] === "*") assertEquals(result[c].groups, { 0: result[c].input }, c);
      }
    }
  }
  assert(matched > 15, `only ${matched} matches`);
});
