#!/usr/bin/env python3
"""tests/package/test_package.py: the Debian packages `make package` builds (ctest `package`,
label package; docs/building.md#packages, docs/install.md).

It builds them with cpack into a scratch directory (build/packages is left alone), then:
- reads them with dpkg-deb: control fields, conffiles, maintainer scripts, every file with
  its mode and owner, and no RPATH in the binaries;
- checks that Depends names every library the binaries need: dpkg-shlibdeps on the packaged
  binaries, versions included, plus libnode108 and libcurl4 (loaded with dlopen);
- installs them with `dpkg --root` into a scratch root whose package database holds the
  host's own entries for the packages they depend on, so that dpkg checks the Depends for
  real; the maintainer scripts run (--force-script-chrootless) and, through DPKG_ROOT, create
  the user nano and the directories in that root, never on this machine;
- verifies both units with `systemd-analyze verify --root` on that root;
- reads the man pages (every option of --help is in them) and runs the bash completion
  (every command and flag of nanoctl's help texts completes, and app names from a nanocp);
- starts the installed nanocp and nano-dp as the root's user nano (setpriv, no new
  privileges) with the packaged flags from /etc/default (their paths taken inside the
  scratch root, ports made ephemeral), with a NOTIFY_SOCKET, and stops them with SIGTERM;
- purges the packages from the root.

What it must force on a machine is printed, with the reason: today only libnode108 when it is
not dpkg-installed (scripts/bootstrap unpacks it into .deps/ where apt refuses it), which then
also needs LD_LIBRARY_PATH for starting nano-dp.

REQUIRE_SD_NOTIFY below: the units are Type=notify with a WatchdogSec, so a daemon built
without sd_notify support (libsystemd) would never start under them, and the test fails.
Set to False, it would assert READY=1, RELOADING=1, WATCHDOG=1 and STOPPING=1 only for a
binary that links libsystemd, and say so for one that does not.

Usage: test_package.py --build-dir BUILD --cpack CPACK [--v8-lib-dir DIR] [--keep]
Exit 0 ok, 1 a check failed, 77 skipped (no dpkg-deb; or, after the checks that could run,
no systemd-analyze / systemd-sysusers, or not root).
"""
import argparse
import gzip
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REQUIRE_SD_NOTIFY = True  # the daemons send READY=1 etc. (shared/sd.c): the units need it

TIMEOUT = 15.0
MAX_CPU_MS = 60000  # the largest cpu_ms an app may have (shared/config.c, limits)
PACKAGES = ("nano-common", "nano-dp", "nanocp", "nanoctl")
BINARIES = {"nano-dp": "nano-dp", "nanocp": "nanocp", "nanoctl": "nanoctl"}

# Every file of each package (directories aside), with its mode; all are root:root in the
# .deb (the maintainer scripts give nano its directories, in DPKG_ROOT when set).
FILES = {
    "nano-common": {
        "/usr/lib/sysusers.d/nano.conf": 0o644,
        "/usr/lib/tmpfiles.d/nano-common.conf": 0o644,
        "/usr/share/doc/nano-common/install.md": 0o644,
    },
    "nano-dp": {
        "/usr/bin/nano-dp": 0o755,
        "/lib/systemd/system/nano-dp.service": 0o644,
        "/etc/default/nano-dp": 0o644,
        "/etc/nano/nano.json": 0o644,
        "/etc/nano/apps/hello.js": 0o644,
        "/usr/lib/tmpfiles.d/nano-dp.conf": 0o644,
        "/usr/share/man/man1/nano-dp.1.gz": 0o644,
    },
    "nanocp": {
        "/usr/bin/nanocp": 0o755,
        "/lib/systemd/system/nanocp.service": 0o644,
        "/etc/default/nanocp": 0o644,
        "/usr/lib/tmpfiles.d/nanocp.conf": 0o644,
        "/usr/share/man/man1/nanocp.1.gz": 0o644,
    },
    "nanoctl": {
        "/usr/bin/nanoctl": 0o755,
        "/usr/share/bash-completion/completions/nanoctl": 0o644,
        "/usr/share/man/man1/nanoctl.1.gz": 0o644,
    },
}
# Directories whose mode matters, in the .deb (root:root there).
DIRS = {"nano-common": {"/etc/nano/": 0o750}, "nano-dp": {"/etc/nano/": 0o750},
        "nanocp": {"/var/lib/nanocp/": 0o700}}
CONFFILES = {
    "nano-common": set(), "nanoctl": set(), "nanocp": {"/etc/default/nanocp"},
    "nano-dp": {"/etc/default/nano-dp", "/etc/nano/nano.json", "/etc/nano/apps/hello.js"},
}
SCRIPTS = {"nano-common": {"postinst"}, "nanoctl": set(),
           "nano-dp": {"postinst", "prerm", "postrm"}, "nanocp": {"postinst", "prerm", "postrm"}}
# After installing into the root: path -> (mode, owner, group).
INSTALLED = {
    "/etc/nano": (0o750, "root", "nano"),
    "/var/lib/nanocp": (0o700, "nano", "nano"),
    "/var/cache/nano-dp": (0o700, "nano", "nano"),
}


class Skip(Exception):
    pass


class Ctx:
    pass


_checks = []
forced = []  # what this run had to force, with why: printed at the end


def check(fn):
    _checks.append(fn)
    return fn


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def eq(actual, expected, what):
    if actual != expected:
        raise AssertionError(f"{what}: got {actual!r}, expected {expected!r}")


