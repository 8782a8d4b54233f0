#!/usr/bin/env python3
"""A served app sees every global of the WinterTC Minimum Common API this runtime provides:
the app answers a JSON report of typeof checks, and each must be right."""
import json

from nanotest import Server, check, eq, expect, run

# name -> expected typeof
EXPECTED = {
    "globalThis": "object", "self": "object", "console": "object", "navigator": "object",
    "performance": "object", "crypto": "object", "WebAssembly": "object",
    "atob": "function", "btoa": "function", "setTimeout": "function", "setInterval": "function",
    "clearTimeout": "function", "clearInterval": "function", "queueMicrotask": "function",
    "structuredClone": "function", "reportError": "function", "addEventListener": "function",
    "Headers": "function", "Request": "function", "Response": "function", "FormData": "function",
    "Blob": "function", "File": "function", "FileReader": "function", "URL": "function",
    "URLSearchParams": "function", "URLPattern": "function", "TextEncoder": "function",
    "TextDecoder": "function", "Event": "function", "EventTarget": "function",
    "CustomEvent": "function", "ErrorEvent": "function", "PromiseRejectionEvent": "function",
    "MessageEvent": "function", "MessageChannel": "function", "MessagePort": "function",
    "BroadcastChannel": "function", "DOMException": "function", "AbortController": "function",
    "AbortSignal": "function", "Performance": "function", "PerformanceMark": "function",
    "PerformanceMeasure": "function", "PerformanceObserver": "function", "ProgressEvent": "function",
}

APP = """
const names = %s;
export default {
  async fetch() {
    const report = {};
    for (const name of names) report[name] = typeof globalThis[name];
    report["crypto.getRandomValues"] = typeof crypto.getRandomValues;
    report["crypto.randomUUID"] = typeof crypto.randomUUID;
    report["performance.now"] = typeof performance.now;
    report["navigator.userAgent"] = typeof navigator.userAgent;
    report["URL.canParse"] = typeof URL.canParse;
    report["URL.parse"] = typeof URL.parse;
    report["AbortSignal.any"] = typeof AbortSignal.any;
    report["AbortSignal.timeout"] = typeof AbortSignal.timeout;
    report["Response.json"] = typeof Response.json;
    report.globalIsEventTarget = globalThis instanceof EventTarget;
    // WebAssembly from bytes: (module (func (export "add") (param i32 i32) (result i32) ...))
    const bytes = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 7, 1, 96, 2, 127, 127, 1, 127,
      3, 2, 1, 0, 7, 7, 1, 3, 97, 100, 100, 0, 0, 10, 9, 1, 7, 0, 32, 0, 32, 1, 106, 11]);
    const { instance } = await WebAssembly.instantiate(bytes);
    report.wasmAdd = instance.exports.add(2, 3);
    return Response.json(report);
  },
};
""" % json.dumps(sorted(EXPECTED))


@check
def every_global_has_the_right_type():
    with Server(APP) as s:
        r = s.request()
        eq(r.status, 200, "status")
        got = json.loads(r.body)
        wrong = {n: got.get(n) for n, t in EXPECTED.items() if got.get(n) != t}
        expect(not wrong, f"wrong typeof: {wrong}")
        for name in ["crypto.getRandomValues", "crypto.randomUUID", "performance.now", "URL.canParse",
                     "URL.parse", "AbortSignal.any", "AbortSignal.timeout", "Response.json"]:
            eq(got[name], "function", name)
        eq(got["navigator.userAgent"], "string", "navigator.userAgent")
        eq(got["globalIsEventTarget"], True, "the global is an EventTarget")
        eq(got["wasmAdd"], 5, "WebAssembly instantiated from bytes")


PATCHED_ITERATORS_APP = """
// An app that replaces the iteration protocol's pieces (as a careless polyfill might): the
// runtime's own request and response handling must not use them.
const arrayIteratorPrototype = Object.getPrototypeOf([][Symbol.iterator]());
arrayIteratorPrototype.next = () => { throw new Error("array iterator used"); };
String.prototype[Symbol.iterator] = () => { throw new Error("string iterator used"); };
export default {
  async fetch(request) {
    const url = new URL(request.url);
    const headers = new Headers({ "X-One": "1" });
    headers.append("x-two", url.searchParams.get("q"));
    const form = new FormData();
    form.append("a", "b");
    if (url.pathname === "/json") return Response.json({ a: form.get("a"), ua: request.headers.get("x-ua") });
    if (url.pathname === "/more") {
      // (Built without iterables: the app's own Map([...]) would use its broken iterator.)
      const map = new Map().set("k", [1, 2]);
      const set = new Set().add("s");
      console.log("logged", map, set, { deep: { list: [3] } });
      console.table([{ col: "cell" }]);
      performance.mark("m");
      performance.measure("between", "m");
      const marks = performance.getEntries().map((e) => e.name).join(",");
      const match = new URLPattern({ pathname: "/items/:id" }).exec("http://h.test/items/7");
      new FileReader();
      return new Response(marks + " " + match.pathname.groups.id);
    }
    return new Response("text " + headers.get("x-two") + " " + crypto.randomUUID().length,
      { status: 201, headers });
  },
};
"""


@check
def an_app_that_replaced_the_iterators_is_still_served():
    with Server(PATCHED_ITERATORS_APP) as s:
        r = s.request("GET", "/json", headers={"X-UA": "e2e"})
        eq(r.status, 200, "status of /json")
        eq(json.loads(r.body), {"a": "b", "ua": "e2e"}, "body of /json")
        r = s.request("GET", "/text?q=2")
        eq(r.status, 201, "status of /text")
        eq(r.body, b"text 2 36", "body of /text")
        eq(r.header("x-one"), "1", "x-one header")
        # console (objects, Map, Set, table), performance entries, URLPattern, FileReader.
        r = s.request("GET", "/more")
        eq((r.status, r.body), (200, b"m,between 7"), "/more")
        s.wait_log(r"logged Map\(1\) \{ 'k' => \[ 1, 2 \] \} Set\(1\) \{ 's' \} "
                   r"\{ deep: \{ list: \[ 3 \] \} \}")
        s.wait_log(r"│ \(index\) │ col  │")


if __name__ == "__main__":
    run()
