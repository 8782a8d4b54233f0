"""End-to-end tests of nanocp's admin API (issue 7): the real nanocp and the real nanoctl,
over real sockets on 127.0.0.1 with ephemeral ports (nanotest.ControlPlane; nanocp and
nanoctl are found beside --bin, the nano-dp binary).

What it checks, for every admin operation: the HTTP+JSON front end (http.client) and nanoctl
(msgpack over NNG) give the same results; both refuse a missing or wrong token; state
survives a restart; and a secret's value never appears in the database files.

Usage: test_admin_api.py --bin build/bin/nano-dp [--nanocp P] [--nanoctl P] [--filter S]
"""
import json
import os

import nanotest
from nanotest import ControlPlane, check, eq, expect, scratch_dir

SECRET_VALUE = "s3cr3t-VALUE-that-must-never-be-stored-in-clear-7f1c"
APP_V1 = "export default { fetch() { return new Response('v1') } }\n"
APP_V2 = "export default { fetch() { return new Response('v2') } }\n"


def start_cp():
    return ControlPlane(scratch_dir(), never_log=[SECRET_VALUE]).start()


TIME_KEYS = {"created_at", "updated_at", "last_seen", "at"}


def stable(v):
    """v without times that may tick between two reads."""
    if isinstance(v, dict):
        return {k: stable(x) for k, x in v.items() if k not in TIME_KEYS}
    if isinstance(v, list):
        return [stable(x) for x in v]
    return v


def same_both_ways(cp, path, *ctl_args):
    via_http = cp.get(path)
    via_ctl = cp.ctl_json(*ctl_args)
    eq(stable(via_ctl), stable(via_http), f"nanoctl {' '.join(ctl_args)} vs GET {path}")
    return via_http


# --- checks --------------------------------------------------------------------------------


@check
def tokens_are_required_on_both_front_ends():
    cp = start_cp()
    status, body, r = cp.http("GET", "/v1/apps", token=None)
    eq(status, 401, "HTTP without a token")
    eq(body["error"]["code"], "unauthorized", "error code")
    expect((r.getheader("WWW-Authenticate") or "").startswith("Bearer"), "WWW-Authenticate")
    status, body, _ = cp.http("GET", "/v1/apps", token="wrong-token")
    eq(status, 401, "HTTP with a wrong token")
    status, body, _ = cp.http("GET", "/healthz", token=None)
    eq(status, 200, "/healthz needs no token")
    code, out, err = cp.ctl("apps", "list", token=None)
    eq(code, 1, f"nanoctl without a token ({err})")
    expect("unauthorized" in err and err.count("\n") == 1, f"one-line error: {err!r}")
    code, out, err = cp.ctl("apps", "list", token="wrong-token")
    eq(code, 1, "nanoctl with a wrong token")
    expect("unauthorized" in err, err)
    # the token file works as --token-file
    code, out, err = cp.ctl("--token-file", os.path.join(cp.data_dir, "admin.token"),
                            "apps", "list", token=None)
    eq(code, 0, f"--token-file ({err})")
    cp.stop()