def run(argv, ok=True, **kw):
    kw.setdefault("timeout", 120)
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, **kw)
    if ok and p.returncode != 0:
        raise AssertionError(f"`{' '.join(argv)}` exited {p.returncode}:\n{p.stdout}{p.stderr}")
    return p


def note_forced(what, why):
    forced.append((what, why))
    print(f"  forced: {what}: {why}")


# --- the packages ---------------------------------------------------------------------------

@check
def packages_build_with_cpack(c):
    t0 = time.monotonic()
    run([c.cpack, "-G", "DEB", "--config", os.path.join(c.build, "CPackConfig.cmake"),
         "-B", os.path.join(c.tmp, "cpack")], cwd=c.tmp, timeout=300)
    out = os.path.join(c.tmp, "packages")
    c.debs = {}
    for name in sorted(os.listdir(out)):
        m = re.fullmatch(r"([a-z-]+)_([^_]+)_(amd64|all|[a-z0-9]+)\.deb", name)
        expect(m, f"unexpected file {name} in cpack's output")
        c.debs[m.group(1)] = os.path.join(out, name)
        c.version = m.group(2)
    eq(sorted(c.debs), sorted(PACKAGES), "packages")
    for pkg in PACKAGES:
        f = run(["dpkg-deb", "--field", c.debs[pkg], "Depends", "Recommends"]).stdout.strip()
        print(f"  {os.path.basename(c.debs[pkg])}: {os.path.getsize(c.debs[pkg])} bytes; "
              f"{f.replace(chr(10), '; ') or 'no Depends'}")
    print(f"  cpack took {time.monotonic() - t0:.1f}s")


def control_of(c, pkg):
    d = os.path.join(c.tmp, "control", pkg)
    if not os.path.isdir(d):
        os.makedirs(os.path.dirname(d), exist_ok=True)
        run(["dpkg-deb", "--control", c.debs[pkg], d])
    return d


@check
def control_fields_scripts_and_conffiles(c):
    for pkg in PACKAGES:
        f = dict(re.findall(r"^([A-Za-z-]+): (.*)$",
                            run(["dpkg-deb", "--field", c.debs[pkg]]).stdout, re.M))
        eq(f["Package"], pkg, "Package")
        eq(f["Version"], c.version, f"{pkg} Version")
        eq(f["Architecture"], "all" if pkg == "nano-common" else
           run(["dpkg", "--print-architecture"]).stdout.strip(), f"{pkg} Architecture")
        expect(f.get("Maintainer"), f"{pkg}: no Maintainer")
        if pkg in ("nano-dp", "nanocp"):
            expect(f"nano-common (= {c.version})" in f["Depends"],
                   f"{pkg} must depend on nano-common (= {c.version}): {f['Depends']}")
        d = control_of(c, pkg)
        conffiles = set()
        if os.path.exists(os.path.join(d, "conffiles")):
            conffiles = set(open(os.path.join(d, "conffiles")).read().split())
        eq(conffiles, CONFFILES[pkg], f"{pkg} conffiles")
        scripts = {s for s in ("preinst", "postinst", "prerm", "postrm")
                   if os.path.exists(os.path.join(d, s))}
        eq(scripts, SCRIPTS[pkg], f"{pkg} maintainer scripts")
        for s in scripts:
            path = os.path.join(d, s)
            eq(stat.S_IMODE(os.stat(path).st_mode), 0o755, f"{pkg} {s} mode")
            run(["sh", "-n", path])
            expect("DPKG_ROOT" in open(path).read() or s == "prerm",
                   f"{pkg} {s} ignores DPKG_ROOT: an install into another root would change "
                   "this machine")
    rec = run(["dpkg-deb", "--field", c.debs["nano-dp"], "Recommends"]).stdout
    expect("libcurl4" in rec, f"nano-dp must name libcurl4 (loaded with dlopen): {rec}")
    rec = run(["dpkg-deb", "--field", c.debs["nanocp"], "Recommends"]).stdout
    expect("nano-dp" in rec, f"nanocp must recommend nano-dp, its load checker: {rec}")


@check
def contents_modes_and_owners(c):
    for pkg in PACKAGES:
        files, dirs = {}, {}
        for line in run(["dpkg-deb", "--contents", c.debs[pkg]]).stdout.splitlines():
            perms, owner, _size, _date, _time, path = line.split(None, 5)
            path = path[1:]  # ./etc/nano/ -> /etc/nano/
            eq(owner, "root/root", f"{pkg} {path} owner")
            mode = 0
            for i, ch in enumerate(perms[1:10]):
                mode |= (ch != "-") << (8 - i)
            (dirs if perms[0] == "d" else files)[path] = mode
            expect(perms[0] in "d-", f"{pkg}: {path} is neither a file nor a directory")
        eq(files, FILES[pkg], f"{pkg} files and modes")
        for path, mode in DIRS.get(pkg, {}).items():
            eq(oct(dirs.get(path, -1)), oct(mode), f"{pkg} {path} mode")


def unpacked(c, pkg):
    d = os.path.join(c.tmp, "x", pkg)
    if not os.path.isdir(d):
        os.makedirs(os.path.dirname(d), exist_ok=True)
        run(["dpkg-deb", "-x", c.debs[pkg], d])
    return d


