#!/usr/bin/env python3
"""tests/test262/run.py: runs the ECMAScript conformance tests (test262) inside nano-dp and
compares with expectations.

The tests are the subset beside the repository (default ../shared/test262, or --test262-dir /
NANO_TEST262_DIR), read in place, never copied in: the library built-ins V8 10.2 lacks, which
nano-dp installs from core-js (docs/engine-gaps.md). Each test runs as its front matter says
(INTERPRETING.md): in a fresh `nano-dp run` process, as a classic script made of the host
prelude below, the harness files (assert.js, sta.js, doneprintHandle.js for async tests, its
`includes:`) and the test; strict and sloppy unless `flags:` says onlyStrict, noStrict or raw.
A test passes when the script completes without an uncaught error (async tests: when it
prints Test262:AsyncTestComplete).

expectations.json lists every test we knowingly fail, by path and mode, with a reason:

    { "built-ins/Foo/bar.js": "why (both modes)", "built-ins/Foo/baz.js [strict]": "why" }

The run prints a table per built-in (passed/total runs) and exits 1 when a result differs
from the expectations, an unexpected pass included. Exit 77 (ctest's "skipped") when the
test262 directory does not exist.
"""
import argparse
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EXPECTATIONS = os.path.join(HERE, "expectations.json")

# What a test262 host provides (INTERPRETING.md, "Host-Defined Functions"): print for async
# tests, and $262 as far as one realm with no agents allows. detachArrayBuffer is the
# structured-clone transfer, as in a browser host.
PRELUDE = r"""
var print = function (msg) { console.log(String(msg)); };
var $262 = {
  global: globalThis,
  detachArrayBuffer: function (buffer) { structuredClone(buffer, { transfer: [buffer] }); },
  evalScript: function (src) { return (0, eval)(src); },
  gc: function () { throw new Test262Error('$262.gc is not available in nano-dp'); },
  createRealm: function () { throw new Test262Error('$262.createRealm: nano-dp runs one realm per process'); },
  agent: {},
};
"""
FRONT = re.compile(r"/\*---(.*?)---\*/", re.S)


def parse_front(src):
    m = FRONT.search(src)
    meta = {"flags": [], "includes": [], "features": [], "negative": None}
    if m is None:
        return meta
    text = m.group(1)
    for key in ("flags", "includes", "features"):
        mm = re.search(rf"^\s*{key}:\s*\[(.*?)\]", text, re.M | re.S)
        if mm:
            meta[key] = [x.strip() for x in mm.group(1).split(",") if x.strip()]
        else:
            # block list form: "includes:\n  - a.js\n  - b.js"
            mm = re.search(rf"^\s*{key}:\s*\n((?:\s+-\s*.+\n?)+)", text, re.M)
            if mm:
                meta[key] = [x.strip()[1:].strip() for x in mm.group(1).splitlines() if x.strip()]
    if re.search(r"^\s*negative:", text, re.M):
        phase = re.search(r"^\s*phase:\s*(\S+)", text, re.M)
        typ = re.search(r"^\s*type:\s*(\S+)", text, re.M)
        meta["negative"] = {"phase": phase.group(1) if phase else "",
                            "type": typ.group(1) if typ else ""}
    return meta


def modes_of(meta):
    flags = meta["flags"]
    if "raw" in flags or "noStrict" in flags:
        return ["sloppy"]
    if "onlyStrict" in flags:
        return ["strict"]
    return ["sloppy", "strict"]


def build_script(t262, rel, src, meta, mode):
    parts = []
    if mode == "strict" and "raw" not in meta["flags"]:
        parts.append('"use strict";\n')
    if "raw" not in meta["flags"]:
        parts.append(PRELUDE)
        harness = ["assert.js", "sta.js"]
        if "async" in meta["flags"]:
            harness.append("doneprintHandle.js")
        for inc in meta["includes"]:
            if inc not in harness:
                harness.append(inc)
        for h in harness:
            with open(os.path.join(t262, "harness", h), encoding="utf-8") as f:
                parts.append(f.read())
                parts.append("\n")
    parts.append(src)
    return "".join(parts)


def run_one(binary, t262, rel, mode, timeout):
    path = os.path.join(t262, "test", rel)
    with open(path, encoding="utf-8") as f:
        src = f.read()
    meta = parse_front(src)
    script = build_script(t262, rel, src, meta, mode)
    with tempfile.NamedTemporaryFile("w", suffix=".js", delete=False, encoding="utf-8") as tf:
        tf.write(script)
        tmp = tf.name
    try:
        p = subprocess.run([binary, "run", tmp], capture_output=True, text=True, timeout=timeout,
                           errors="replace")
        out, err, rc = p.stdout, p.stderr, p.returncode
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout} s"
    finally:
        os.unlink(tmp)
    neg = meta["negative"]
    if neg is not None:
        ok = rc != 0 and neg["type"] in (out + err)
        return ok, "" if ok else f"expected {neg['phase']} {neg['type']}, got rc {rc}"
    if "async" in meta["flags"]:
        if "Test262:AsyncTestComplete" in out and rc == 0:
            return True, ""
        line = next((l for l in out.splitlines() if "Test262:AsyncTestFailure" in l), "")
        return False, line.strip()[:300] if line else first_error(err, rc)
    if rc == 0:
        return True, ""
    return False, first_error(err, rc)