@check
def every_operation_gives_the_same_answer_both_ways():
    cp = start_cp()
    d = scratch_dir()
    # apps.create: one app through each front end
    status, web, _ = cp.http("POST", "/v1/apps", {"name": "web", "hostnames": ["web.test"],
                                                  "limits": {"cpu_ms": 20}})
    eq(status, 201, f"POST /v1/apps ({web})")
    api = cp.ctl_json("apps", "create", "api", "--host", "api.test", "--host", "*.api.test",
                      "--cpu-ms", "20")
    eq(api["name"], "api", "created app")
    eq(stable({k: v for k, v in api.items() if k != "name" and k != "hostnames"}),
       stable({k: v for k, v in web.items() if k != "name" and k != "hostnames"}),
       "apps created both ways have the same fields")
    # apps.list, apps.get
    same_both_ways(cp, "/v1/apps", "apps", "list")
    same_both_ways(cp, "/v1/apps/api", "apps", "status", "api")
    # apps.update
    status, upd, _ = cp.http("PATCH", "/v1/apps/web", {"hostnames": ["web.test", "www.test"]})
    eq(status, 200, f"PATCH ({upd})")
    upd2 = cp.ctl_json("apps", "update", "api", "--host", "api.test", "--memory-mb", "64")
    eq(upd["hostnames"], ["web.test", "www.test"], "updated hostnames")
    eq(upd2["limits"]["memory_mb"], 64, "updated limit")
    # apps.deploy: raw bytes over HTTP, files with nanoctl
    status, dep, _ = cp.http("PUT", "/v1/apps/web/code", APP_V1, content_type="text/javascript")
    eq(status, 201, f"PUT code ({dep})")
    main = os.path.join(d, "index.js")
    with open(main, "w") as f:
        f.write(APP_V1)
    dep2 = cp.ctl_json("apps", "deploy", "api", main)
    eq(dep2["sha256"], dep["sha256"], "same code, same bundle sha256 both ways")
    eq(dep["version"], 1, "first version")
    with open(main, "w") as f:
        f.write(APP_V2)
    cp.ctl_json("apps", "deploy", "web", main)
    status, dep3, _ = cp.http("PUT", "/v1/apps/api/code",
                              {"main": "index.js", "modules": {"index.js": APP_V2}})
    eq(status, 201, "bundle upload")
    same_both_ways(cp, "/v1/apps/web/deployments", "deployments", "web")
    # apps.rollback both ways
    status, rb, _ = cp.http("POST", "/v1/apps/web/rollback", {"version": 1})
    eq(status, 200, f"rollback ({rb})")
    rb2 = cp.ctl_json("rollback", "api", "1")
    eq(rb["sha256"], rb2["sha256"], "rolled back to the same code")
    same_both_ways(cp, "/v1/apps/api/deployments", "deployments", "api")
    # env.patch / env.get
    status, env, _ = cp.http("PATCH", "/v1/apps/web/env", {"A": "1", "FLAGS": {"beta": True}})
    eq(status, 200, f"env patch ({env})")
    env2 = cp.ctl_json("env", "set", "api", "A=1")
    cp.ctl_json("env", "set", "api", "--json", 'FLAGS={"beta":true}')
    envfile = os.path.join(d, ".env")
    with open(envfile, "w") as f:
        f.write("export B='two words'\nC=\"x\\ny\"\n")
    cp.ctl_json("env", "import", "api", envfile)
    cp.http("PATCH", "/v1/apps/web/env", {"B": "two words", "C": "x\ny"})
    eq(same_both_ways(cp, "/v1/apps/web/env", "env", "list", "web"),
       cp.ctl_json("env", "list", "api"), "web and api have the same env")
    cp.ctl_json("env", "unset", "api", "C")
    cp.http("PATCH", "/v1/apps/web/env", {"C": None})
    eq(cp.get("/v1/apps/web/env")["vars"], {"A": "1", "FLAGS": {"beta": True}, "B": "two words"},
       "vars after unset")
    del env2
    # secrets
    status, put, _ = cp.http("PUT", "/v1/apps/web/secrets/DB_PASS", SECRET_VALUE,
                             content_type="text/plain")
    eq(status, 200, f"secret put ({put})")
    cp.ctl_json("secret", "set", "api", "DB_PASS", stdin=SECRET_VALUE + "\n")
    lst = same_both_ways(cp, "/v1/apps/web/secrets", "secret", "list", "web")
    eq([s["name"] for s in lst["secrets"]], ["DB_PASS"], "secret names")
    expect(SECRET_VALUE not in json.dumps(cp.get("/v1/apps/api/env")), "env.get hides secrets")
    eq(cp.get("/v1/apps/api/env")["secrets"], ["DB_PASS"], "env.get lists secret names")
    code, out, err = cp.ctl("secret", "set", "api", "X", SECRET_VALUE)
    eq(code, 2, "a secret value on the command line is refused")
    # nodes, version, audit, drain
    same_both_ways(cp, "/v1/nodes", "nodes")
    same_both_ways(cp, "/v1/version", "version")
    same_both_ways(cp, "/v1/audit?limit=5", "audit", "--limit", "5")
    audit = cp.get("/v1/audit")["entries"]
    vias = {e.get("via") for e in audit}
    expect({"http", "rpc"} <= vias, f"audit entries from both front ends: {vias}")
    expect(SECRET_VALUE not in json.dumps(audit), "audit hides secret values")
    same_both_ways(cp, "/v1/apps/web/drain", "apps", "drain", "web")
    # errors have the same code both ways
    status, body, _ = cp.http("GET", "/v1/apps/ghost")
    eq((status, body["error"]["code"]), (404, "app_not_found"), "HTTP error")
    code, out, err = cp.ctl("apps", "status", "ghost")
    eq(code, 1, "nanoctl on a missing app")
    expect("app_not_found" in err and err.startswith("nanoctl: "), err)
    status, body, _ = cp.http("POST", "/v1/apps", '{"name": "x", "hostnames": [}',
                              content_type="application/json")
    eq(status, 400, "malformed JSON")
    expect("line 1, column" in body["error"]["message"], body)
    code, out, err = cp.ctl("apps", "create", "Bad Name", "--host", "x.test")
    eq(code, 2, f"invalid input via nanoctl ({err})")
    # secrets.delete and apps.remove both ways
    status, _, _ = cp.http("DELETE", "/v1/apps/web/secrets/DB_PASS")
    eq(status, 200, "secret delete")
    cp.ctl_json("secret", "rm", "api", "DB_PASS")
    eq(cp.get("/v1/apps/api/secrets")["secrets"], [], "no secrets left")
    status, rm, _ = cp.http("DELETE", "/v1/apps/web")
    eq(status, 202, f"DELETE app ({rm})")
    rm2 = cp.ctl_json("apps", "rm", "api")
    eq(rm2["state"], rm["state"], "remove state both ways")
    metrics = cp.http("GET", "/metrics")[1]
    expect('nanocp_http_requests_total{route="/v1/apps/{name}",method="DELETE",status="202"} 1'
           in metrics, metrics)
    cp.stop()


