"""nanotest: helpers for NANO's end-to-end tests (python3 standard library only).

Each test script takes `--bin PATH` (the nano-dp binary; nanocp and nanoctl are found beside
it unless --nanocp / --nanoctl say otherwise), defines checks with @check, and calls run().
Servers listen on 127.0.0.1 with an ephemeral port (read from the `dp.listening` log line;
ControlPlane reads nanocp's `cp.*_listening` lines); every process a test starts is killed
when the test ends, even on failure. Every socket operation has a timeout.
"""
import argparse
import atexit
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

TIMEOUT = 10.0
# Under `make test-asan` code runs several times slower: a first request (isolate, module,
# lazy compiles) can take 50 ms of CPU there, the multi-tenant default per-request CPU limit
# (summed over all of a request's JS). Apps of a nano.json and apps created with nanoctl get a
# CPU limit of SANITIZED_CPU_MS unless a test sets one; a single APP.js has 30 s already.
SANITIZED = "ASAN_OPTIONS" in os.environ
SANITIZED_CPU_MS = 1000
_checks = []
_live = []
_scratch = []
BIN = None
NANOCP = None
NANOCTL = None


def scratch_dir():
    """A temporary directory removed when the current check ends."""
    d = tempfile.mkdtemp(prefix="nano-e2e-")
    _scratch.append(d)
    return d


def check(fn):
    """Registers a test function (run in definition order)."""
    _checks.append(fn)
    return fn


class Server:
    """A nano-dp process serving `source` (a JS module) on an ephemeral loopback port."""

    def __init__(self, source, args=(), files=None, name="app.js"):
        self.dir = tempfile.mkdtemp(prefix="nano-e2e-")
        for fname, text in (files or {}).items():  # fname may name a subdirectory: lib/x.js
            os.makedirs(os.path.dirname(os.path.join(self.dir, fname)), exist_ok=True)
            with open(os.path.join(self.dir, fname), "w") as f:
                f.write(text)
        self.path = os.path.join(self.dir, name)
        with open(self.path, "w") as f:
            f.write(source)
        self.args = list(args)
        self.proc = None
        self.port = None
        self._log = []
        self._log_lock = threading.Lock()

    def command(self):
        cmd = [BIN, self.path, "--port", "0"]
        # One worker thread unless the test asks (module state is per thread), and a status
        # port of its own (tests run in parallel).
        if not any(a.startswith("--threads") for a in self.args):
            cmd += ["--threads", "1"]
        if not any(a.startswith("--status-listen") for a in self.args):
            cmd += ["--status-listen", "127.0.0.1:0"]
        return cmd + self.args

    def start(self, expect_listen=True):
        cmd = self.command()
        self.status_port = None
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        _live.append(self)
        threading.Thread(target=self._pump, args=(self.proc.stderr,), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stdout,), daemon=True).start()
        if expect_listen:
            m = self.wait_log(r"dp\.listening addr=127\.0\.0\.1:(\d+)")
            self.port = int(m.group(1))
            m = re.search(r"dp\.status_listening addr=127\.0\.0\.1:(\d+)", self.log())
            if m is None and "--status-listen=off" not in self.args:
                m = self.wait_log(r"dp\.status_listening addr=127\.0\.0\.1:(\d+)")
            self.status_port = int(m.group(1)) if m else None
        return self

    def _pump(self, stream):
        for line in stream:
            with self._log_lock:
                self._log.append(line)

    def log(self):
        with self._log_lock:
            return "".join(self._log)

    def wait_log(self, pattern, timeout=TIMEOUT):
        """Waits until the log matches pattern; returns the match."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while time.monotonic() < deadline:
            m = rx.search(self.log())
            if m:
                return m
            if self.proc.poll() is not None:
                time.sleep(0.1)  # let the pumps drain the last lines
                m = rx.search(self.log())
                if m:
                    return m
                raise AssertionError(f"nano-dp exited ({self.proc.returncode}) before logging "
                                     f"/{pattern}/; log:\n{self.log()}")
            time.sleep(0.02)
        raise AssertionError(f"no log line /{pattern}/ within {timeout}s; log:\n{self.log()}")

    def wait_count(self, pattern, n, timeout=TIMEOUT):
        """Waits until pattern occurs at least n times in the log."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while time.monotonic() < deadline:
            if len(rx.findall(self.log())) >= n:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"/{pattern}/ seen {len(rx.findall(self.log()))} times, not {n}, "
                             f"within {timeout}s; log:\n{self.log()}")

    def wait_exit(self, timeout=TIMEOUT):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"nano-dp still running after {timeout}s; log:\n{self.log()}")

    @property
    def host(self):
        """The Host header a real client sends to this server."""
        return f"127.0.0.1:{self.port}"

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=TIMEOUT)
        shutil.rmtree(self.dir, ignore_errors=True)
        if self in _live:
            _live.remove(self)
        # Under `make test-asan` a sanitizer report fails the test that caused it.
        log = self.log()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if marker in log:
                raise AssertionError(f"sanitizer report in the nano-dp log:\n{log}")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def request(self, method="GET", path="/", headers=None, body=None, timeout=TIMEOUT,
                host=None):
        """One request on a fresh connection; returns a Response."""
        with Conn(self.port, timeout) as c:
            c.send(build_request(method, path, headers, body, host=host or self.host))
            return c.read_response(head_only=method == "HEAD")

    def status(self, path="/status"):
        """GET on the status port; /status is parsed as JSON."""
        with Conn(self.status_port) as c:
            c.send(build_request("GET", path))
            r = c.read_response()
        if path == "/status":
            import json
            return json.loads(r.body)
        return r


