#!/usr/bin/env python3
"""tests/wpt/run.py: runs web-platform-tests inside nano-dp and compares with expectations.

Each `*.any.js` whose META globals include a worker scope runs in a fresh
`nano-dp run` process as the scripts a worker would load: the generated prelude, glue.js,
the real resources/testharness.js, report.js, the `META: script=` files, the test, done.js.
`META: timeout=long` gives it 60 s instead of 10 s; `META: variant=` runs it once per variant.
The WPT files are read in place (default ../shared/wpt beside the repo, or --wpt-dir /
NANO_WPT_DIR), never copied into the repository.

Every subtest's result is recorded. expectations.json lists each subtest we knowingly fail,
with a one-line reason:

    { "url/url-constructor.any.js": { "Parsing: <...> against <...>": "why" },
      "some/test.any.js": { "(harness)": "why the file as a whole fails" } }

The run prints a per-directory table (passed/total subtests) and exits 1 when any result
differs from the expectations, including an unexpected pass, so the file stays true.
Exit 77 (ctest's "skipped") when the WPT directory does not exist.
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

# The directories of the WinterTC API issue, streams/ and WebCryptoAPI/ (issue 19).
DEFAULT_DIRS = [
    "url", "urlpattern", "encoding", "dom/events", "dom/abort", "FileAPI",
    "fetch/api/headers", "fetch/api/request", "fetch/api/response", "fetch/api/body",
    "xhr/formdata", "html/webappapis", "webmessaging", "hr-time", "user-timing", "console",
    "wasm/jsapi", "streams", "WebCryptoAPI",
]
WORKER_GLOBALS = {"worker", "dedicatedworker", "sharedworker", "serviceworker",
                  "dedicatedworker-module", "sharedworker-module", "serviceworker-module"}
STATUS = {0: "PASS", 1: "FAIL", 2: "TIMEOUT", 3: "NOTRUN", 4: "PRECONDITION_FAILED"}
HARNESS = {0: "OK", 1: "ERROR", 2: "TIMEOUT", 3: "PRECONDITION_FAILED"}
HARNESS_KEY = "(harness)"


def parse_meta(path):
    meta = {"global": None, "script": [], "timeout": "normal", "variant": []}
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"//\s*META:\s*(\w+)=(.*)$", line.strip())
            if not m:
                if line.strip() and not line.startswith("//"):
                    break
                continue
            key, value = m.group(1), m.group(2).strip()
            if key == "global":
                meta["global"] = value
            elif key in ("script", "variant"):
                meta[key].append(value)
            elif key == "timeout":
                meta["timeout"] = value
    return meta


def runs_in_workers(meta):
    if meta["global"] is None:  # WPT's default for .any.js: window and dedicatedworker
        return True
    return any(g.strip() in WORKER_GLOBALS for g in meta["global"].split(","))


def discover(wpt_dir, dirs):
    tests = []
    for d in dirs:
        base = os.path.join(wpt_dir, d)
        if os.path.isfile(base) and base.endswith(".any.js"):  # one test file
            walk = [(os.path.dirname(base), [], [os.path.basename(base)])]
        elif os.path.isdir(base):
            walk = os.walk(base)
        else:
            print(f"wpt: no directory {d} in {wpt_dir}", file=sys.stderr)
            continue
        for root, subdirs, files in walk:
            subdirs.sort()
            for name in sorted(files):
                if not name.endswith(".any.js"):
                    continue
                path = os.path.join(root, name)
                meta = parse_meta(path)
                if not runs_in_workers(meta):
                    continue
                rel = os.path.relpath(path, wpt_dir)
                for variant in meta["variant"] or [""]:
                    tests.append((rel, variant, meta))
    return tests


def resources_named(wpt_dir, rel, sources):
    """Static files a test fetches by name (JSON data): {'/url/resources/x.json': text}."""
    files = {}
    test_dir = os.path.dirname(rel)
    for src in sources:
        for name in set(re.findall(r"""["']([^"'\s]+\.json)["']""", src)):
            url_path = name if name.startswith("/") else "/" + os.path.normpath(os.path.join(test_dir, name))
            disk = os.path.join(wpt_dir, url_path.lstrip("/"))
            if os.path.isfile(disk):
                with open(disk, encoding="utf-8") as f:
                    files[url_path] = f.read()
        # idlharness: idl_test(["spec", ...], ["dep", ...], ...) fetches /interfaces/NAME.idl.
        for arrays in re.findall(r"idl_test\(\s*(\[[^\]]*\])\s*,\s*(\[[^\]]*\])", src):
            for name in re.findall(r"""["']([\w.-]+)["']""", " ".join(arrays)):
                disk = os.path.join(wpt_dir, "interfaces", name + ".idl")
                if os.path.isfile(disk):
                    with open(disk, encoding="utf-8") as f:
                        files[f"/interfaces/{name}.idl"] = f.read()
    return files


def script_path(wpt_dir, rel, script):
    if script.startswith("/"):
        return os.path.join(wpt_dir, script.lstrip("/"))
    return os.path.join(wpt_dir, os.path.dirname(rel), script)


def run_one(binary, wpt_dir, test, tmp):
    rel, variant, meta = test
    key = rel + variant
    scripts = [script_path(wpt_dir, rel, s) for s in meta["script"]]
    missing = [s for s in scripts if not os.path.isfile(s)]
    if missing:
        return key, {"harness": "ERROR", "message": f"missing META script {missing[0]}", "subtests": {}}
    sources = []
    for p in scripts + [os.path.join(wpt_dir, rel)]:
        with open(p, encoding="utf-8") as f:
            sources.append(f.read())
    url_dir = "/" + os.path.dirname(rel) + "/"
    prelude = {
        "url": f"http://web-platform.test:8000/{rel[:-3]}.worker.html{variant}",
        "dir": url_dir,
        "files": resources_named(wpt_dir, rel, sources),
    }
    fd, prelude_path = tempfile.mkstemp(suffix=".js", dir=tmp)
    with os.fdopen(fd, "w") as f:
        f.write("var __wpt = " + json.dumps(prelude) + ";\n")
    timeout = 60 if meta["timeout"] == "long" else 10
    # A sanitizer build runs JS several times slower (PBKDF2's many-iteration variants take
    # most of a minute under ASan while other tests share the cores): the same budget,
    # scaled. What is checked is each subtest's result, not speed.
    if "ASAN_OPTIONS" in os.environ:
        timeout *= 3
    argv = [binary, "run", "--timeout", f"{timeout}s", "--location", prelude["url"], prelude_path, os.path.join(HERE, "glue.js"),
            os.path.join(wpt_dir, "resources", "testharness.js"), os.path.join(HERE, "report.js"),
            *scripts, os.path.join(wpt_dir, rel), os.path.join(HERE, "done.js")]
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout + 10, errors="replace")
        out, err, code = p.stdout, p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err, code = "killed: the run did not end", -9
    finally:
        os.unlink(prelude_path)
    subtests, harness, message = {}, None, None
    for line in out.split("\n"):
        if not line.startswith("@@WPT@@ "):
            continue
        msg = json.loads(line[8:])
        if msg["type"] == "result":
            subtests[msg["name"]] = {"status": STATUS.get(msg["status"], "FAIL"), "message": msg["message"]}
        elif msg["type"] == "complete":
            harness = HARNESS.get(msg["status"], "ERROR")
            message = msg["message"]
    if harness is None:
        harness = "TIMEOUT" if "timed out" in err else "ERROR"
        tail = [l for l in err.strip().splitlines() if l.strip()][-3:]
        message = f"no completion (exit {code}): " + " | ".join(tail)
    return key, {"harness": harness, "message": message, "subtests": subtests}


