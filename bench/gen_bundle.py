#!/usr/bin/env python3
"""bench/gen_bundle.py: writes a synthetic Workers bundle of about a given size, shaped like
what esbuild or wrangler emit for an app with its npm dependencies.

    python3 bench/gen_bundle.py --size 2m -o /tmp/bundle-2m.js     # or 11k, 500k, 2097152
    python3 bench/gen_bundle.py --size 11k --seed 7 -o app.js

The output is one ES module, `export default { fetch(request, env, ctx) }`, made of:
- esbuild's runtime helpers (`__esm`, `__commonJS`, `__toESM`, `__export`);
- "packages": scope-hoisted ESM modules (top-level functions, classes with methods, getters
  and static fields, frozen constant tables) and CommonJS modules in `__commonJS` wrappers;
- string tables (messages with placeholders, MIME types, locale names) and number tables;
- a router (a table of method, pattern, handler; `:param` segments) with middleware.

At load, the module runs what a real bundle runs: its top-level statements, class
definitions, and about a third of the CommonJS modules (`__toESM(require_x())` at top level);
the rest are required by the handlers that need them. `GET /` goes through the middleware and
the router to an HTML page (with the marker `nano-bench-bundle`) rendered by a template
helper. Every other function is only parsed, never run, as most of a real bundle is on a
given request.

Deterministic: the same --size and --seed give the same bytes. Python standard library only.
bench/firstresponse.py calls `generate()` directly.
"""
import argparse
import random
import sys

MARKER = "nano-bench-bundle"

VERBS = ("parse", "format", "validate", "normalize", "encode", "decode", "resolve", "create",
         "merge", "compile", "serialize", "split", "match", "load", "apply", "build", "check",
         "convert", "extract", "collect", "visit", "transform", "escape", "hash", "compare")
NOUNS = ("Header", "Token", "Schema", "Path", "Date", "Locale", "Buffer", "Query", "Route",
         "Cookie", "Option", "Value", "Node", "Entry", "Record", "Field", "Range", "Segment",
         "Pattern", "Message", "Config", "Context", "Chunk", "Span", "Rule", "Key", "Type")
PKGS = ("zod", "hono", "date-fns", "lodash-es", "valibot", "jose", "cookie", "qs", "ms", "uuid",
        "superjson", "itty-router", "yaml", "marked", "he", "mime", "nanoid", "dayjs", "immer",
        "drizzle-orm", "kysely", "toucan-js", "fast-xml-parser", "chalk", "semver", "punycode")
WORDS = ("invalid", "expected", "received", "value", "type", "string", "number", "array",
         "object", "required", "optional", "too", "small", "big", "must", "be", "at", "least",
         "most", "characters", "items", "date", "email", "url", "format", "unknown", "key",
         "unrecognized", "union", "enum", "literal", "not", "a", "valid", "failed", "to",
         "parse", "missing", "header", "token", "expired", "signature", "request", "response")
MIME = ("text/html", "text/plain", "text/css", "text/csv", "application/json",
        "application/javascript", "application/xml", "image/png", "image/jpeg", "image/webp",
        "image/svg+xml", "font/woff2", "application/pdf", "application/zip", "audio/mpeg",
        "video/mp4", "application/octet-stream", "application/wasm", "text/markdown")

RUNTIME = """\
var __create = Object.create;
var __defProp = Object.defineProperty;
var __getOwnPropDesc = Object.getOwnPropertyDescriptor;
var __getOwnPropNames = Object.getOwnPropertyNames;
var __getProtoOf = Object.getPrototypeOf;
var __hasOwnProp = Object.prototype.hasOwnProperty;
var __defNormalProp = (obj, key, value) => key in obj ? __defProp(obj, key, { enumerable: true, configurable: true, writable: true, value }) : obj[key] = value;
var __esm = (fn, res) => function __init() {
  return fn && (res = (0, fn[__getOwnPropNames(fn)[0]])(fn = 0)), res;
};
var __commonJS = (cb, mod) => function __require() {
  return mod || (0, cb[__getOwnPropNames(cb)[0]])((mod = { exports: {} }).exports, mod), mod.exports;
};
var __export = (target, all) => {
  for (var name in all)
    __defProp(target, name, { get: all[name], enumerable: true });
};
var __copyProps = (to, from, except, desc) => {
  if (from && typeof from === "object" || typeof from === "function") {
    for (let key of __getOwnPropNames(from))
      if (!__hasOwnProp.call(to, key) && key !== except)
        __defProp(to, key, { get: () => from[key], enumerable: !(desc = __getOwnPropDesc(from, key)) || desc.enumerable });
  }
  return to;
};
var __toESM = (mod, isNodeMode, target) => (target = mod != null ? __create(__getProtoOf(mod)) : {}, __copyProps(
  isNodeMode || !mod || !mod.__esModule ? __defProp(target, "default", { value: mod, enumerable: true }) : target,
  mod
));
var __publicField = (obj, key, value) => __defNormalProp(obj, typeof key !== "symbol" ? key + "" : key, value);
"""