class ConfigServer(Server):
    """A nano-dp process serving the apps of a nano.json (`config`, a dict) whose module
    files are `files` (name -> source), all in one temporary directory."""

    def __init__(self, config, files, args=()):
        super().__init__("", args=args, files=files, name="unused.js")
        self.config_path = os.path.join(self.dir, "nano.json")
        self.write_config(config)

    def write_config(self, config):
        import json
        tmp = self.config_path + ".tmp"
        if SANITIZED and isinstance(config, dict):
            config = json.loads(json.dumps(config))  # a copy, with CPU limits set
            for app in config.get("apps", []):
                if isinstance(app, dict):
                    limits = app.setdefault("limits", {})
                    if isinstance(limits, dict):
                        limits.setdefault("cpu_ms", SANITIZED_CPU_MS)
        with open(tmp, "w") as f:
            f.write(json.dumps(config) if not isinstance(config, str) else config)
        os.replace(tmp, self.config_path)  # as deploy tools do: the watcher must see it

    def write_file(self, name, text):
        """Replaces the file name (relative to the config's directory) by renaming a new one
        over it, as editors and deploy tools do."""
        os.makedirs(os.path.dirname(os.path.join(self.dir, name)), exist_ok=True)
        tmp = os.path.join(self.dir, name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, os.path.join(self.dir, name))

    def command(self):
        cmd = [BIN, "--config", self.config_path, "--listen", "127.0.0.1:0"]
        if not any(a.startswith("--threads") for a in self.args):
            cmd += ["--threads", "1"]
        if not any(a.startswith("--status-listen") for a in self.args):
            cmd += ["--status-listen", "127.0.0.1:0"]
        return cmd + self.args