def failures_of(result):
    """{subtest or (harness): message} for everything that did not pass."""
    fails = {}
    if result["harness"] != "OK":
        fails[HARNESS_KEY] = f"{result['harness']}: {result['message']}"
    for name, r in result["subtests"].items():
        if r["status"] != "PASS":
            fails[name] = f"{r['status']}: {r['message']}"
    return fails


def one_line(text, limit=200):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def main():
    ap = argparse.ArgumentParser(description="Run WPT inside nano-dp and compare with expectations.")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/bin/nano-dp"), help="nano-dp binary")
    ap.add_argument("--wpt-dir", default=os.environ.get("NANO_WPT_DIR", os.path.join(ROOT, "..", "shared", "wpt")))
    ap.add_argument("--dirs", default=",".join(DEFAULT_DIRS),
                    help="comma-separated WPT directories or files")
    ap.add_argument("--filter", default="", help="only test files whose path contains this")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--update", action="store_true",
                    help="rewrite expectations.json for the directories run: new failures get "
                         "their failure message as reason (edit it into a real reason)")
    ap.add_argument("--verbose", action="store_true", help="print every failing subtest")
    ap.add_argument("--json", help="write every result to this file")
    opts = ap.parse_args()

    wpt_dir = os.path.abspath(opts.wpt_dir)
    if not os.path.isfile(os.path.join(wpt_dir, "resources", "testharness.js")):
        print(f"wpt: skipped: no WPT checkout at {wpt_dir} (set NANO_WPT_DIR)")
        sys.exit(77)
    dirs = [d.strip("/") for d in opts.dirs.split(",") if d.strip()]
    tests = [t for t in discover(wpt_dir, dirs) if opts.filter in t[0]]
    # Expectations of a directory the snapshot lacks are kept as they are, neither checked
    # nor dropped, until the directory arrives.
    present = [d for d in dirs if os.path.exists(os.path.join(wpt_dir, d))]
    print(f"wpt: {len(tests)} test files from {', '.join(dirs)} in {wpt_dir}", flush=True)

    results = {}
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="nano-wpt-") as tmp, \
            concurrent.futures.ThreadPoolExecutor(max_workers=opts.jobs) as pool:
        futures = [pool.submit(run_one, opts.bin, wpt_dir, t, tmp) for t in tests]
        for i, fut in enumerate(concurrent.futures.as_completed(futures), 1):
            key, res = fut.result()
            results[key] = res
            if i % 50 == 0:
                print(f"wpt: {i}/{len(tests)} files done", flush=True)

    try:
        with open(EXPECTATIONS, encoding="utf-8") as f:
            expected = json.load(f)
    except FileNotFoundError:
        expected = {}

    # Per-directory table.
    table = {}
    for key, res in results.items():
        d = next((x for x in sorted(dirs, key=len, reverse=True) if key.startswith(x + "/")), key)
        row = table.setdefault(d, [0, 0, 0])
        row[2] += 1
        for r in res["subtests"].values():
            row[1] += 1
            row[0] += r["status"] == "PASS"
    print(f"\n| directory | passed / subtests | % | files |\n|---|---:|---:|---:|")
    tp = tt = 0
    for d in sorted(table):
        p, t, files = table[d]
        tp += p
        tt += t
        print(f"| {d} | {p} / {t} | {100.0 * p / t if t else 0:.1f} | {files} |")
    print(f"| **all** | {tp} / {tt} | {100.0 * tp / tt if tt else 0:.2f} | {len(results)} |")

    # Compare with the expectations: same set of failures, file by file.
    differences = []
    for key in sorted(results):
        fails = failures_of(results[key])
        want = expected.get(key, {})
        for name in sorted(set(fails) - set(want)):
            differences.append(f"UNEXPECTED FAIL {key} :: {name} :: {one_line(fails[name])}")
        for name in sorted(set(want) - set(fails)):
            if name == HARNESS_KEY or name in results[key]["subtests"] or results[key]["harness"] == "OK":
                differences.append(f"UNEXPECTED PASS {key} :: {name} (remove it from expectations.json)")
        if opts.verbose:
            for name in sorted(set(fails) & set(want)):
                print(f"expected fail {key} :: {name} :: {want[name]}")
    run_keys = set(results)
    for key in sorted(k for k in expected if k not in run_keys and any(k == d or k.startswith(d + "/") for d in present)
                      and not opts.filter):
        differences.append(f"STALE expectations for {key}: the test no longer runs")

    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(results, f, indent=1, sort_keys=True)
    if opts.update:
        for key in run_keys:
            fails = failures_of(results[key])
            old = expected.get(key, {})
            new = {name: old.get(name, one_line(msg)) for name, msg in fails.items()}
            if new:
                expected[key] = dict(sorted(new.items()))
            else:
                expected.pop(key, None)
        if not opts.filter:
            for key in [k for k in expected if k not in run_keys and any(k == d or k.startswith(d + "/") for d in present)]:
                del expected[key]
        with open(EXPECTATIONS, "w", encoding="utf-8") as f:
            # ASCII escapes: subtest names may hold lone surrogates, which UTF-8 cannot carry.
            json.dump(dict(sorted(expected.items())), f, indent=1, ensure_ascii=True)
            f.write("\n")
        print(f"wpt: expectations.json updated ({sum(len(v) for v in expected.values())} entries)")
        differences = []

    print(f"\nwpt: {len(results)} files in {time.monotonic() - t0:.0f}s; "
          f"{len(differences)} differences from expectations")
    for line in differences[:200]:
        print(line)
    if len(differences) > 200:
        print(f"... and {len(differences) - 200} more")
    sys.exit(1 if differences else 0)


if __name__ == "__main__":
    main()