def needed(path):
    out = run(["readelf", "-d", path]).stdout
    expect(not re.search(r"\((RPATH|RUNPATH)\)", out),
           f"{path} has an RPATH/RUNPATH: {re.findall(r'R(?:UN)?PATH.*', out)}")
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def parse_depends(field):
    """{package: version constraint or ''} of a Depends field (first of each alternative)."""
    out = {}
    for item in filter(None, (s.strip() for s in field.split(","))):
        first = item.split("|")[0].strip()
        m = re.fullmatch(r"([a-z0-9.+-]+)(?:\s*\((>=|=)\s*([^)]+)\))?", first)
        expect(m, f"cannot read Depends item {item!r}")
        out[m.group(1)] = m.group(3) or ""
    return out


@check
def depends_name_every_library_the_binaries_need(c):
    c.libnode_installed = run(["dpkg-query", "-W", "-f", "${db:Status-Status}", "libnode108"],
                              ok=False).stdout == "installed"
    shl = os.path.join(c.tmp, "shlibdeps")
    os.makedirs(os.path.join(shl, "debian"), exist_ok=True)
    with open(os.path.join(shl, "debian", "control"), "w") as f:
        f.write("Source: nano\n\nPackage: nano\nArchitecture: any\n")
    for pkg, binary in BINARIES.items():
        path = os.path.join(unpacked(c, pkg), "usr", "bin", binary)
        sonames = needed(path)
        deps = parse_depends(run(["dpkg-deb", "--field", c.debs[pkg], "Depends"]).stdout)
        argv = ["dpkg-shlibdeps", "-O", "--warnings=0"]
        if "libnode.so.108" in sonames and not c.libnode_installed:
            # dpkg-shlibdeps cannot name the package of a library dpkg did not install.
            argv += ["--ignore-missing-info", "-l" + c.v8_lib_dir]
            expect("libnode108" in deps, f"{pkg} needs libnode.so.108: Depends lacks libnode108")
            print(f"  {binary}: libnode.so.108 is not dpkg-installed here, so dpkg-shlibdeps "
                  f"cannot name its package: libnode108 (>= {deps['libnode108']}) checked by "
                  "name only")
        p = run(argv + [path], cwd=shl)
        m = re.search(r"^shlibs:Depends=(.*)$", p.stdout, re.M)
        want = parse_depends(m.group(1) if m else "")
        for name, version in sorted(want.items()):
            expect(name in deps, f"{pkg}: {binary} needs {name} (>= {version}), not in "
                                 "Depends: add it to packaging/cpack.cmake")
            if version and deps[name] != version:
                p = run(["dpkg", "--compare-versions", deps[name], "ge", version], ok=False)
                expect(p.returncode == 0, f"{pkg}: Depends has {name} (>= {deps[name]}), "
                                          f"dpkg-shlibdeps asks >= {version}")
        # nanoctl loads libcrypto.so.3 (libssl3's) with dlopen on its first SHA-256 (deploy,
        # apply: shared/sha256.c NANO_SHA256_DLOPEN), so it is not NEEDED yet still required.
        dlopened = {"nanoctl": {"libssl3": b"libcrypto.so.3\0"}}.get(binary, {})
        for name, soname in dlopened.items():
            with open(path, "rb") as f:
                expect(soname in f.read(), f"{binary} does not name {soname!r} any more: "
                                           f"check its Depends on {name}")
        extra = set(deps) - set(want) - {"nano-common", "libnode108"} - set(dlopened)
        expect(not extra, f"{pkg}: Depends names {sorted(extra)}, which {binary} does not need")
        print(f"  {binary}: NEEDED {' '.join(sonames)}: all in Depends")
    # libcurl is loaded with dlopen: not NEEDED, and its package is a Recommends.
    dp = os.path.join(unpacked(c, "nano-dp"), "usr", "bin", "nano-dp")
    expect(not any(s.startswith("libcurl") for s in needed(dp)), "nano-dp links libcurl")
    with open(dp, "rb") as f:
        expect(b"libcurl.so.4\0" in f.read(), "nano-dp does not name libcurl.so.4 any more: "
                                             "check its Recommends")
    owner = run(["dpkg", "-S", "*/x86_64-linux-gnu/libcurl.so.4"], ok=False).stdout
    if owner:
        expect(owner.startswith("libcurl4:"), f"libcurl.so.4 is not libcurl4's: {owner}")


# --- installed into a scratch root ----------------------------------------------------------

def require_install(c):
    if getattr(c, "skip_install", None):
        raise Skip(c.skip_install)


def host_status_of(names):
    """The host's dpkg status stanzas of the installed packages among names, and their lists."""
    stanzas, lists = [], []
    for name in sorted(names):
        p = run(["dpkg-query", "-s", name], ok=False)
        if p.returncode != 0 or "Status: install ok installed" not in p.stdout:
            continue
        stanzas.append(p.stdout.strip() + "\n")
        arch = re.search(r"^Architecture: (\S+)", p.stdout, re.M).group(1)
        multi = re.search(r"^Multi-Arch: same", p.stdout, re.M)
        lists.append(f"{name}:{arch}.list" if multi else f"{name}.list")
    return "\n".join(stanzas), lists