class ControlPlane:
    """A nanocp process on ephemeral loopback ports, with its data in data_dir (a scratch
    directory when None). args: more nanocp options. never_log: strings (secret values) that
    must not appear in its log or in nanoctl's output; checked when it stops."""

    def __init__(self, data_dir=None, args=(), never_log=()):
        self.data_dir = data_dir or scratch_dir()
        self.args = list(args)
        self.never_log = list(never_log)
        self.proc = None
        self.http_port = self.rpc_port = None
        self._log = []
        self._lock = threading.Lock()

    def start(self):
        cmd = [NANOCP, "--data-dir", self.data_dir, "--http", "127.0.0.1:0",
               "--rpc", "tcp://127.0.0.1:0", "--dataplane", "tcp://127.0.0.1:0",
               "--dataplane-rpc", "tcp://127.0.0.1:0"] + self.args
        self._log = []
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        _live.append(self)
        for stream in (self.proc.stdout, self.proc.stderr):
            threading.Thread(target=self._pump, args=(stream,), daemon=True).start()
        # Logged by controlplane/api_http.c and api_rpc.c once they listen.
        self.http_port = int(self.wait_log(r"cp\.http_listening .*port=(\d+)").group(1))
        self.rpc_port = int(self.wait_log(r"cp\.rpc_listening .*port=(\d+)").group(1))
        # controlplane/distrib.c: the data-plane channels (PUB deltas, REP requests).
        m = self.wait_log(r"cp\.distrib_listening .*pub_port=(\d+) .*rpc_port=(\d+)")
        self.pub_port, self.dp_rpc_port = int(m.group(1)), int(m.group(2))
        self.node_token_file = os.path.join(self.data_dir, "node.token")
        deadline = time.monotonic() + TIMEOUT
        path = os.path.join(self.data_dir, "admin.token")
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.02)
        with open(path) as f:
            self.token = f.read().strip()
        eq(oct(os.stat(path).st_mode & 0o777), "0o600", "admin.token mode")
        return self

    @property
    def token_file(self):
        """The node token file data planes are given (DATA_DIR/node.token)."""
        return os.path.join(self.data_dir, "node.token")

    def ok(self, *args):
        """nanoctl ARGS against this nanocp; must exit 0. Returns its stdout."""
        code, out, err = self.ctl(*args)
        eq(code, 0, f"nanoctl {' '.join(args)}: {out} {err}")
        return out

    def dataplane_urls(self, scheme="tcp"):
        """(pub URL, rpc URL) of the data-plane channels."""
        return (f"{scheme}://127.0.0.1:{self.pub_port}",
                f"{scheme}://127.0.0.1:{self.dp_rpc_port}")

    def _pump(self, stream):
        for line in stream:
            with self._lock:
                self._log.append(line)

    def log(self):
        with self._lock:
            return "".join(self._log)

    def wait_log(self, pattern, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while time.monotonic() < deadline:
            m = rx.search(self.log())
            if m:
                return m
            if self.proc.poll() is not None:
                time.sleep(0.1)
                m = rx.search(self.log())
                if m:
                    return m
                raise AssertionError(f"nanocp exited ({self.proc.returncode}); log:\n"
                                     f"{self.log()}")
            time.sleep(0.02)
        raise AssertionError(f"no /{pattern}/ within {timeout}s; log:\n{self.log()}")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, graceful=True):
        if self.proc and self.proc.poll() is None:
            if graceful:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    code = self.proc.wait(timeout=TIMEOUT)
                    eq(code, 0, f"nanocp exit code after SIGTERM; log:\n{self.log()}")
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=TIMEOUT)
                    raise AssertionError("nanocp did not exit within 10 s of SIGTERM")
            else:
                self.proc.kill()
                self.proc.wait(timeout=TIMEOUT)
        if self in _live:
            _live.remove(self)
        log = self.log()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if marker in log:
                raise AssertionError(f"sanitizer report in the nanocp log:\n{log}")
        for value in self.never_log:
            expect(value not in log, "a secret value appeared in nanocp's log")

    # --- HTTP front end ---
    def http(self, method, path, body=None, token=True, content_type=None):
        """Returns (status, parsed JSON or text, headers)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=TIMEOUT)
        headers = {}
        if token is True:
            headers["Authorization"] = f"Bearer {self.token}"
        elif token:
            headers["Authorization"] = f"Bearer {token}"
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            headers["Content-Type"] = "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        ctype = r.getheader("Content-Type") or ""
        value = json.loads(data) if ctype.startswith("application/json") else data.decode()
        return r.status, value, r

    # --- nanoctl ---
    def ctl(self, *args, token=True, stdin=None, env_extra=None):
        """Runs nanoctl against this nanocp; returns (code, stdout, stderr)."""
        env = {"PATH": os.environ.get("PATH", ""), "HOME": self.data_dir}  # no user config
        if env_extra:
            env.update(env_extra)
        cmd = [NANOCTL, "--cp", f"tcp://127.0.0.1:{self.rpc_port}", "--timeout", "10s"]
        if token is True:
            cmd += ["--token", self.token]
        elif token:
            cmd += ["--token", token]
        args = list(args)
        words = [a for a in args if a != "--json"]
        if SANITIZED and words[:2] == ["apps", "create"] and "--cpu-ms" not in args:
            args += ["--cpu-ms", str(SANITIZED_CPU_MS)]
        p = subprocess.run(cmd + args, input=stdin, capture_output=True, text=True,
                           timeout=TIMEOUT + 5, env=env)
        for value in self.never_log:
            expect(value not in p.stdout + p.stderr, "nanoctl printed a secret value")
        return p.returncode, p.stdout, p.stderr

    def ctl_json(self, *args, stdin=None):
        code, out, err = self.ctl("--json", *args, stdin=stdin)
        eq(code, 0, f"nanoctl {' '.join(args)} exit code (stderr: {err})")
        return json.loads(out)

    def get(self, path):
        status, value, _ = self.http("GET", path)
        eq(status, 200, f"GET {path} ({value})")
        return value


def with_env(env, start):
    """Runs start() with env added to this process's environment (a child it starts inherits
    it), then puts the environment back."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def make_certs(d):
    """A CA, a server certificate for localhost and a client certificate (edge-1), made with
    the openssl CLI in d; returns their paths by file name."""
    def run(*args):
        p = subprocess.run(["openssl"] + list(args), cwd=d, capture_output=True, text=True,
                           timeout=30)
        eq(p.returncode, 0, f"openssl {' '.join(args)}: {p.stderr}")
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=nano test CA")
    for name, cn in (("server", "localhost"), ("client", "edge-1")):
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}")
        ext = os.path.join(d, f"{name}.ext")
        with open(ext, "w") as f:
            f.write(f"subjectAltName=DNS:{cn}\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", ext)
    return {k: os.path.join(d, k) for k in ("ca.crt", "server.crt", "server.key", "client.crt",
                                             "client.key")}