APP = """\
// src/lib/html.js
var HTML_ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
}
function renderTemplate(tpl, data) {
  return tpl.replace(/\\{\\{\\s*(\\w+)\\s*\\}\\}/g, (_, k) => {
    const v = data[k];
    if (Array.isArray(v)) return v.map((x) => `<li><a href="${escapeHtml(x.href)}">${escapeHtml(x.label)}</a></li>`).join("");
    return v == null ? "" : escapeHtml(v);
  });
}
var TEMPLATES = {
  index: "<!doctype html><html><head><title>{{ title }}</title></head><body><h1>{{ title }}</h1><p>path: {{ path }}</p><ul>{{ items }}</ul><footer>{{ footer }}</footer></body></html>",
  notFound: "<!doctype html><html><body><h1>Not found</h1><p>{{ path }}</p></body></html>"
};
var NAV = [
  { href: "/", label: "Home" }, { href: "/docs", label: "Docs" }, { href: "/api/users", label: "Users" },
  { href: "/api/orders", label: "Orders" }, { href: "/status", label: "Status" }, { href: "/about", label: "About" }
];

// src/lib/router.js
var Router = class {
  constructor() {
    this.routes = [];
    this.middleware = [];
  }
  use(fn) {
    this.middleware.push(fn);
    return this;
  }
  on(method, pattern, handler) {
    const keys = [];
    const source = pattern.replace(/\\/:(\\w+)/g, (_, k) => {
      keys.push(k);
      return "/([^/]+)";
    });
    this.routes.push({ method, re: new RegExp(`^${source}/?$`), keys, handler });
    return this;
  }
  get(p, h) { return this.on("GET", p, h); }
  post(p, h) { return this.on("POST", p, h); }
  match(method, path) {
    for (const r of this.routes) {
      if (r.method !== method && r.method !== "ALL") continue;
      const m = r.re.exec(path);
      if (!m) continue;
      const params = {};
      r.keys.forEach((k, i) => { params[k] = decodeURIComponent(m[i + 1]); });
      return { handler: r.handler, params };
    }
    return null;
  }
  async handle(request, env, ctx) {
    const url = new URL(request.url);
    const c = { request, env, ctx, url, params: {}, headers: new Headers(), state: {} };
    let i = 0;
    const next = async () => {
      if (i < this.middleware.length) return this.middleware[i++](c, next);
      const found = this.match(request.method, url.pathname);
      if (!found) return new Response(renderTemplate(TEMPLATES.notFound, { path: url.pathname }), { status: 404, headers: { "content-type": "text/html; charset=utf-8" } });
      c.params = found.params;
      return found.handler(c);
    };
    const res = await next();
    for (const [k, v] of c.headers) res.headers.set(k, v);
    return res;
  }
};

// src/middleware.js
async function timing(c, next) {
  const t0 = Date.now();
  const res = await next();
  c.headers.set("server-timing", `app;dur=${Date.now() - t0}`);
  return res;
}
async function securityHeaders(c, next) {
  c.headers.set("x-content-type-options", "nosniff");
  c.headers.set("referrer-policy", "strict-origin-when-cross-origin");
  return next();
}
async function cors(c, next) {
  const origin = c.request.headers.get("origin");
  if (origin && ALLOWED_ORIGINS.includes(origin)) c.headers.set("access-control-allow-origin", origin);
  if (c.request.method === "OPTIONS") return new Response(null, { status: 204 });
  return next();
}
var ALLOWED_ORIGINS = ["https://example.com", "https://app.example.com"];

// src/index.js
function json(data, status = 200) {
  return new Response(JSON.stringify(data), { status, headers: { "content-type": "application/json" } });
}
var router = new Router().use(timing).use(securityHeaders).use(cors);
router.get("/", (c) => new Response(renderTemplate(TEMPLATES.index, {
  title: "%(marker)s", path: c.url.pathname, items: NAV, footer: BUILD_INFO.name + " " + BUILD_INFO.version
}), { headers: { "content-type": "text/html; charset=utf-8" } }));
router.get("/status", (c) => json({ ok: true, modules: BUILD_INFO.modules, functions: BUILD_INFO.functions }));
%(routes)s
var src_default = {
  async fetch(request, env, ctx) {
    try {
      return await router.handle(request, env, ctx);
    } catch (err) {
      return json({ error: String(err && err.message || err) }, 500);
    }
  }
};
export {
  src_default as default
};
"""


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)
        self.used = set()
        self.functions = 0
        self.modules = 0

    def name(self, kind="fn"):
        r = self.r
        while True:
            if kind == "class":
                n = r.choice(NOUNS) + r.choice(("Parser", "Builder", "Error", "Map", "Set",
                                                "Reader", "Writer", "Cache", "Schema", "Store",
                                                "Visitor", "Stream", "Client", "Codec"))
            elif kind == "const":
                n = (r.choice(NOUNS) + "_" + r.choice(("MAP", "TABLE", "LIST", "CODES", "NAMES",
                                                       "DEFAULTS", "LIMITS"))).upper()
            else:
                n = r.choice(VERBS) + r.choice(NOUNS) + r.choice(("", "s", "At", "Of", "With",
                                                                  "Sync", "Impl"))
            # esbuild renames clashes with a numeric suffix; so do we.
            cand, k = n, 1
            while cand in self.used:
                k += 1
                cand = f"{n}{k}"
            self.used.add(cand)
            return cand

    def words(self, lo, hi):
        return " ".join(self.r.choice(WORDS) for _ in range(self.r.randint(lo, hi)))

    def expr(self, vars_):
        r = self.r
        v = r.choice(vars_)
        return r.choice((
            f"{v} == null ? {r.randint(0, 99)} : {v}",
            f"typeof {v} === \"string\" ? {v}.trim() : String({v})",
            f"Array.isArray({v}) ? {v}.length : 0",
            f"{v}?.{r.choice(('id', 'name', 'value', 'type', 'key'))} ?? null",
            f"`${{{v}}}:{r.choice(WORDS)}`",
            f"Object.keys({v} || {{}}).length",
            f"({v} | 0) + {r.randint(1, 64)}",
            f"JSON.stringify({v})",
            f"{v} instanceof Date ? {v}.getTime() : Date.parse({v})",
            f"Math.max(0, Math.min({r.randint(8, 4096)}, {v}))",
        ))

    def stmts(self, params, depth, callees, n, scope=None):
        """n statements; params are the function's parameters (the only names assigned to),
        scope the names readable here (default: params)."""
        r = self.r
        out, vars_ = [], list(scope if scope is not None else params)
        ind = "  " * (depth + 1)
        for _ in range(n):
            k = r.randint(0, 11)
            if k <= 2:
                nv = f"{r.choice(('v', 'x', 'res', 'tmp', 'out', 'acc', 'key', 'val'))}{len(vars_)}"
                out.append(f"{ind}const {nv} = {self.expr(vars_)};")
                vars_.append(nv)
            elif k == 3 and depth < 3:
                out.append(f"{ind}if ({r.choice(vars_)} {r.choice(('===', '!==', '>', '<'))} "
                           f"{r.choice(('null', 'undefined', '0', repr(r.choice(WORDS))))}) {{")
                out += self.stmts(params, depth + 1, callees, r.randint(1, 3), vars_)
                out.append(f"{ind}}}")
            elif k == 4 and depth < 3:
                it = f"item{len(vars_)}"
                out.append(f"{ind}for (const {it} of {r.choice(vars_)} || []) {{")
                out += self.stmts(params, depth + 1, callees, r.randint(1, 2), vars_ + [it])
                out.append(f"{ind}}}")
            elif k == 5 and callees:
                nv = f"r{len(vars_)}"
                out.append(f"{ind}const {nv} = {r.choice(callees)}({r.choice(vars_)}, "
                           f"{r.choice(vars_)});")
                vars_.append(nv)
            elif k == 6:
                out.append(f"{ind}if (!{r.choice(vars_)}) throw new TypeError("
                           f"\"{self.words(3, 7)}\");")
            elif k == 7 and depth < 2:
                out.append(f"{ind}switch ({r.choice(vars_)}) {{")
                for w in r.sample(WORDS, r.randint(2, 4)):
                    out.append(f"{ind}  case \"{w}\":")
                    out.append(f"{ind}    return {self.expr(vars_)};")
                out.append(f"{ind}  default:")
                out.append(f"{ind}    break;")
                out.append(f"{ind}}}")
            elif k == 8:
                nv = f"list{len(vars_)}"
                out.append(f"{ind}const {nv} = ({r.choice(vars_)} || []).filter((e) => e != null)"
                           f".map((e, i) => ({{ i, e, k: String(e).slice(0, {r.randint(2, 16)}) }}));")
                vars_.append(nv)
            elif k == 9 and depth < 2:
                out.append(f"{ind}try {{")
                out.append(f"{ind}  return JSON.parse({r.choice(vars_)});")
                out.append(f"{ind}}} catch (err) {{")
                out.append(f"{ind}  throw new Error(\"{self.words(3, 6)}\", {{ cause: err }});")
                out.append(f"{ind}}}")
            elif k == 10:
                out.append(f"{ind}const {{ {r.choice(('a', 'b', 'c'))}{len(vars_)} = "
                           f"{r.randint(0, 9)}, ...rest{len(vars_)} }} = {r.choice(vars_)} || {{}};")
                vars_ += [f"rest{len(vars_)}"]
            elif k == 11 and params:
                out.append(f"{ind}{r.choice(params)} = {self.expr(vars_)};")
            else:
                out.append(f"{ind}// {self.words(4, 10)}")
        plain = [v for v in vars_ if "." not in v]
        out.append(f"{ind}return {{ {', '.join(sorted(set(plain[-3:])))} }};" if plain
                   else f"{ind}return null;")
        return out

    def function(self, callees, indent=""):
        r = self.r
        name = self.name()
        params = r.sample(("input", "options", "value", "ctx", "data", "opts", "path",
                           "schema", "source", "target"), r.randint(1, 3))
        head = f"{indent}{'async ' if r.random() < 0.15 else ''}function {name}({', '.join(params)}) {{"
        body = self.stmts(params, 0, callees, r.randint(2, 9))
        self.functions += 1
        return name, "\n".join([head] + [indent + line for line in body] + [indent + "}"])

    def klass(self, callees, indent=""):
        r = self.r
        name = self.name("class")
        base = r.choice(("", "", "", " extends Error", " extends Map"))
        lines = [f"{indent}var {name} = class{base} {{"]
        ctor_super = "    super(...args);\n" if base else ""
        lines.append(f"{indent}  constructor(...args) {{\n{indent}{ctor_super}{indent}"
                     f"    this._state = args[0] ?? {{}};\n{indent}    this._count = 0;\n{indent}  }}")
        for _ in range(r.randint(2, 7)):
            m = r.choice(VERBS) + r.choice(NOUNS)
            params = r.sample(("input", "options", "value", "key"), r.randint(0, 2))
            body = self.stmts(["this._state"] + params, 1, callees, r.randint(1, 5))
            lines.append(f"{indent}  {m}({', '.join(params)}) {{")
            lines += [indent + line for line in body]
            lines.append(f"{indent}  }}")
            self.functions += 1
        lines.append(f"{indent}  get size() {{\n{indent}    return this._count;\n{indent}  }}")
        lines.append(f"{indent}}};")
        lines.append(f"{indent}__publicField({name}, \"kind\", \"{name.lower()}\");")
        return name, "\n".join(lines)

    def table(self, indent=""):
        r = self.r
        name = self.name("const")
        k = r.randint(0, 2)
        if k == 0:
            items = ",\n".join(f"{indent}  \"{r.choice(WORDS)}_{r.choice(WORDS)}_{i}\": "
                               f"\"{self.words(4, 12)} {{{r.choice(('expected', 'received', 'path', 'value'))}}}\""
                               for i in range(r.randint(10, 40)))
            return name, f"{indent}var {name} = {{\n{items}\n{indent}}};"
        if k == 1:
            items = ", ".join(f"[\"{r.choice(MIME)}\", [\"{r.choice(WORDS)[:4]}\", \"{r.choice(WORDS)[:3]}\"]]"
                              for _ in range(r.randint(10, 30)))
            return name, f"{indent}var {name} = new Map([{items}]);"
        nums = ", ".join(str(r.randint(0, 0x10FFFF)) for _ in range(r.randint(40, 200)))
        return name, f"{indent}var {name} = Object.freeze([{nums}]);"

    def esm_module(self, target):
        """Scope-hoisted ESM: top-level declarations. Returns (text, callable names)."""
        pkg = self.r.choice(PKGS)
        parts = [f"// node_modules/{pkg}/dist/{self.r.choice(NOUNS).lower()}{self.modules}.js"]
        names, size = [], 0
        while size < target:
            k = self.r.random()
            if k < 0.6:
                n, t = self.function(names[-6:])
                names.append(n)
            elif k < 0.85:
                n, t = self.klass(names[-4:])
            else:
                n, t = self.table()
            parts.append(t)
            size += len(t)
        self.modules += 1
        return "\n".join(parts) + "\n", names

    def cjs_module(self, target):
        """A CommonJS module in esbuild's __commonJS wrapper. Returns (text, require name)."""
        pkg = self.r.choice(PKGS)
        path = f"node_modules/{pkg}/lib/{self.r.choice(NOUNS).lower()}{self.modules}.js"
        req = f"require_{pkg.replace('-', '_')}{self.modules}"
        parts = [f"// {path}", f"var {req} = __commonJS({{", f"  \"{path}\"(exports, module) {{",
                 "    \"use strict\";"]
        names, size = [], 0
        while size < target:
            k = self.r.random()
            if k < 0.7:
                n, t = self.function(names[-6:], "    ")
                names.append(n)
            elif k < 0.85:
                n, t = self.klass(names[-4:], "    ")
                names.append(n)
            else:
                n, t = self.table("    ")
                names.append(n)
            parts.append(t)
            size += len(t)
        parts.append(f"    module.exports = {{ {', '.join(names)} }};")
        parts += ["  }", "});"]
        self.modules += 1
        return "\n".join(parts) + "\n", req


