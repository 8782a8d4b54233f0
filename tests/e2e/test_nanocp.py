#!/usr/bin/env python3
"""nanocp as a process: first start (data dir, database, master key and admin token with
their modes, paths logged but never values), SIGTERM/SIGINT exit 0, `migrate --status`, a
database newer than the binary refused, a group-readable key file refused, bad usage.
nanocp is found beside the nano-dp binary given with --bin."""
import os
import signal
import sqlite3
import stat
import subprocess

import nanotest
from nanotest import TIMEOUT, check, eq, expect, run, scratch_dir


def nanocp():
    return os.path.join(os.path.dirname(nanotest.BIN), "nanocp")


def cli(*args, env=None):
    p = subprocess.run([nanocp()] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=TIMEOUT, env=env)
    return p.returncode, p.stdout, p.stderr


def start(*args, env=None):
    """Starts nanocp, waits for nanocp.ready; returns (proc, stderr lines so far)."""
    proc = subprocess.Popen([nanocp()] + list(args), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    try:
        for line in proc.stderr:
            lines.append(line)
            if "nanocp.ready" in line:
                return proc, lines
    except Exception:
        proc.kill()
        raise
    proc.kill()
    proc.wait(timeout=TIMEOUT)
    raise AssertionError("nanocp exited before nanocp.ready:\n" + "".join(lines))


def stop(proc, sig):
    try:
        proc.send_signal(sig)
        rest = proc.stderr.read()
        code = proc.wait(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=TIMEOUT)
    return code, rest


def clean_env():
    env = dict(os.environ)
    env.pop("NANO_MASTER_KEY", None)
    return env


@check
def first_start_creates_state_and_logs_paths_only():
    data = os.path.join(scratch_dir(), "cp")
    proc, lines = start("--data-dir", data, env=clean_env())
    code, rest = stop(proc, signal.SIGTERM)
    log = "".join(lines) + rest
    eq(code, 0, "exit code after SIGTERM")
    eq(stat.S_IMODE(os.stat(data).st_mode), 0o700, "data dir mode")
    for name in ("nanocp.db", "master.key", "admin.token"):
        mode = stat.S_IMODE(os.stat(os.path.join(data, name)).st_mode)
        eq(mode & 0o077, 0, f"{name} mode {mode:o}")
    token = open(os.path.join(data, "admin.token")).read().strip()
    key = open(os.path.join(data, "master.key")).read().strip()
    eq(len(token), 64, "token length")
    eq(len(key), 64, "key length")
    for event in ("cp.master_key_created", "cp.admin_token_created", "nanocp.ready",
                  "nanocp.shutdown signal=SIGTERM", "nanocp.stopped"):
        expect(event in log, f"{event} missing from:\n{log}")
    expect(os.path.join(data, "admin.token") in log, "token path not logged")
    expect(token not in log and key not in log, "a token or key value was logged")
    # The WAL was checkpointed: the database file alone is complete.
    wal = os.path.join(data, "nanocp.db-wal")
    expect(not os.path.exists(wal) or os.path.getsize(wal) == 0, "WAL left non-empty")
    # A second start reuses everything; SIGINT also exits 0.
    proc, lines = start("--data-dir", data, env=clean_env())
    code, rest = stop(proc, signal.SIGINT)
    eq(code, 0, "exit code after SIGINT")
    expect("cp.admin_token_created" not in "".join(lines) + rest, "token made twice")
    eq(open(os.path.join(data, "admin.token")).read().strip(), token, "token kept")


@check
def migrate_status_and_newer_database_refused():
    data = os.path.join(scratch_dir(), "cp")
    code, out, _ = cli("migrate", "--status", "--data-dir", data)
    eq(code, 0, "status before any start")
    expect("0001" in out and "pending" in out, out)
    expect(not os.path.exists(data), "migrate --status created the data dir")
    code, out, err = cli("migrate", "--data-dir", data)
    eq(code, 0, f"migrate: {err}")
    code, out, _ = cli("migrate", "--status", "--data-dir", data)
    expect("init" in out and "egress" in out and "pending" not in out, out)
    db = sqlite3.connect(os.path.join(data, "nanocp.db"))
    db.execute("INSERT INTO schema_migrations VALUES (3, 'future', '2030-01-01T00:00:00Z')")
    db.commit()
    db.close()
    code, _, err = cli("--data-dir", data, env=clean_env())
    eq(code, 1, "start on a newer database")
    expect("migration 0003 (future), newer than this nanocp knows" in err, err)
    code, out, _ = cli("migrate", "--status", "--data-dir", data)
    eq(code, 1, "status lists an unknown migration")
    expect("unknown to this nanocp" in out, out)


@check
def group_readable_master_key_refused():
    d = scratch_dir()
    key = os.path.join(d, "key")
    with open(key, "w") as f:
        f.write("ab" * 32 + "\n")
    os.chmod(key, 0o640)
    code, _, err = cli("--data-dir", os.path.join(d, "cp"), "--master-key-file", key,
                       env=clean_env())
    eq(code, 1, "exit code")
    expect("accessible by group or others (mode 0640): run chmod 600" in err, err)
    expect("ab" * 32 not in err, "key material in the message")
    env = clean_env()
    env["NANO_MASTER_KEY"] = "cd" * 32
    proc, lines = start("--data-dir", os.path.join(d, "cp2"), env=env)
    code, rest = stop(proc, signal.SIGTERM)
    eq(code, 0, "start with NANO_MASTER_KEY")
    expect(not os.path.exists(os.path.join(d, "cp2", "master.key")), "key file made anyway")
    expect("master_key=NANO_MASTER_KEY" in "".join(lines), "key source not logged")


@check
def bad_usage_exits_2():
    for args in (["--bogus"], ["--http", "nope"], ["--rpc", "http://x"], ["--data-dir"],
                 ["--status"], ["--log-format", "xml"]):
        code, _, err = cli(*args)
        eq(code, 2, f"exit code of {args}")
        eq(len(err.strip().splitlines()), 1, f"one line for {args}: {err!r}")
    code, out, _ = cli("--help")
    eq(code, 0, "--help")
    expect("--master-key-file" in out, out)
    code, out, _ = cli("--version")
    expect(code == 0 and out.startswith("nanocp "), out)


run()