@check
def install_into_a_scratch_root(c):
    if os.geteuid() != 0:
        c.skip_install = "not root: dpkg --root cannot give files their owners"
    elif not (shutil.which("systemd-sysusers") and shutil.which("systemd-tmpfiles")):
        c.skip_install = ("no systemd-sysusers/systemd-tmpfiles (package systemd), which "
                          "nano-common's postinst runs")
    require_install(c)
    r = c.root = os.path.join(c.tmp, "root")
    admin = os.path.join(r, "var", "lib", "dpkg")
    for d in ("info", "updates", "triggers"):
        os.makedirs(os.path.join(admin, d))
    os.chmod(c.tmp, 0o755)  # the root's user nano must reach the root
    # The root's package database: the host's own entries for every package ours name, so
    # that dpkg checks our Depends against what this machine really has installed (their
    # files are the host's: the binaries started below use the host's libraries).
    names = set()
    for pkg in PACKAGES:
        f = run(["dpkg-deb", "--field", c.debs[pkg], "Depends", "Recommends"]).stdout
        names |= set(re.findall(r"(?:^|[,|:]\s*)([a-z0-9][a-z0-9.+-]+)", f, re.M))
    status, lists = host_status_of(names - set(PACKAGES))
    with open(os.path.join(admin, "status"), "w") as f:
        f.write(status)
    open(os.path.join(admin, "available"), "w").close()
    for name in lists:
        if os.path.exists(os.path.join("/var/lib/dpkg/info", name)):
            shutil.copy(os.path.join("/var/lib/dpkg/info", name), os.path.join(admin, "info"))
    c.host_has_nano = run(["getent", "passwd", "nano"], ok=False).returncode == 0
    p = run(["dpkg", "--root", r, "--log", "/dev/null", "--force-script-chrootless",
             "--force-depends", "-i"] + [c.debs[p] for p in PACKAGES], ok=False)
    if p.returncode != 0:
        raise AssertionError(f"dpkg -i exited {p.returncode}:\n{p.stdout}{p.stderr}")
    unmet = sorted(set(re.findall(r"^ \S+ depends on ([a-z0-9.+-]+)", p.stderr, re.M)))
    allowed = set() if c.libnode_installed else {"libnode108"}
    expect(set(unmet) <= allowed, f"dependencies this machine lacks: {unmet}; dpkg said:\n"
                                  f"{p.stderr}")
    if unmet:
        note_forced("dpkg --force-depends for " + ", ".join(unmet),
                    "libnode108 is not dpkg-installed on this machine (apt refuses it beside a "
                    "non-Debian nodejs; scripts/bootstrap unpacked it into .deps/); every other "
                    "Depends was satisfied by the host's own package entries")
    print("  --force-script-chrootless: the maintainer scripts run here with DPKG_ROOT set; "
          "they pass --root to systemd-sysusers and systemd-tmpfiles")
    for m in re.findall(r"^(Creating (?:user|group) .*)$", p.stdout + p.stderr, re.M):
        print("  postinst: " + m)
    eq(run(["getent", "passwd", "nano"], ok=False).returncode == 0, c.host_has_nano,
       "this machine's user nano (the install must change only the root)")


def root_ids(c):
    users = {l.split(":")[0]: l.split(":") for l in open(os.path.join(c.root, "etc/passwd"))}
    groups = {l.split(":")[0]: l.split(":") for l in open(os.path.join(c.root, "etc/group"))}
    return users, groups


@check
def the_root_has_user_nano_and_its_directories(c):
    require_install(c)
    users, groups = root_ids(c)
    expect("nano" in users and "nano" in groups, "no user/group nano in the root")
    u = users["nano"]
    c.uid, c.gid = int(u[2]), int(u[3])
    eq(c.gid, int(groups["nano"][2]), "nano's primary group")
    expect(c.uid < 1000, f"nano is not a system user (uid {c.uid})")
    eq(u[5], "/var/lib/nanocp", "nano's home")
    eq(u[6].strip(), "/usr/sbin/nologin", "nano's shell")
    names = {0: "root", c.uid: "nano"}
    gnames = {0: "root", c.gid: "nano"}
    for path, (mode, owner, group) in INSTALLED.items():
        st = os.stat(c.root + path)
        got = (oct(stat.S_IMODE(st.st_mode)), names.get(st.st_uid, st.st_uid),
               gnames.get(st.st_gid, st.st_gid))
        eq(got, (oct(mode), owner, group), f"{path} (mode, owner, group)")
    conf = run(["dpkg-query", "--admindir", os.path.join(c.root, "var/lib/dpkg"), "-W",
                "-f", "${Conffiles}\n", "nano-dp", "nanocp"]).stdout
    eq(set(re.findall(r"^ (\S+) [0-9a-f]{32}$", conf, re.M)),
       CONFFILES["nano-dp"] | CONFFILES["nanocp"], "conffiles dpkg registered")