@check
def a_nul_byte_is_refused_on_both_front_ends():
    cp = start_cp()
    status, body, _ = cp.http("POST", "/v1/apps", {"name": "nul", "hostnames": ["nul.test"]})
    eq(status, 201, f"create: {body}")
    # HTTP: a secret whose value holds a NUL (before: accepted, then every snapshot failed).
    status, body, _ = cp.http("PUT", "/v1/apps/nul/secrets/K", b"abcd\x00efgh",
                              content_type="application/octet-stream")
    e = body.get("error", {})
    eq((status, e.get("code"), e.get("field")), (400, "invalid_field", "value"),
       f"NUL secret over HTTP: {body}")
    status, body, _ = cp.http("PUT", "/v1/apps/nul/secrets/K", b"",
                              content_type="application/octet-stream")
    eq((status, body.get("error", {}).get("field")), (400, "value"),
       f"empty secret over HTTP: {body}")
    # The binary admin API (nanoctl): a value with a NUL cannot be typed on a command line,
    # but a secret read from stdin can hold one.
    code, out, err = cp.ctl("secret", "set", "nul", "K", stdin="abcd\0efgh")
    expect(code != 0 and "NUL" in err, f"nanoctl secret set with a NUL: {code} {out} {err}")
    status, body, _ = cp.http("GET", "/v1/apps/nul/secrets")
    eq(body.get("secrets"), [], "nothing was stored")
    cp.stop()