class DataPlane(Server):
    """nano-dp --control-plane URL with one worker thread (so a module-level counter is one).
    cp: anything with url (its PUB URL) and token_file (the node token); cp_url may be set to
    a list of replicas before start."""

    def __init__(self, cp, node, env=None, extra=()):
        super().__init__("", name="unused.js")
        self.cp_url = cp.url
        self.token_file = cp.token_file
        self.node = node
        self.env = env or {}
        self.extra = list(extra)

    def command(self):
        return [BIN, "--control-plane", self.cp_url, "--node", self.node,
                "--node-token-file", self.token_file, "--listen", "127.0.0.1:0",
                "--status-listen", "127.0.0.1:0", "--threads", "1", *self.extra]

    def start(self, expect_listen=True):
        with self._log_lock:
            self._log = []
        return with_env(self.env, lambda: super(DataPlane, self).start(expect_listen))

    def get(self, host, path="/", timeout=TIMEOUT):
        return self.request("GET", path, host=host, timeout=timeout)

    def wait_body(self, host, want, timeout=TIMEOUT):
        """Waits until a request for host answers 200 with a body starting with want."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            r = self.get(host)
            last = (r.status, r.text)
            if r.status == 200 and r.text.startswith(want):
                return r.text
            time.sleep(0.05)
        raise AssertionError(f"{self.node}: {host} never answered {want!r} (last {last}); "
                             f"log:\n{self.log_without_access()[-3000:]}")

    def log_without_access(self):
        return "\n".join(l for l in self.log().splitlines() if " info access " not in l)

    def wait_ready(self, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.status("/readyz").status == 200:
                return
            time.sleep(0.05)
        raise AssertionError(f"{self.node}: /readyz never 200; log:\n{self.log()}")


def app_js(cp, name, source):
    d = scratch_dir()
    path = os.path.join(d, f"{name}.js")
    with open(path, "w") as f:
        f.write(source)
    return path



def run_cli(args, timeout=TIMEOUT):
    """Runs nano-dp with args to completion; returns (code, stdout, stderr)."""
    p = subprocess.run([BIN] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def build_request(method, path, headers=None, body=None, host="127.0.0.1"):
    hdrs = [("Host", host)]
    if body is not None:
        if isinstance(body, str):
            body = body.encode()
        hdrs.append(("Content-Length", str(len(body))))
    for k, v in (headers or {}).items() if isinstance(headers, dict) else (headers or []):
        hdrs.append((k, v))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs) + "\r\n"
    return head.encode() + (body or b"")


class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (lowercased name, value)
        self.body = body

    def header(self, name):
        vals = [v for k, v in self.headers if k == name.lower()]
        return vals[0] if vals else None

    def all(self, name):
        return [v for k, v in self.headers if k == name.lower()]

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return f"<{self.status} {self.headers} {self.body[:200]!r}>"


class Conn:
    """A raw HTTP/1.1 client connection with a response reader that follows the framing."""

    def __init__(self, port, timeout=TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed by the server")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response(self, head_only=False):
        status_line = self._line().decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise AssertionError(f"bad status line {status_line!r}")
        status = int(parts[1])
        headers = []
        while True:
            line = self._line()
            if not line:
                break
            k, v = line.decode("latin-1").split(":", 1)
            headers.append((k.strip().lower(), v.strip()))
        r = Response(status, parts[2] if len(parts) > 2 else "", headers, b"")
        if head_only or status in (204, 304) or 100 <= status < 200:
            return r
        te = r.header("transfer-encoding")
        cl = r.header("content-length")
        if te and "chunked" in te.lower():
            body = b""
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():
                        pass
                    break
                body += self._exact(size)
                self._exact(2)
            r.body = body
        elif cl is not None:
            r.body = self._exact(int(cl))
        else:
            while True:
                try:
                    self._fill()
                except EOFError:
                    break
            r.body, self.buf = self.buf, b""
        return r

    def is_closed(self, timeout=2.0):
        """True when the server closes the connection within timeout (no more bytes)."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1)
            return data == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def eq(actual, expected, what=""):
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