@check
def units_verify(c):
    require_install(c)
    if not shutil.which("systemd-analyze"):
        raise Skip("no systemd-analyze (package systemd)")
    r = c.root
    # The units need what the package systemd and procps give a real system: the targets they
    # order against, and /bin/kill (ExecReload). The root gets copies of this machine's.
    os.makedirs(os.path.join(r, "usr/lib/systemd/system"), exist_ok=True)
    src = "/usr/lib/systemd/system"
    for name in os.listdir(src):
        s = os.path.join(src, name)
        if os.path.isfile(s) and not os.path.exists(os.path.join(r, "lib/systemd/system", name)):
            shutil.copy(s, os.path.join(r, "usr/lib/systemd/system", name), follow_symlinks=True)
    os.makedirs(os.path.join(r, "bin"), exist_ok=True)
    shutil.copy(shutil.which("kill") or "/bin/kill", os.path.join(r, "bin/kill"))
    print("  the root got copies of this machine's /usr/lib/systemd/system and /bin/kill "
          "(packages systemd and procps, which a real system has)")
    env = dict(os.environ, MANPATH=os.path.join(r, "usr/share/man"))
    p = run(["systemd-analyze", "verify", "--root", r, "nano-dp.service", "nanocp.service"],
            ok=False, env=env)
    # verify exits 0 on unknown keys and bad values: any line it prints is a finding.
    expect(p.returncode == 0 and not (p.stdout + p.stderr).strip(),
           f"systemd-analyze verify (exit {p.returncode}):\n{p.stdout}{p.stderr}")
    help_dp = run(c.dp_cmd + ["--help"], env=c.run_env).stdout
    m = re.search(r"--drain-timeout D.*?\(default (\d+)s,\s*at most (\d+)s\)", help_dp, re.S)
    expect(m, "nano-dp --help no longer says the drain timeout's default")
    drain = int(m.group(1))
    for unit in ("nano-dp", "nanocp"):
        text = open(os.path.join(r, "lib/systemd/system", unit + ".service")).read()
        keys = {}
        for line in text.splitlines():
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                keys.setdefault(k, []).append(v)
        for k, v in (("Type", "notify"), ("NotifyAccess", "main"), ("KillMode", "mixed"),
                     ("User", "nano"), ("Group", "nano"), ("Restart", "on-failure"),
                     ("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                     ("ProtectHome", "yes"), ("PrivateTmp", "yes"), ("CapabilityBoundingSet", ""),
                     ("EnvironmentFile", f"-/etc/default/{unit}")):
            eq(keys.get(k), [v], f"{unit}.service {k}")
        expect("MemoryDenyWriteExecute" not in keys, f"{unit}.service: V8 needs W^X off")
        # Both reload on SIGHUP (nano-dp its --config, nanocp its admin HTTPS certificate).
        eq(keys.get("ExecReload"), ["/bin/kill -HUP $MAINPID"], f"{unit} ExecReload")
        stop = int(keys["TimeoutStopSec"][0].rstrip("s"))
        watchdog = int(keys["WatchdogSec"][0].rstrip("s"))
        if unit == "nano-dp":
            # The drain, plus 2 s for a worker stuck in JS, plus room to exit.
            expect(stop > drain + 2, f"TimeoutStopSec={stop}s, the drain takes up to {drain}s")
            # A worker is stuck after half the interval; JS holds it up to cpu_ms (at most
            # MAX_CPU_MS: shared/config.c), which must not count as stuck.
            expect(watchdog >= 2 * MAX_CPU_MS // 1000,
                   f"WatchdogSec={watchdog}s: a worker running JS for {MAX_CPU_MS} ms would "
                   "stop the pings")
            eq(keys.get("CacheDirectory"), ["nano-dp"], "nano-dp CacheDirectory")
        else:
            # A load check holds nanocp's loop up to cpu_ms + 15 s.
            expect(watchdog > MAX_CPU_MS // 1000 + 15,
                   f"WatchdogSec={watchdog}s: a deployment's load check would stop the pings")
            eq(keys.get("StateDirectory"), ["nanocp"], "nanocp StateDirectory")
        # Whatever the unit may write is its state/cache directory: no ReadWritePaths.
        expect("ReadWritePaths" not in keys, f"{unit}.service: ReadWritePaths")


# --- man pages and completion ---------------------------------------------------------------

@check
def man_pages_hold_every_option_of_help(c):
    require_install(c)
    has_man = shutil.which("man") is not None
    if not has_man:
        print("  no man (package man-db): the pages' roff source is checked, not its rendering")
    env = dict(os.environ, MANWIDTH="250", MANROFFOPT="-rHY=0", LC_ALL="C.UTF-8")
    for name, cmd in (("nano-dp", c.dp_cmd), ("nanocp", c.cp_cmd), ("nanoctl", c.ctl_cmd)):
        page = os.path.join(c.root, "usr/share/man/man1", name + ".1.gz")
        if has_man:
            p = run(["man", "--warnings", "-l", page], env=env)
            expect(not p.stderr.strip(), f"{name}(1): groff warnings:\n{p.stderr}")
            text = p.stdout
            heading = r"^{}$"
        else:
            with gzip.open(page, "rt") as f:
                text = re.sub(r"\\f[BIR]", "", f.read()).replace("\\-", "-")
            heading = r'^\.SH "?{}"?$'
        for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "FILES", "SEE ALSO"):
            expect(re.search(heading.format(section), text, re.M), f"{name}(1) has no {section}")
        flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)",
                               run(cmd + ["--help"], env=c.run_env).stdout))
        missing = sorted(f for f in flags if f not in text)
        expect(not missing, f"{name}(1) lacks {missing} of {name} --help")
        print(f"  {name}(1): {len(text.splitlines())} lines, all {len(flags)} flags of --help")


