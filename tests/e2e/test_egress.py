#!/usr/bin/env python3
"""Egress policy of outbound fetch (docs/config.md "egress"): in multi-tenant modes an app
cannot reach loopback (nor link-local, the status port, nanocp) unless a policy allows it;
allowances and refusals are checked on every connection, redirects included, and on a
connection another app opened; a single APP.js reaches anything unless flags deny it."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from nanotest import ConfigServer, Server, check, eq, expect, run  # noqa: E402
from upstream import Upstream  # noqa: E402

APP = r"""
export default {
  async fetch(request) {
    const target = new URL(request.url).searchParams.get('url');
    try {
      const r = await fetch(target);
      return Response.json({ status: r.status, url: r.url, body: (await r.text()).slice(0, 200) });
    } catch (e) {
      return Response.json({ error: e.name, message: e.message });
    }
  },
};
"""


def get(s, host, url):
    from urllib.parse import quote
    r = s.request(path=f"/?url={quote(url, safe='')}", host=host, timeout=20)
    eq(r.status, 200, f"the app's answer for {url}")
    return json.loads(r.body)


def refused(d, what, contains="refused by the egress policy"):
    expect(d.get("error") == "TypeError" and contains in d.get("message", ""),
           f"{what}: expected a TypeError saying {contains!r}, got {d}")


def config(*apps, egress=None):
    cfg = {"apps": [dict(name=name, hostname=f"{name}.test", path="./app.js", **extra)
                    for name, extra in apps]}
    if egress is not None:
        cfg["egress"] = egress
    return cfg


@check
def loopback_is_refused_by_default_and_allowed_by_an_app_policy():
    with Upstream() as up, ConfigServer(config(
            ("closed", {}),
            ("open", {"egress": {"allow": ["127.0.0.1"]}}),
            ("port", {"egress": {"allow": [f"127.0.0.1:{up.port}"]}})),
            {"app.js": APP}, args=["--threads", "1"]) as s:
        d = get(s, "closed.test", up.url("/echo"))
        refused(d, "an app without a policy fetching loopback")
        expect("denied by default (loopback)" in d["message"], d["message"])
        refused(get(s, "closed.test", f"http://[::1]:{up.port}/echo"), "IPv6 loopback")
        refused(get(s, "closed.test", f"http://[::ffff:127.0.0.1]:{up.port}/echo"),
                "IPv4-mapped loopback")
        refused(get(s, "closed.test", "http://169.254.169.254/latest/meta-data/"),
                "the cloud metadata address")
        refused(get(s, "closed.test", f"http://0.0.0.0:{up.port}/echo"), "0.0.0.0")
        eq(get(s, "open.test", up.url("/echo")).get("status"), 200, "an app allowed 127.0.0.1")
        eq(get(s, "port.test", up.url("/echo")).get("status"), 200, "an app allowed that port")
        refused(get(s, "port.test", f"http://127.0.0.1:{s.status_port}/healthz"),
                "the status port for an app allowed only the upstream's port")
        # The app's log line names the app and the kind.
        s.wait_log(r"fetch\.failed app=closed request_id=[0-9a-f]+ error=denied", timeout=5)


@check
def a_connection_opened_for_one_app_is_not_reused_by_another_that_may_not_connect():
    # One worker thread: both apps share its connection pool. The allowed app leaves a
    # kept-alive connection to the upstream; the other must still be refused.
    with Upstream() as up, ConfigServer(config(
            ("open", {"egress": {"allow": ["127.0.0.1"]}}), ("closed", {})),
            {"app.js": APP}, args=["--threads", "1"]) as s:
        for _ in range(3):
            eq(get(s, "open.test", up.url("/echo")).get("status"), 200, "the allowed app")
        refused(get(s, "closed.test", up.url("/echo")), "the other app on the same connection")
        eq(get(s, "open.test", up.url("/echo")).get("status"), 200, "the allowed app again")


@check
def a_redirect_into_a_denied_range_is_refused():
    with Upstream() as up, Upstream("up2") as up2, ConfigServer(config(
            ("port", {"egress": {"allow": [f"127.0.0.1:{up.port}"]}})),
            {"app.js": APP}) as s:
        d = get(s, "port.test", up.url(f"/redirect/302/0?to={up2.url('/echo')}"))
        refused(d, "a redirect from an allowed port to a denied one")
        expect(str(up2.port) in d["message"], f"the refusal names the address: {d['message']}")
        eq(len(up2.requests), 0, "requests that reached the denied upstream")
        d = get(s, "port.test", up.url("/redirect/302/2"))
        eq(d.get("status"), 200, "redirects within the allowed port")


@check
def hostname_rules_and_precedence():
    with Upstream() as up, ConfigServer(config(
            ("names", {"egress": {"allow": ["127.0.0.1"], "deny": ["localhost"]}}),
            ("wild", {"egress": {"allow": ["*.localhost"]}}),
            ("nodedeny", {"egress": {"allow": ["127.0.0.1"]}}),
            egress={"deny": [f"127.0.0.1:{up.port}"]}),
            {"app.js": APP}) as s:
        # The node's deny beats the app's allow; the app's deny beats its allow.
        refused(get(s, "nodedeny.test", up.url("/echo")), "the node policy's deny")
        expect("node" in get(s, "nodedeny.test", up.url("/echo")).get("message", ""),
               "the refusal says it was the node's policy")
        refused(get(s, "names.test", f"http://localhost:{up.port}/echo"), "a denied hostname")
        # A wildcard matches subdomains only, never the apex.
        refused(get(s, "wild.test", f"http://localhost:{up.port}/echo"),
                "the apex of an allowed wildcard")


@check
def a_single_app_reaches_anything_unless_flags_deny_it():
    with Upstream() as up:
        with Server(APP) as s:
            eq(get(s, s.host, up.url("/echo")).get("status"), 200, "APP.js fetching loopback")
        with Server(APP, args=["--egress-deny", f"127.0.0.1:{up.port}"]) as s:
            refused(get(s, s.host, up.url("/echo")), "APP.js with --egress-deny")


@check
def a_bad_policy_is_refused_at_start():
    import subprocess
    import nanotest
    d = nanotest.scratch_dir()
    with open(os.path.join(d, "app.js"), "w") as f:
        f.write(APP)
    p = subprocess.run([nanotest.BIN, os.path.join(d, "app.js"), "--egress-allow", "10.0.0.0/33"],
                       capture_output=True, text=True, timeout=20)
    eq(p.returncode, 2, f"exit code for a bad --egress-allow (stderr: {p.stderr.strip()})")
    expect("10.0.0.0/33" in p.stderr, f"the error names the entry: {p.stderr.strip()}")


if __name__ == "__main__":
    run()