def first_error(err, rc):
    text = " ".join(err.split())
    return text[:300] if text else f"exit {rc}"


def list_tests(t262, filters):
    root = os.path.join(t262, "test")
    found = []
    for dirpath, _, files in os.walk(root):
        for name in files:
            if not name.endswith(".js") or "_FIXTURE" in name:
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            if filters and not any(f in rel for f in filters):
                continue
            found.append(rel)
    return sorted(found)


def group_of(rel):
    parts = rel.split(os.sep)
    return "/".join(parts[:2]) if len(parts) > 2 else parts[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin", "nano-dp"))
    ap.add_argument("--test262-dir", default=os.environ.get(
        "NANO_TEST262_DIR", os.path.join(os.path.dirname(ROOT), "shared", "test262")))
    ap.add_argument("--filter", action="append", default=[],
                    help="only tests whose path contains this (repeatable)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--update", action="store_true",
                    help="rewrite expectations.json from this run (reasons kept where the "
                         "failure is the same test)")
    ap.add_argument("--verbose", action="store_true")
    opts = ap.parse_args()

    t262 = opts.test262_dir
    if not os.path.isdir(os.path.join(t262, "test")):
        print(f"test262: no tests in {t262} (set --test262-dir or NANO_TEST262_DIR); skipped")
        return 77
    if not os.access(opts.bin, os.X_OK):
        print(f"test262: {opts.bin} is not an executable nano-dp (build first)", file=sys.stderr)
        return 2
    with open(EXPECTATIONS, encoding="utf-8") as f:
        expected = json.load(f)

    tests = list_tests(t262, opts.filter)
    runs = []
    for rel in tests:
        with open(os.path.join(t262, "test", rel), encoding="utf-8") as f:
            meta = parse_front(f.read())
        for mode in modes_of(meta):
            runs.append((rel, mode))
    print(f"test262: {len(tests)} tests, {len(runs)} runs, {opts.jobs} at a time, from {t262}",
          flush=True)
    t0 = time.time()
    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=opts.jobs) as pool:
        futures = {pool.submit(run_one, opts.bin, t262, rel, mode, opts.timeout): (rel, mode)
                   for rel, mode in runs}
        done = 0
        for fut in concurrent.futures.as_completed(futures):
            results[futures[fut]] = fut.result()
            done += 1
            if done % 500 == 0:
                print(f"test262: {done}/{len(runs)} runs, {time.time() - t0:.0f} s", flush=True)

    # Expectation keys: "path" when both modes fail alike, "path [mode]" otherwise.
    failing = {}
    for rel in tests:
        modes = [m for m in ("sloppy", "strict") if (rel, m) in results]
        bad = [m for m in modes if not results[(rel, m)][0]]
        if bad and len(bad) == len(modes):
            failing[rel] = results[(rel, bad[0])][1]
        else:
            for m in bad:
                failing[f"{rel} [{m}]"] = results[(rel, m)][1]
    in_scope = {k: v for k, v in expected.items()
                if not opts.filter or any(f in k for f in opts.filter)}
    unexpected_fail = sorted(k for k in failing if k not in in_scope)
    unexpected_pass = sorted(k for k in in_scope if k not in failing
                             and k.split(" [")[0] in tests)

    groups = {}
    for (rel, mode), (ok, _) in results.items():
        g = groups.setdefault(group_of(rel), [0, 0])
        g[1] += 1
        g[0] += 1 if ok else 0
    print("\n| built-in | passed / runs | % |\n|---|---:|---:|")
    for g in sorted(groups):
        p, n = groups[g]
        print(f"| {g} | {p} / {n} | {100.0 * p / n:.1f} |")
    passed = sum(1 for ok, _ in results.values() if ok)
    print(f"| **all** | {passed} / {len(results)} | {100.0 * passed / max(1, len(results)):.2f} |")
    tests_passed = sum(1 for rel in tests
                       if all(results[(rel, m)][0] for m in ("sloppy", "strict")
                              if (rel, m) in results))
    print(f"\ntest262: {tests_passed} / {len(tests)} tests pass in every mode "
          f"({100.0 * tests_passed / max(1, len(tests)):.2f}%), {time.time() - t0:.0f} s")

    if opts.update:
        merged = {k: v for k, v in expected.items() if k not in in_scope}
        for k, why in failing.items():
            merged[k] = expected.get(k, why)
        with open(EXPECTATIONS, "w", encoding="utf-8") as f:
            f.write(json.dumps(dict(sorted(merged.items())), indent=1, ensure_ascii=True) + "\n")
        print(f"test262: expectations.json rewritten ({len(failing)} failing in scope)")
        return 0
    for k in unexpected_fail:
        print(f"test262: UNEXPECTED FAIL {k}: {failing[k]}")
    for k in unexpected_pass:
        print(f"test262: UNEXPECTED PASS {k} (remove it from expectations.json)")
    if opts.verbose:
        for k in sorted(failing):
            print(f"test262: fail {k}: {failing[k]}")
    n_diff = len(unexpected_fail) + len(unexpected_pass)
    print(f"test262: {n_diff} differences from expectations")
    return 1 if n_diff else 0


if __name__ == "__main__":
    sys.exit(main())