def complete(c, words, extra_env=None):
    """What the installed completion offers for the last of words (bash, COMP_WORDS)."""
    script = (f"source {c.root}/usr/share/bash-completion/completions/nanoctl\n"
              "COMP_WORDS=(\"$@\"); COMP_CWORD=$(($# - 1)); _nanoctl\n"
              "printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    env = dict(c.run_env, PATH=os.path.join(c.root, "usr/bin") + ":" + os.environ["PATH"])
    env.update(extra_env or {})
    p = run(["bash", "-c", script, "bash"] + list(words), env=env)
    return set(p.stdout.split())


@check
def completion_offers_every_command_and_flag_of_nanoctl(c):
    require_install(c)
    top = run(c.ctl_cmd + ["--help"], env=c.run_env).stdout
    block = re.search(r"^commands:\n((?:  .*\n)+)", top, re.M).group(1)
    commands = set()
    for line in block.splitlines():
        if line.startswith("  ") and not line.startswith("   "):
            for col in re.split(r" {2,}", line.strip()):
                commands.add(col.split()[0])
    got = complete(c, ["nanoctl", ""])
    expect(commands <= got, f"commands not completed: {sorted(commands - got)}")
    opts = re.search(r"^options.*:\n((?:  .*\n)+)", top, re.M).group(1)
    flags = set(re.findall(r"^  (--[a-z-]+)", opts, re.M))
    got = complete(c, ["nanoctl", "--"])
    expect(flags <= got, f"global flags not completed: {sorted(flags - got)}")
    n_flags = len(flags)
    for cmd in sorted(commands):
        text = run(c.ctl_cmd + [cmd, "--help"], env=c.run_env).stdout
        subs = {}
        for line in text.splitlines():
            m = re.match(r"^(?:usage:)?\s+nanoctl (\S+)(?: ([a-z]+)\b)?(.*)$", line)
            if m and m.group(1) == cmd:
                sub = m.group(2) or ""
                subs.setdefault(sub, set()).update(re.findall(r"--[a-z][a-z-]*", m.group(3)))
        named = {s for s in subs if s}
        if named:
            got = complete(c, ["nanoctl", cmd, ""])
            expect(named <= got, f"nanoctl {cmd}: subcommands not completed: "
                                 f"{sorted(named - got)}")
        # Every flag the help names completes where its usage line puts it; the rest (LIMITS,
        # EGRESS, descriptions) in some subcommand of the command.
        union = set()
        for sub, fl in subs.items():
            words = ["nanoctl", cmd] + ([sub, "x"] if sub else []) + ["--"]
            got = complete(c, words)
            union |= got
            expect(fl <= got, f"nanoctl {cmd} {sub}: flags not completed: {sorted(fl - got)}")
        # (A help text shared by several commands, nodes/audit/...: its usage lines only.)
        shared = {m.group(1) for m in re.finditer(r"^(?:usage:)?\s+nanoctl (\S+)", text, re.M)}
        # Flags the text names as nano-dp's (`nano-dp --config`, `nano-dp's --egress-allow/...`)
        # are not nanoctl's.
        own = re.sub(r"nano-dp(?:'s)? --[a-z-]+(?:/--[a-z-]+)*", "", text)
        rest = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", own)) - {"--help"}
        if shared == {cmd}:
            expect(rest <= union, f"nanoctl {cmd}: flags of its help not completed: "
                                  f"{sorted(rest - union)}")
        n_flags += len(rest)
    print(f"  {len(commands)} commands and {n_flags} flags of nanoctl's help texts complete")


# --- the daemons, started as nano with the packaged flags -----------------------------------

class Notify:
    """A NOTIFY_SOCKET: an AF_UNIX datagram socket that records (pid, message) pairs; the
    sender's pid comes from SO_PASSCRED, as systemd reads it for NotifyAccess=main."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        os.chmod(path, 0o666)  # nano sends to it
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.settimeout(0.2)
        self.got = []
        self._stop = False
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        size = socket.CMSG_SPACE(12)
        while not self._stop:
            try:
                data, anc, _flags, _addr = self.sock.recvmsg(4096, size)
            except (socket.timeout, OSError):
                continue
            pid = None
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = int.from_bytes(cdata[0:4], sys.byteorder)
            for line in data.decode(errors="replace").splitlines():
                self.got.append((pid, line))

    def wait(self, pid, message, timeout=TIMEOUT, count=1):
        """Whether pid sent message (count times in all) within timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.got.count((pid, message)) >= count:
                return True
            time.sleep(0.02)
        return False

    def close(self):
        self._stop = True
        self.sock.close()


class Daemon:
    def __init__(self, c, name, argv, notify):
        self.name = name
        self.log = []
        env = dict(c.run_env, NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="1000000")
        # WATCHDOG_PID: the daemon's own pid, as systemd sets it (so that children ignore the
        # watchdog): the shell's pid, which exec keeps.
        shell = 'uid=$0 gid=$1; shift; export WATCHDOG_PID=$$; ' \
                'exec setpriv --reuid "$uid" --regid "$gid" --clear-groups --no-new-privs "$@"'
        self.proc = subprocess.Popen(["sh", "-c", shell, str(c.uid), str(c.gid)] + argv,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env,
                                     cwd=c.root)
        c.live.append(self)
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.log.append(line)

    def text(self):
        return "".join(self.log)

    def wait_log(self, pattern, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.text())
            if m:
                return m
            if self.proc.poll() is not None:
                time.sleep(0.1)
                m = re.search(pattern, self.text())
                if m:
                    return m
                raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n"
                                     f"{self.text()}")
            time.sleep(0.02)
        raise AssertionError(f"{self.name}: no /{pattern}/ within {timeout}s:\n{self.text()}")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"{self.name} did not exit on SIGTERM:\n{self.text()}")