@check
def raw_http_is_strict_and_a_slow_request_gets_408():
    """nanocp's admin HTTP front on raw sockets: Host, version and coding rules as nano-dp's;
    a head or body trickled slower than --http-body-min-rate after --http-request-timeout is
    a 408 (before: each byte reset a 60 s idle timer, so 512 such clients locked operators
    out); /metrics counts refusals by reason."""
    import re
    import time
    from nanotest import Conn
    cp = ControlPlane(scratch_dir(), args=["--http-request-timeout", "1s",
                                           "--http-body-min-rate", "1000"]).start()
    for raw, want, code in ((b"GET /healthz HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "bad_request"),
                            (b"GET /healthz HTTP/1.1\r\n\r\n", 400, "bad_request"),
                            (b"GET /healthz HTTP/2.0\r\nHost: cp\r\n\r\n", 505, "bad_request"),
                            (b"POST /v1/apps HTTP/1.1\r\nHost: cp\r\nTransfer-Encoding: xchunked"
                             b"\r\n\r\n", 501, "not_implemented"),
                            (b"POST /v1/apps HTTP/1.1\r\nHost: cp\r\nTransfer-Encoding: gzip, "
                             b"chunked\r\n\r\n0\r\n\r\n", 501, "not_implemented")):
        with Conn(cp.http_port) as c:
            c.send(raw)
            r = c.read_response()
            eq(r.status, want, f"{raw!r}: {r.text}")
            # the HTTP layer's own refusals are the API's JSON errors too
            eq(r.header("content-type"), "application/json", f"{raw!r}: content type")
            eq(json.loads(r.body)["error"]["code"], code, f"{raw!r}: {r.text}")
            expect(c.is_closed(), f"closed after {raw!r}")

    def trickle(first, piece):
        """Sends first, then piece every 0.2 s; returns (status line, seconds) of the answer."""
        with Conn(cp.http_port, timeout=10) as c:
            c.send(first)
            t0 = time.monotonic()
            c.sock.settimeout(0.2)
            while time.monotonic() - t0 < 8:
                try:
                    c.sock.sendall(piece)
                except OSError:
                    pass
                try:
                    data = c.sock.recv(4096)
                except OSError:
                    continue
                return data[:12], time.monotonic() - t0
        return None, None

    # A head: one header byte every 0.2 s, never idle.
    status, took = trickle(b"GET /v1/apps HTTP/1.1\r\nHost: cp\r\nX-Slow: ", b"a")
    eq(status, b"HTTP/1.1 408", "a trickled head")
    expect(took < 3, f"the 408 took {took} s")
    # A body: 20 bytes every 0.2 s (100 B/s), under the 1000 B/s minimum.
    status, took = trickle(b"POST /v1/apps HTTP/1.1\r\nHost: cp\r\nContent-Type: "
                           b"application/json\r\nAuthorization: Bearer " + cp.token.encode() +
                           b"\r\nContent-Length: 100000\r\n\r\n", b" " * 20)
    eq(status, b"HTTP/1.1 408", "a trickled body")
    expect(took < 3, f"the 408 took {took} s")
    # Without a token, a 60 MiB upload is refused from its head: the 401 comes while the
    # client has sent only the head, and the connection closes without the body being read.
    with Conn(cp.http_port) as c:
        c.send(b"PUT /v1/apps/big/code HTTP/1.1\r\nHost: cp\r\nExpect: 100-continue\r\n"
               b"Content-Length: %d\r\n\r\n" % (60 << 20))
        r = c.read_response()
        eq((r.status, json.loads(r.body)["error"]["code"]), (401, "unauthorized"), r.text)
        eq(r.header("connection"), "close", "the refusal closes the connection")
        expect(c.is_closed(), "closed after the refused upload")
    # A body that keeps the rate is served.
    body = json.dumps({"name": "steady", "hostnames": ["steady.test"]}).encode()
    body = body + b" " * (3000 - len(body))
    with Conn(cp.http_port, timeout=10) as c:
        c.send(b"POST /v1/apps HTTP/1.1\r\nHost: cp\r\nContent-Type: application/json\r\n"
               b"Authorization: Bearer " + cp.token.encode() + b"\r\nContent-Length: 3000\r\n\r\n")
        for i in range(0, 3000, 300):  # 3000 B/s for 1 s, then nothing left
            c.send(body[i:i + 300])
            time.sleep(0.1)
        eq(c.read_response().status, 201, "a body at the rate")
    status, text, _ = cp.http("GET", "/metrics")
    counts = dict(re.findall(r'nanocp_http_protocol_errors_total\{reason="(\w+)"\} (\d+)', text))
    eq({k: int(counts.get(k, -1)) for k in ("host", "version", "transfer_coding", "timeout")},
       {"host": 2, "version": 1, "transfer_coding": 2, "timeout": 2},
       f"refusals by reason: {counts}")
    cp.stop()


@check
def state_survives_a_restart_and_secrets_are_not_stored_in_clear():
    cp = start_cp()
    d = scratch_dir()
    main = os.path.join(d, "index.js")
    with open(main, "w") as f:
        f.write(APP_V1)
    cp.ctl_json("apps", "create", "keep", "--host", "keep.test")
    cp.ctl_json("apps", "deploy", "keep", main)
    cp.ctl_json("env", "set", "keep", "A=1")
    cp.ctl_json("secret", "set", "keep", "TOKEN", stdin=SECRET_VALUE)
    before = {p: cp.get(p) for p in ("/v1/apps", "/v1/apps/keep", "/v1/apps/keep/env",
                                     "/v1/apps/keep/secrets", "/v1/apps/keep/deployments")}
    token = cp.token
    cp.stop()
    # `strings`-style: the value's bytes appear in no file of the data dir (db, WAL, keys).
    needle = SECRET_VALUE.encode()
    for root, _, files in os.walk(cp.data_dir):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                eq(f.read().count(needle), 0, f"secret value in {name}")
    cp.start()
    eq(cp.token, token, "the admin token is kept")
    for p, v in before.items():
        eq(stable(cp.get(p)), stable(v), f"GET {p} after a restart")
    cp.stop()


@check
def app_egress_accepted_shown_and_refused():
    cp = start_cp()
    egress = {"allow": ["169.254.169.254:80", "*.internal"], "deny": ["10.0.0.0/8", "[::1]:8080"]}
    status, app, _ = cp.http("POST", "/v1/apps", {"name": "web", "hostnames": ["web.test"],
                                                  "egress": egress})
    eq(status, 201, f"POST /v1/apps with egress ({app})")
    eq(app["egress"], egress, "egress in the create result")
    eq(cp.get("/v1/apps/web")["egress"], egress, "egress in GET /v1/apps/NAME")
    same_both_ways(cp, "/v1/apps/web", "apps", "status", "web")
    # a bad CIDR: 400 naming the entry, and nothing of the update applied
    status, body, _ = cp.http("PATCH", "/v1/apps/web", {"hostnames": ["other.test"],
                                                        "egress": {"deny": ["10.0.0.0/33"]}})
    eq(status, 400, f"bad CIDR ({body})")
    eq(body["error"]["code"], "invalid_field", "error code")
    eq(body["error"]["field"], "egress", "error field")
    eq(body["error"]["message"],
       'egress.deny[0]: "10.0.0.0/33" is not an address, CIDR or hostname (optionally with :PORT)',
       "error message")
    app = cp.get("/v1/apps/web")
    eq((app["hostnames"], app["egress"]), (["web.test"], egress), "nothing half-applied")
    status, body, _ = cp.http("POST", "/v1/apps", {"name": "db", "hostnames": ["db.test"],
                                                   "egress": {"allow": ["x"], "block": []}})
    eq(status, 400, f"unknown key ({body})")
    # nanoctl: the same check before sending, then replace and remove
    code, out, err = cp.ctl("apps", "update", "web", "--egress-deny", "fd00::/129")
    eq(code, 2, f"nanoctl bad entry ({err})")
    expect('"fd00::/129" is not an address' in err, err)
    app = cp.ctl_json("apps", "update", "web", "--egress-deny", "fd00::/8,metadata.internal")
    eq(app["egress"], {"deny": ["fd00::/8", "metadata.internal"]}, "nanoctl replaced egress")
    app = cp.ctl_json("apps", "update", "web", "--no-egress")
    eq(app["egress"], None, "nanoctl removed egress")
    cp.stop()


@check
def apply_converges_and_is_idempotent():
    cp = start_cp()
    d = scratch_dir()
    with open(os.path.join(d, "a.js"), "w") as f:
        f.write(APP_V1)
    with open(os.path.join(d, "db"), "w") as f:
        f.write(SECRET_VALUE + "\n")
    cfg = {"apps": [
        {"name": "a", "hostnames": ["a.test"], "path": "./a.js", "env": {"X": "1", "N": 42},
         "secrets": {"DB": {"fromFile": "./db"}}, "required_env": ["DB"],
         "limits": {"cpu_ms": 30, "drain_timeout": "5s"},
         "egress": {"allow": ["127.0.0.1:6379"]}},
    ], "egress": {"deny": ["203.0.113.0/24"]}}
    path = os.path.join(d, "nano.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    cp.ctl_json("apps", "create", "stray", "--host", "stray.test")
    code, out, err = cp.ctl("apply", path)
    eq(code, 0, f"first apply ({err})")
    expect("1 created" in out and "1 deployed" in out, out)
    app = cp.get("/v1/apps/a")
    eq(app["limits"]["cpu_ms"], 30, "limit applied")
    eq(app["required_env"], ["DB"], "required_env applied")
    eq(app["egress"], {"allow": ["127.0.0.1:6379"]}, "egress applied")
    eq(cp.get("/v1/apps/a/env")["vars"], {"X": "1", "N": 42}, "vars applied")
    code, out, err = cp.ctl("apply", path)
    eq(code, 0, f"second apply ({err})")
    expect("0 created, 0 updated, 0 deployed, 0 removed, 1 unchanged" in out, out)
    cfg["apps"][0]["env"] = {"X": "2"}
    cfg["apps"][0]["hostnames"] = ["a.test", "b.test"]
    with open(path, "w") as f:
        json.dump(cfg, f)
    with open(os.path.join(d, "a.js"), "w") as f:
        f.write(APP_V2)
    summary = cp.ctl_json("apply", path, "--prune")["summary"]
    eq((summary["updated"], summary["deployed"], summary["removed"]), (1, 1, 1), "third apply")
    eq(cp.get("/v1/apps/a/env")["vars"], {"X": "2"}, "vars converged")
    eq(cp.get("/v1/apps/a")["active_version"], 2, "redeployed")
    code, out, err = cp.ctl("apply", os.path.join(d, "missing.json"))
    eq(code, 2, "a missing file is bad input")
    cp.stop()


def free_port():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ctl_tls(cp, url, *args, tls=(), timeout="3s"):
    """nanoctl against url with the TLS flags tls; returns (code, stdout, stderr)."""
    import subprocess
    cmd = [nanotest.NANOCTL, "--cp", url, "--token", cp.token, "--timeout", timeout, *tls,
           *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30,
                       env={"PATH": os.environ.get("PATH", ""), "HOME": cp.data_dir})
    return p.returncode, p.stdout, p.stderr


@check
def admin_apis_over_tls_only():
    """With --admin-tls-cert/-key nanocp's HTTP admin API is HTTPS only and its --rpc is
    tls+tcp://: nanoctl and an HTTPS client verify nanocp against the CA; without it, with
    another CA, or in plaintext, no call gets through; with --admin-tls-ca a client
    certificate is required too; SIGHUP reloads the HTTPS certificate (certificates made by
    the test)."""
    c = nanotest.make_certs(scratch_dir())
    other = nanotest.make_certs(scratch_dir())  # another CA, same names
    port = free_port()
    cp = ControlPlane(args=["--rpc", f"tls+tcp://127.0.0.1:{port}", "--admin-tls-cert",
                            c["server.crt"], "--admin-tls-key", c["server.key"],
                            "--http-request-timeout", "1s"]).start()
    expect(f"url=tls+tcp://127.0.0.1:{port} port={port} tls=on" in cp.log(), cp.log())
    url = f"tls+tcp://localhost:{port}"
    code, out, err = ctl_tls(cp, url, "--json", "version", tls=["--cacert", c["ca.crt"]])
    eq(code, 0, f"version over TLS: {out} {err}")
    expect("schema_version" in out, out)
    code, out, err = ctl_tls(cp, url, "env", "set", "nope", "A=1", tls=["--cacert", c["ca.crt"]])
    expect(code == 1 and "nope" in err, f"an op over TLS reaches the service: {code} {err}")
    # No CA: a usage error before any connection.
    code, _, err = ctl_tls(cp, url, "version")
    expect(code == 2 and "--cacert" in err, f"tls+tcp:// without --cacert: {code} {err}")
    # A server certificate another CA signed: refused, with what to check.
    code, _, err = ctl_tls(cp, url, "version", tls=["--cacert", other["ca.crt"]], timeout="1s")
    expect(code == 1 and "no TLS and NNG handshake" in err and "--cacert" in err,
           f"wrong CA: {code} {err}")
    # Plaintext to the TLS port gets nothing.
    code, _, err = ctl_tls(cp, f"tcp://127.0.0.1:{port}", "version", timeout="1s")
    expect(code == 1, f"plaintext to the TLS port: {code} {err}")
    # TLS files for a plaintext URL are refused, not ignored.
    code, _, err = ctl_tls(cp, f"tcp://127.0.0.1:{port}", "version", tls=["--cacert", c["ca.crt"]])
    expect(code == 2 and "tls+tcp://" in err, f"--cacert with tcp://: {code} {err}")

    # HTTPS: the same certificate; plaintext HTTP gets no answer.
    import http.client
    import signal
    import ssl
    import shutil

    def https(ca, cert=None, key=None, path="/v1/version"):
        ctx = ssl.create_default_context(cafile=ca)
        if cert:
            ctx.load_cert_chain(cert, key)
        conn = http.client.HTTPSConnection("localhost", cp.http_port, context=ctx, timeout=5)
        conn.request("GET", path, headers={"Authorization": f"Bearer {cp.token}"})
        r = conn.getresponse()
        body = r.read()
        conn.close()
        return r.status, body

    status, body = https(c["ca.crt"])
    eq(status, 200, f"GET /v1/version over HTTPS: {body}")
    expect(b"schema_version" in body, body)
    for _ in range(3):  # keep-alive and new connections alike
        eq(https(c["ca.crt"], path="/healthz")[0], 200, "healthz over HTTPS")
    try:
        https(other["ca.crt"])
        raise AssertionError("HTTPS with another CA's certificate was accepted")
    except ssl.SSLCertVerificationError:
        pass
    try:
        plain = http.client.HTTPConnection("127.0.0.1", cp.http_port, timeout=5)
        plain.request("GET", "/healthz")
        r = plain.getresponse()
        raise AssertionError(f"plaintext HTTP got an answer: {r.status}")
    except (http.client.HTTPException, ConnectionError, OSError) as e:
        expect(not isinstance(e, AssertionError), str(e))
    # A handshake that never finishes is cut at the request timeout (1 s here).
    import socket
    import time
    with socket.create_connection(("127.0.0.1", cp.http_port), timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01")  # the first bytes of a ClientHello, then nothing
        t0 = time.monotonic()
        got = sock.recv(100)
        took = time.monotonic() - t0
    expect(got == b"" and 0.5 < took < 3, f"stalled handshake: closed after {took:.2f} s ({got})")
    # SIGHUP: a renewed certificate (here: one from the other CA) is taken without a restart.
    tls_dir = scratch_dir()
    crt, key = os.path.join(tls_dir, "cp.crt"), os.path.join(tls_dir, "cp.key")
    cp.stop()
    shutil.copy(c["server.crt"], crt)
    shutil.copy(c["server.key"], key)
    cp = ControlPlane(args=["--rpc", f"tls+tcp://127.0.0.1:{port}", "--admin-tls-cert", crt,
                            "--admin-tls-key", key]).start()
    eq(https(c["ca.crt"])[0], 200, "before the renewal")
    shutil.copy(other["server.crt"], crt)
    shutil.copy(other["server.key"], key)
    cp.signal(signal.SIGHUP)
    cp.wait_log(r"nanocp\.tls_reloaded")
    eq(https(other["ca.crt"])[0], 200, "after SIGHUP: the renewed certificate")
    with open(key, "w") as f:
        f.write("not a key\n")
    cp.signal(signal.SIGHUP)
    cp.wait_log(r"nanocp\.tls_reload_failed .*--admin-tls-key")
    eq(https(other["ca.crt"])[0], 200, "a bad renewal keeps the certificate in use")
    cp.stop()

    # nanocp refuses to start with half a TLS setup, and TLS flags on a plaintext URL.
    import subprocess
    for args, why in ((["--rpc", f"tls+tcp://127.0.0.1:{port}"], "needs --admin-tls-cert"),
                      (["--admin-tls-cert", c["server.crt"], "--admin-tls-key", c["server.key"]],
                       "the admin APIs take no plaintext")):
        p = subprocess.run([nanotest.NANOCP, "--data-dir", scratch_dir(), *args],
                           capture_output=True, text=True, timeout=30)
        expect(p.returncode == 2 and why in p.stderr, f"{args}: {p.returncode} {p.stderr}")

    # Client certificates required.
    cp = ControlPlane(args=["--rpc", f"tls+tcp://127.0.0.1:{port}", "--admin-tls-cert",
                            c["server.crt"], "--admin-tls-key", c["server.key"],
                            "--admin-tls-ca", c["ca.crt"]]).start()
    expect("tls=client-certs" in cp.log(), cp.log())
    try:
        https(c["ca.crt"])
        raise AssertionError("HTTPS without a client certificate was accepted")
    except (ssl.SSLError, ConnectionError, http.client.HTTPException):
        pass
    eq(https(c["ca.crt"], c["client.crt"], c["client.key"])[0], 200,
       "HTTPS with the client certificate")
    code, _, err = ctl_tls(cp, url, "version", tls=["--cacert", c["ca.crt"]], timeout="1s")
    expect(code == 1, f"no client certificate: {code} {err}")
    code, _, err = ctl_tls(cp, url, "version", tls=["--cacert", c["ca.crt"], "--cert",
                                                   other["client.crt"], "--key",
                                                   other["client.key"]], timeout="1s")
    expect(code == 1, f"a client certificate another CA signed: {code} {err}")
    code, out, err = ctl_tls(cp, url, "--json", "version", tls=[
        "--cacert", c["ca.crt"], "--cert", c["client.crt"], "--key", c["client.key"]])
    eq(code, 0, f"with the client certificate: {out} {err}")
    code, _, err = ctl_tls(cp, url, "version", tls=["--cacert", c["ca.crt"], "--cert",
                                                   c["client.crt"]])
    expect(code == 2 and "go together" in err, f"--cert without --key: {code} {err}")
    cp.stop()


if __name__ == "__main__":
    nanotest.run()