def generate(size, seed=1):
    """The bundle's source text, within about 3% of `size` bytes (at least ~9 KB: the app)."""
    budget = size - len(APP) - len(RUNTIME)
    for _ in range(6):  # the packages overshoot their budget by up to one declaration
        text = _generate(size, seed, budget)
        if abs(len(text) - size) <= size * 0.03:
            break
        budget -= len(text) - size
    return text


def _generate(size, seed, budget):
    g = Gen(seed)
    body, eager, lazy, handlers = [], [], [], []
    remaining = budget
    total = 0
    while total < remaining:
        chunk = min(remaining - total, g.r.randint(4000, 40000))
        if g.r.random() < 0.55:
            text, names = g.esm_module(chunk)
            handlers += names[:2]
        else:
            text, req = g.cjs_module(chunk)
            # Top-level imports of CJS packages run at load; the rest on first use.
            (eager if g.r.random() < 0.35 else lazy).append(req)
        body.append(text)
        total += len(text)
    imports = "".join(f"var import_{req[8:]} = __toESM({req}());\n" for req in eager)
    routes = []
    for i, req in enumerate(lazy[:40]):
        routes.append(f"router.get(\"/api/{req[8:]}/:id\", (c) => json({{ id: c.params.id, "
                      f"exports: Object.keys({req}()).length }}));")
    for i, h in enumerate(handlers[:40]):
        routes.append(f"router.post(\"/rpc/{h}\", async (c) => json({h}(await c.request.json(), "
                      f"c.params)));")
    info = (f"var BUILD_INFO = {{ name: \"{MARKER}\", version: \"{size}-{seed}\", "
            f"modules: {g.modules}, functions: {g.functions} }};\n")
    return (f"// {MARKER}: synthetic Workers bundle, about {size} bytes, seed {seed} "
            f"(bench/gen_bundle.py)\n" + RUNTIME + "".join(body) + imports + info
            + APP % {"marker": MARKER, "routes": "\n".join(routes)})


def parse_size(s):
    s = s.strip().lower()
    mult = {"k": 1024, "m": 1024 * 1024}.get(s[-1:], 1)
    return int(float(s.rstrip("km")) * mult)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="2m", help="target size: bytes, or with k/m (default 2m)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("-o", "--output", default="-", help="file to write (default stdout)")
    opts = ap.parse_args()
    text = generate(parse_size(opts.size), opts.seed)
    if opts.output == "-":
        sys.stdout.write(text)
    else:
        with open(opts.output, "w") as f:
            f.write(text)
        print(f"gen_bundle: {opts.output}: {len(text.encode())} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
