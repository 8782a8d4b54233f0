#!/usr/bin/env python3
"""bench/procstart.py: what `nano-dp --version` spends its time on, and what link flags,
environment and library choices on our side change about it. Measures; changes nothing in
the tree.

    make && python3 bench/procstart.py              # 30 runs per variant, interleaved
    python3 bench/procstart.py --runs 50 --bin build/bin/nano-dp

Variants, each timed as `BINARY --version` (or the program itself), spawned with
posix_spawn, pinned to --cpu; wall time and the child's user+system CPU time (wait4):

- build/bin/nano-dp as built, and relinked unchanged from the build tree's objects
  (build/dataplane/CMakeFiles/nano-dp.dir/link.txt): the relink noise;
- relinked with one more flag each: -Wl,-z,now, -Wl,-z,lazy, -Wl,-O1, -Wl,--hash-style=gnu,
  -Wl,--as-needed, -Wl,-Bsymbolic-functions, and with libnode first in DT_NEEDED (so that
  the lookups of libnode's own symbols search one object before it, not five);
- environment: LD_BIND_NOT=1, LD_BIND_NOW=1;
- stub libraries (LD_LIBRARY_PATH): a libcurl.so.4 and a libnng.so.1 that only define the
  functions nano-dp imports, so that libcurl's ~30 dependencies and nng's mbedTLS are not
  loaded: what loading them on first use (dlopen) would save. They do nothing: --version only;
- the floor: a program that only links Debian's libnode and prints V8's version, and
  /bin/true.

Then, for the record: ld.so's own statistics (LD_DEBUG=statistics) and the symbol
relocations of each loaded library (readelf), with how many of libnode's bind to symbols
libnode defines itself. Needs cc, c++, readelf and nm; Python standard library only.
"""
import argparse
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

V8MIN = """// The floor: a program that only links Debian's libnode and prints V8's version.
#include <cstdio>
#include <v8.h>
int main() { std::printf("%s\\n", v8::V8::GetVersion()); return 0; }
"""


def log(msg):
    print(f"procstart: {msg}", file=sys.stderr, flush=True)


def link_command(build):
    with open(os.path.join(build, "dataplane/CMakeFiles/nano-dp.dir/link.txt")) as f:
        return shlex.split(f.read().strip())


def relink(build, out, extra=(), libnode_first=False):
    """nano-dp relinked from the build tree's objects into out, with extra flags."""
    argv = link_command(build)
    i = argv.index("-o")
    argv[i + 1] = out
    libnode = next(a for a in argv if re.search(r"/libnode\.so(\.\d+)?$", a))
    head = list(extra)
    if libnode_first:
        argv = [a for a in argv if a != libnode]
        head += ["-Wl,--no-as-needed", libnode, "-Wl,--as-needed"]
    argv[i + 2:i + 2] = head
    subprocess.run(argv, cwd=os.path.join(build, "dataplane"), check=True)
    return libnode


def stub_library(workdir, binary, soname, prefix):
    """A shared library named soname that defines the functions binary imports whose names
    start with prefix (with their symbol version, if any), each returning 0."""
    out = subprocess.run(["nm", "-D", "--undefined-only", binary], capture_output=True,
                         text=True, check=True).stdout
    syms, versions = [], set()
    for line in out.split():
        name, _, ver = line.partition("@")
        if name.startswith(prefix):
            syms.append(name)
            if ver:
                versions.add(ver.lstrip("@"))
    d = os.path.join(workdir, "stub-" + soname.split(".")[0])
    os.makedirs(d, exist_ok=True)
    src = os.path.join(d, "stub.c")
    with open(src, "w") as f:
        f.write("/* Stub for bench/procstart.py: --version only. */\n")
        f.write("".join(f"long {s}(void) {{ return 0; }}\n" for s in syms))
    argv = ["cc", "-shared", "-fPIC", "-O1", "-o", os.path.join(d, soname), src,
            f"-Wl,-soname,{soname}"]
    if versions:
        vmap = os.path.join(d, "stub.map")
        with open(vmap, "w") as f:
            f.write(f"{sorted(versions)[0]} {{ global: {prefix}*; local: *; }};\n")
        argv.append(f"-Wl,--version-script={vmap}")
    subprocess.run(argv, check=True)
    return d