def packaged_opts(c, unit, var):
    """The flags /etc/default/UNIT gives, split as systemd splits $VAR, with absolute paths
    under /etc and /var taken inside the scratch root."""
    sh = f'. "$1"; printf "%s\\n" ${var}'
    words = run(["sh", "-c", sh, "sh", os.path.join(c.root, "etc/default", unit)]).stdout.split()
    expect(words, f"/etc/default/{unit} sets no {var}")
    return [c.root + w if re.match(r"^/(etc|var)/", w) else w for w in words]


def has_sd_notify(path):
    """Whether the binary can notify: shared/sd.c sends through libsystemd's sd_notify, and
    a build without libsystemd only logs that it cannot."""
    return "libsystemd.so.0" in needed(path)


def notify_checks(c, d, pid, notify, binary):
    """READY=1 and WATCHDOG=1 from the main pid, or a clear skip while they are not there."""
    if not has_sd_notify(binary):
        if REQUIRE_SD_NOTIFY:
            raise AssertionError(f"{d.name} was built without sd_notify support (it does not "
                                 "link libsystemd: libsystemd-dev was missing at build time); "
                                 "under its unit (Type=notify) it would never start")
        print(f"  {d.name}: READY=1/WATCHDOG=1 not asserted: the binary was built without "
              "sd_notify support (no libsystemd); REQUIRE_SD_NOTIFY is off")
        return False
    expect(notify.wait(pid, "READY=1"), f"{d.name}: no READY=1 from its main pid {pid}; "
                                        f"got {notify.got}")
    expect(notify.wait(pid, "WATCHDOG=1", timeout=3.0),
           f"{d.name}: no WATCHDOG=1 within 3 s with WATCHDOG_USEC=1000000; got {notify.got}")
    status = [m for p, m in notify.got if p == pid and m.startswith("STATUS=")]
    print(f"  {d.name}: READY=1 and WATCHDOG=1 from pid {pid}" +
          (f"; {status[-1]}" if status else ""))
    return True


@check
def daemons_start_as_nano_with_the_packaged_flags(c):
    require_install(c)
    r = c.root
    notify = Notify(os.path.join(c.tmp, "notify.sock"))
    try:
        # nanocp: /etc/default/nanocp's flags (--data-dir /var/lib/nanocp, in the root), with
        # ephemeral ports; the checker is the nano-dp beside it, /usr/bin/nano-dp.
        opts = packaged_opts(c, "nanocp", "NANOCP_OPTS")
        cp = Daemon(c, "nanocp", [os.path.join(r, "usr/bin/nanocp")] + opts +
                    ["--http", "127.0.0.1:0", "--rpc", "tcp://127.0.0.1:0",
                     "--dataplane", "tcp://127.0.0.1:0", "--dataplane-rpc", "tcp://127.0.0.1:0"],
                    notify)
        cp.wait_log(r"nanocp\.ready")
        m = cp.wait_log(r"cp\.checker_ready checker=(\S+)")
        eq(m.group(1), os.path.join(r, "usr/bin/nano-dp"), "nanocp's checker (beside it)")
        rpc = int(cp.wait_log(r"cp\.rpc_listening .*port=(\d+)").group(1))
        data = os.path.join(r, "var/lib/nanocp")
        for f in ("nanocp.db", "master.key", "admin.token", "node.token"):
            st = os.stat(os.path.join(data, f))
            eq((st.st_uid, oct(stat.S_IMODE(st.st_mode))), (c.uid, "0o600"), f"{f} owner, mode")
        cp_notify = notify_checks(c, cp, cp.proc.pid, notify, os.path.join(r, "usr/bin/nanocp"))

        # nanoctl, installed, against it: an app created, listed, and completed by name.
        ctl = c.ctl_cmd + ["--cp", f"tcp://127.0.0.1:{rpc}", "--token-file",
                           os.path.join(data, "admin.token")]
        run(ctl + ["apps", "create", "pkgtest", "--host", "pkg.test"], env=c.run_env)
        apps = json.loads(run(ctl + ["--json", "apps", "list"], env=c.run_env).stdout)
        eq([a["name"] for a in apps["apps"]], ["pkgtest"], "apps")
        got = complete(c, ["nanoctl"] + ctl[1:] + ["apps", "status", ""])
        eq(got, {"pkgtest"}, "app names completed from nanocp")

        # nano-dp: /etc/default/nano-dp's flags (--config /etc/nano/nano.json, --code-dir
        # /var/cache/nano-dp, in the root), on an ephemeral port.
        opts = packaged_opts(c, "nano-dp", "NANO_DP_OPTS")
        i = opts.index("--listen")
        opts[i + 1] = "127.0.0.1:0"
        dp = Daemon(c, "nano-dp", [os.path.join(r, "usr/bin/nano-dp")] + opts +
                    ["--threads", "1", "--status-listen", "127.0.0.1:0"], notify)
        port = int(dp.wait_log(r"dp\.listening addr=\S+:(\d+)").group(1))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/pkg", timeout=TIMEOUT) as resp:
            eq(resp.read().decode(), "Hello from nano-dp: /pkg\n", "the example app's answer")
        dp_notify = notify_checks(c, dp, dp.proc.pid, notify,
                                  os.path.join(r, "usr/bin/nano-dp"))
        # ExecReload (kill -HUP): nano-dp reloads /etc/nano/nano.json and says so; nanocp,
        # without an admin certificate to read again, logs that and goes on.
        dp.proc.send_signal(signal.SIGHUP)
        dp.wait_log(r"dp\.config_applied trigger=SIGHUP")
        if dp_notify:
            expect(notify.wait(dp.proc.pid, "RELOADING=1"), "nano-dp: no RELOADING=1 on SIGHUP")
            expect(notify.wait(dp.proc.pid, "READY=1", count=2),
                   "nano-dp: no READY=1 after its SIGHUP reload")
        cp.proc.send_signal(signal.SIGHUP)
        cp.wait_log(r"nanocp\.sighup_ignored")
        time.sleep(0.2)
        expect(cp.proc.poll() is None, f"nanocp ended on SIGHUP:\n{cp.text()}")
        expect(os.path.isdir(os.path.join(r, "var/cache/nano-dp/v8")),
               "nano-dp did not write its --code-dir (/var/cache/nano-dp/v8)")

        for d, has in ((dp, dp_notify), (cp, cp_notify)):
            pid = d.proc.pid
            eq(d.stop(), 0, f"{d.name} exit status after SIGTERM")
            if has:
                expect((pid, "STOPPING=1") in notify.got, f"{d.name}: no STOPPING=1")
        print(f"  nanocp and nano-dp ran as uid {c.uid} (the root's nano), served, reloaded on "
              "SIGHUP and exited 0 on SIGTERM" + (" (STOPPING=1 sent)" if dp_notify else ""))
    finally:
        notify.close()


