#!/usr/bin/env python3
"""bench/webapi.py: the cost of common Web API operations (apps/webapi.js), per runtime.

Each case runs in a fresh process pinned to one CPU (so one case's garbage does not weigh
on the next): nano-dp through `nano-dp test` (a test that runs it), deno with `deno run`,
bun and node on the same module. A case runs for --ms milliseconds after a warm-up as
long; the table gives ns per operation, one column per runtime, and nano-dp's ratio to
deno's. A runtime lacking an API shows "missing". Each round runs every case in every
runtime in turn (runtimes reversed every other round); medians are quoted.

  python3 bench/webapi.py                  # nano-dp, deno, bun, node; 3 rounds, 300 ms
  python3 bench/webapi.py --only nano-dp,deno --rounds 5 --ms 500 --cases "new URL;btoa"
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import hello as common  # noqa: E402  (peers, versions)

ROOT = os.path.dirname(HERE)
CASES = os.path.join(HERE, "apps", "webapi.js")


def case_names():
    """The case names, in file order, read from apps/webapi.js (each is a quoted key
    followed by ": () =>" at the start of a line of the cases object)."""
    import re
    with open(CASES) as f:
        return re.findall(r'^  "([^"]+)": \(\) =>', f.read(), re.M)


def runner_files(workdir, ms, case, index):
    """A module that runs one case for plain runtimes, and a nano-dp test file doing so."""
    only = repr([case]).replace("'", '"')
    plain = os.path.join(workdir, f"webapi-run-{index}.mjs")
    with open(plain, "w") as f:
        f.write(f'import {{ run }} from "{CASES}";\nconsole.log(await run({ms}, {only}));\n')
    nano = os.path.join(workdir, f"webapi-{index}.test.js")
    with open(nano, "w") as f:
        f.write(f'import {{ test }} from "nano:test";\nimport {{ run }} from "{CASES}";\n'
                f'test("webapi", async () => console.log(await run({ms}, {only})));\n')
    return plain, nano


def runtimes(opts):
    """(name, argv_for(plain, nano_test), version) for each runtime to run."""
    found = []
    nano = opts.nano_dp or os.path.join(ROOT, "build", "bin", "nano-dp")
    if os.path.exists(nano):
        found.append(("nano-dp", lambda plain, test: [nano, "test", "--timeout", "600s", test],
                      common.version_of([nano, "--version"])))
    bin_dir = common.install_peers(opts.peers_dir)
    for name, args in (("deno", ["run", "--quiet"]), ("bun", []), ("node", [])):
        path = os.path.join(bin_dir, name) if name != "node" else shutil.which("node")
        if path and os.path.exists(path):
            found.append((name, lambda plain, test, p=path, a=args: [p, *a, plain],
                          common.version_of([path, "--version"])))
        else:
            print(f"webapi: {name} not installed, left out", file=sys.stderr)
    if opts.only:
        keep = opts.only.split(",")
        found = [r for r in found if r[0] in keep]
    return found


def run_once(argv, timeout):
    out = subprocess.run(["taskset", "-c", "0", *argv], capture_output=True, text=True,
                         timeout=timeout)
    results = {}
    for line in out.stdout.splitlines():
        if "\t" not in line:
            continue
        value, name = line.split("\t", 1)
        results[name] = None if value == "missing" else float(value)
    if not results:
        raise RuntimeError(f"no results from {argv[0]}: {out.stderr.strip()[-300:]}")
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ms", type=int, default=300, help="time per case (and as much warm-up)")
    ap.add_argument("--cases", default="", help="case names separated by ; (default: all)")
    ap.add_argument("--only", default="", help="comma-separated runtimes (nano-dp,deno,bun,node)")
    ap.add_argument("--nano-dp", default="")
    ap.add_argument("--peers-dir", default=os.environ.get("NANO_BENCH_PEERS", "/tmp/nano-bench-peers"))
    opts = ap.parse_args()
    if opts.rounds < 1 or opts.ms < 10:
        ap.error("--rounds must be at least 1 and --ms at least 10")
    wanted = case_names()
    if opts.cases:
        unknown = [c for c in opts.cases.split(";") if c not in wanted]
        if unknown:
            ap.error(f"unknown case(s): {', '.join(unknown)}; cases: {', '.join(wanted)}")
        wanted = [c for c in wanted if c in opts.cases.split(";")]
    rts = runtimes(opts)
    if not rts:
        sys.exit("webapi: no runtime to run (build nano-dp, or install peers)")
    per = {name: [] for name, _, _ in rts}
    with tempfile.TemporaryDirectory(prefix="nano-webapi-") as workdir:
        files = [runner_files(workdir, opts.ms, c, i) for i, c in enumerate(wanted)]
        for rnd in range(1, opts.rounds + 1):
            results = {name: {} for name, _, _ in rts}
            for plain, test in files:
                for name, argv_for, _ in (rts if rnd % 2 else list(reversed(rts))):
                    try:
                        results[name].update(run_once(argv_for(plain, test), timeout=600))
                    except (RuntimeError, subprocess.TimeoutExpired) as e:
                        print(f"webapi: round {rnd} {name} failed: {e}", file=sys.stderr)
            for name in per:
                per[name].append(results[name])
            print(f"webapi: round {rnd}/{opts.rounds} done ({len(files)} cases)", file=sys.stderr)
    names = [n for n, _, _ in rts]

    def median(name, case):
        vals = [r.get(case) for r in per[name] if case in r]
        if not vals or any(v is None for v in vals):
            return None
        return statistics.median(vals)

    print("### Web API operations: ns per operation (medians)\n")
    print(f"{opts.rounds} rounds, {opts.ms} ms per case after as much warm-up, each case in a "
          f"fresh process pinned to CPU 0. Versions: " + "; ".join(f"{n} {v or '?'}" for n, _, v in rts) + ".\n")
    has_deno = "deno" in names and "nano-dp" in names
    print("| operation | " + " | ".join(names) + (" | nano-dp / deno |" if has_deno else " |"))
    print("|---|" + "---:|" * len(names) + ("---:|" if has_deno else ""))
    for case in wanted:
        cells = []
        for n in names:
            m = median(n, case)
            cells.append("missing" if m is None else f"{m:,.0f}")
        ratio = ""
        if has_deno:
            a, b = median("nano-dp", case), median("deno", case)
            ratio = f" {a / b:.2f} |" if a and b else " - |"
        print(f"| {case} | " + " | ".join(cells) + " |" + ratio)


if __name__ == "__main__":
    main()