def loaded_libraries(argv, env):
    out = subprocess.run(argv, env=dict(env, LD_TRACE_LOADED_OBJECTS="1"), capture_output=True,
                         text=True).stdout
    return [ln.split()[0] for ln in out.splitlines() if ln.strip() and "vdso" not in ln]


def time_variants(variants, runs, cpu):
    """Interleaved runs (two unmeasured first). Returns {label: ([wall ms], [cpu ms])}."""
    res = {v[0]: ([], []) for v in variants}
    devnull = os.open(os.devnull, os.O_WRONLY)
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        for i in range(runs + 2):
            for label, argv, env in variants:
                t0 = time.perf_counter()
                pid = os.posix_spawn(argv[0], argv, env, file_actions=[
                    (os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)])
                _, status, ru = os.wait4(pid, 0)
                wall = (time.perf_counter() - t0) * 1000
                if os.waitstatus_to_exitcode(status) != 0:
                    raise RuntimeError(f"{label}: exit status {status}")
                if i >= 2:
                    res[label][0].append(wall)
                    res[label][1].append((ru.ru_utime + ru.ru_stime) * 1000)
    finally:
        os.sched_setaffinity(0, saved)
        os.close(devnull)
    return res


def symbol_relocations(path):
    """(symbol relocations, relative relocations, [(type, symbol)]) of an ELF file."""
    out = subprocess.run(["readelf", "-rW", path], capture_output=True, text=True).stdout
    sym, rel, pairs = 0, 0, []
    for ln in out.splitlines():
        f = ln.split()
        if len(f) < 3 or not f[2].startswith("R_X86_64_"):
            continue
        if f[2] in ("R_X86_64_RELATIVE", "R_X86_64_IRELATIVE"):
            rel += 1
        else:
            sym += 1
            if len(f) >= 5:
                pairs.append((f[2], f[4].split("@")[0]))
    return sym, rel, pairs