def run():
    global BIN, NANOCP, NANOCTL
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="path to nano-dp")
    ap.add_argument("--nanocp", help="nanocp, if not beside --bin")
    ap.add_argument("--nanoctl", help="nanoctl, if not beside --bin")
    ap.add_argument("--filter", default="", help="run only checks whose name contains this")
    opts = ap.parse_args()
    BIN = os.path.abspath(opts.bin)
    bindir = os.path.dirname(BIN)
    NANOCP = os.path.abspath(opts.nanocp or os.path.join(bindir, "nanocp"))
    NANOCTL = os.path.abspath(opts.nanoctl or os.path.join(bindir, "nanoctl"))
    passed = failed = 0
    for fn in _checks:
        if opts.filter not in fn.__name__:
            continue
        t0 = time.monotonic()
        error = None
        try:
            fn()
        except Exception:
            error = traceback.format_exc().rstrip()
        for server in list(_live):  # servers a failed check left running
            try:
                if isinstance(server, ControlPlane):
                    server.stop(graceful=False)
                else:
                    server.stop()
            except AssertionError as e:
                error = f"{error}\n{e}" if error else str(e)
        while _scratch:
            shutil.rmtree(_scratch.pop(), ignore_errors=True)
        if error is None:
            passed += 1
            print(f"ok   {fn.__name__} ({(time.monotonic() - t0) * 1000:.0f} ms)", flush=True)
        else:
            failed += 1
            print(f"FAIL {fn.__name__}", flush=True)
            for line in error.split("\n"):
                print(f"     {line}", flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)


# Never leave a server behind, whatever ends the test: an exception, Ctrl-C or SIGTERM.
# (No PR_SET_PDEATHSIG through preexec_fn: preexec_fn is unsafe with the log-pump threads
# running and could deadlock a child between fork and exec.)
def _kill_all():
    for s in list(_live):
        try:
            if s.proc and s.proc.poll() is None:
                s.proc.kill()
                s.proc.wait(timeout=TIMEOUT)
        except (OSError, subprocess.TimeoutExpired):
            pass
        if getattr(s, "dir", None):  # a Server's own directory (a ControlPlane has none)
            shutil.rmtree(s.dir, ignore_errors=True)
    for d in _scratch:
        shutil.rmtree(d, ignore_errors=True)


def _on_signal(*_):
    _kill_all()
    sys.exit(1)


atexit.register(_kill_all)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)