@check
def purge_removes_config_and_keeps_nanocps_data(c):
    require_install(c)
    p = run(["dpkg", "--root", c.root, "--log", "/dev/null", "--force-script-chrootless",
             "--force-depends", "--purge"] + list(reversed(PACKAGES)), ok=False)
    expect(p.returncode == 0, f"dpkg --purge exited {p.returncode}:\n{p.stdout}{p.stderr}")
    for gone in ("/etc/nano", "/etc/default/nano-dp", "/etc/default/nanocp", "/usr/bin/nano-dp",
                 "/var/cache/nano-dp", "/lib/systemd/system/nanocp.service"):
        expect(not os.path.exists(c.root + gone), f"{gone} is left after purge")
    expect(os.path.exists(c.root + "/var/lib/nanocp/nanocp.db"), "purge removed nanocp's data")
    expect("/var/lib/nanocp is kept" in p.stderr, f"purge did not say what it kept:\n{p.stderr}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--cpack", default="cpack")
    ap.add_argument("--v8-lib-dir", default="")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    o = ap.parse_args()
    if not shutil.which("dpkg-deb"):
        print("SKIP: no dpkg-deb: the packages cannot be read")
        return 77
    c = Ctx()
    c.build = os.path.abspath(o.build_dir)
    c.cpack = o.cpack
    c.v8_lib_dir = o.v8_lib_dir
    c.live = []
    c.tmp = tempfile.mkdtemp(prefix="nano-package-")
    passed = failed = skipped = 0
    t_all = time.monotonic()
    try:
        for fn in _checks:
            t0 = time.monotonic()
            try:
                fn(c)
                passed += 1
                print(f"ok   {fn.__name__} ({time.monotonic() - t0:.1f}s)", flush=True)
            except Skip as e:
                skipped += 1
                print(f"SKIP {fn.__name__}: {e}", flush=True)
            except Exception as e:  # noqa: BLE001 - report and go on
                failed += 1
                print(f"FAIL {fn.__name__}: {e}", flush=True)
                if fn is packages_build_with_cpack:
                    break
                if fn is install_into_a_scratch_root:
                    c.skip_install = "the install failed"
            finally:
                for d in c.live:
                    if d.proc.poll() is None:
                        d.proc.kill()
                        d.proc.wait()
                c.live = []
            if fn is install_into_a_scratch_root:
                setup_commands(c)
    finally:
        if o.keep:
            print(f"kept {c.tmp}")
        else:
            shutil.rmtree(c.tmp, ignore_errors=True)
    print("forced: " + ("; ".join(f"{w} ({why})" for w, why in forced) if forced else "nothing"))
    not_run = len(_checks) - passed - failed - skipped
    print(f"{passed} passed, {failed} failed, {skipped} skipped" +
          (f", {not_run} not run" if not_run else "") + f" ({time.monotonic() - t_all:.1f}s)")
    if failed:
        return 1
    return 77 if skipped else 0


def setup_commands(c):
    """How the installed binaries are run: from the root, with LD_LIBRARY_PATH only where the
    system has no libnode.so.108 (which nano-dp alone needs)."""
    c.run_env = dict(os.environ)
    base = None if getattr(c, "skip_install", None) else c.root
    bindir = lambda pkg: os.path.join(base or unpacked(c, pkg), "usr/bin")  # noqa: E731
    c.dp_cmd = [os.path.join(bindir("nano-dp"), "nano-dp")]
    c.cp_cmd = [os.path.join(bindir("nanocp"), "nanocp")]
    c.ctl_cmd = [os.path.join(bindir("nanoctl"), "nanoctl")]
    if c.libnode_installed:
        return
    p = run(c.dp_cmd + ["--version"], ok=False)
    if p.returncode != 0 and "libnode.so.108" in p.stderr and c.v8_lib_dir:
        c.run_env["LD_LIBRARY_PATH"] = c.v8_lib_dir
        note_forced(f"LD_LIBRARY_PATH={c.v8_lib_dir} for running the installed binaries",
                    "libnode.so.108 is not in the system's library path here (libnode108 "
                    "unpacked into .deps/, not installed); the packaged nano-dp has no RPATH "
                    "and expects it in /usr/lib/x86_64-linux-gnu")


if __name__ == "__main__":
    sys.exit(main())