def defined_symbols(path):
    out = subprocess.run(["nm", "-D", "--defined-only", path], capture_output=True,
                         text=True).stdout
    return {ln.split()[-1].split("@")[0] for ln in out.splitlines() if ln.strip()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/bin/nano-dp"))
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--cpu", type=int, default=0, help="CPU to run the programs on (default 0)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    opts = ap.parse_args()
    binary = os.path.abspath(opts.bin)
    build = os.path.dirname(os.path.dirname(binary))
    if not os.access(binary, os.X_OK):
        sys.exit(f"procstart: {binary} is not built (make)")
    workdir = tempfile.mkdtemp(prefix="nano-procstart-")
    try:
        run(opts, binary, build, workdir)
    finally:
        if opts.keep:
            log(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run(opts, binary, build, workdir):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LD_")}
    bins = os.path.join(workdir, "bin")
    os.makedirs(bins)
    log("relinking nano-dp variants")
    relinked = [
        ("relinked unchanged", "base", [], False),
        ("-Wl,-z,now", "znow", ["-Wl,-z,now"], False),
        ("-Wl,-z,lazy", "zlazy", ["-Wl,-z,lazy"], False),
        ("-Wl,-O1", "O1", ["-Wl,-O1"], False),
        ("-Wl,--hash-style=gnu", "hashgnu", ["-Wl,--hash-style=gnu"], False),
        ("-Wl,--as-needed", "asneeded", ["-Wl,--as-needed"], False),
        ("-Wl,-Bsymbolic-functions", "bsymf", ["-Wl,-Bsymbolic-functions"], False),
        ("libnode first in DT_NEEDED", "nodefirst", [], True),
    ]
    libnode = None
    for _, name, flags, first in relinked:
        libnode = relink(build, os.path.join(bins, name), flags, first)
    curl = stub_library(workdir, binary, "libcurl.so.4", "curl_")
    both = stub_library(workdir, binary, "libnng.so.1", "nng_")
    shutil.copy(os.path.join(curl, "libcurl.so.4"), both)
    v8min = os.path.join(bins, "v8min")
    src = os.path.join(workdir, "v8min.cc")
    with open(src, "w") as f:
        f.write(V8MIN)
    include = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(libnode))),
                           "include", "node")
    subprocess.run(["c++", "-O2", f"-I{include}", src, "-o", v8min,
                    f"-Wl,-rpath,{os.path.dirname(libnode)}", libnode], check=True)
    base = os.path.join(bins, "base")
    variants = [("build/bin/nano-dp as built", [binary, "--version"], env)]
    variants += [(label, [os.path.join(bins, name), "--version"], env)
                 for label, name, _, _ in relinked]
    variants += [
        ("LD_BIND_NOT=1", [base, "--version"], dict(env, LD_BIND_NOT="1")),
        ("LD_BIND_NOW=1", [base, "--version"], dict(env, LD_BIND_NOW="1")),
        ("stub libcurl (LD_LIBRARY_PATH)", [base, "--version"], dict(env, LD_LIBRARY_PATH=curl)),
        ("stub libcurl + libnng", [base, "--version"], dict(env, LD_LIBRARY_PATH=both)),
        ("stubs + libnode first", [os.path.join(bins, "nodefirst"), "--version"],
         dict(env, LD_LIBRARY_PATH=both)),
        ("floor: a program linking only libnode", [v8min], env),
        ("/bin/true", ["/bin/true"], env),
    ]
    nlibs = {label: len(loaded_libraries(argv, e)) for label, argv, e in variants}
    log(f"timing {len(variants)} variants x {opts.runs} runs, interleaved, on CPU {opts.cpu}")
    res = time_variants(variants, opts.runs, opts.cpu)
    med = statistics.median
    ref = med(res[variants[0][0]][1])
    print(f"### `nano-dp --version`: medians of {opts.runs} interleaved runs on CPU {opts.cpu}\n")
    print(f"{binary}; {time.strftime('%Y-%m-%d %H:%M')}. CPU = the child's user + system "
          f"time (wait4); Δ = CPU median minus the as-built one.\n")
    print("| variant | objects loaded | wall ms (median; q1-q3) | CPU ms | Δ CPU ms |")
    print("|---|---:|---:|---:|---:|")
    for label, _, _ in variants:
        w, c = res[label]
        q = statistics.quantiles(w, n=4)
        print(f"| {label} | {nlibs[label]} | {med(w):.1f} ({q[0]:.1f}-{q[2]:.1f}) | "
              f"{med(c):.1f} | {med(c) - ref:+.1f} |")
    print()
    stats = subprocess.run([binary, "--version"], env=dict(env, LD_DEBUG="statistics"),
                           capture_output=True, text=True).stderr
    keep = [re.sub(r"^\s*\d+:\s*", "", ln) for ln in stats.splitlines()
            if re.search(r"relocation|startup time|load objects", ln)]
    print("ld.so's own account (LD_DEBUG=statistics; cycles as it counts them):\n")
    print("```\n" + "\n".join(keep) + "\n```\n")
    print("Symbol and relative relocations of every object nano-dp loads (readelf -r), "
          "largest first:\n")
    print("| object | symbol relocations | relative relocations |")
    print("|---|---:|---:|")
    rows = []
    for path in [binary] + [ln.split("=>")[1].split()[0] for ln in subprocess.run(
            ["ldd", binary], capture_output=True, text=True).stdout.splitlines() if "=>" in ln]:
        s, r, _ = symbol_relocations(path)
        rows.append((s, r, os.path.basename(path)))
    rows.sort(reverse=True)
    for s, r, name in rows[:8]:
        print(f"| {name} | {s:,} | {r:,} |")
    rest = rows[8:]
    print(f"| the other {len(rest)} | {sum(s for s, _, _ in rest):,} | "
          f"{sum(r for _, r, _ in rest):,} |")
    print()
    _, _, pairs = symbol_relocations(libnode)
    own = defined_symbols(libnode)
    self_bound = sum(1 for _, s in pairs if s in own)
    print(f"Of libnode's {len(pairs):,} symbol relocations, {self_bound:,} "
          f"({self_bound / max(1, len(pairs)):.0%}) name a symbol libnode defines itself: "
          f"exported with default visibility and linked without -Bsymbolic, so ld.so looks "
          f"each up through the global scope (nano-dp first), and with BIND_NOW "
          f"(DT_FLAGS of libnode: {'BIND_NOW' if 'BIND_NOW' in subprocess.run(['readelf', '-d', libnode], capture_output=True, text=True).stdout else 'lazy'}) "
          f"all of them at start.\n")


if __name__ == "__main__":
    main()
