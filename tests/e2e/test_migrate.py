#!/usr/bin/env python3
"""`nanocp migrate --from sqlite:PATH --to etcd://...` end to end (docs/nanocp.md, "Moving
between stores"): a SQLite data dir populated through a running nanocp (an app with hostnames,
a deployment, env and a secret) is copied while that nanocp still runs; nanocp then starts with
--store on the copy (same data dir: master key and tokens), and a data plane serves the app
with its env and its secret, at the same config seq. A second migrate into the same prefix is
refused and changes nothing.

Skipped (exit 77) when there is no etcd binary."""
import os
import subprocess
import sys

import nanotest
from nanotest import ControlPlane, DataPlane, app_js, check, eq, expect, run

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import etcd_cluster  # noqa: E402

APP = """
export default {
  fetch(request, env) {
    return new Response(`${env.GREETING} ${env.PASS}`);
  },
};
"""


class Cp(ControlPlane):
    """nanocp, with what DataPlane needs: its PUB URL and the node token file."""

    @property
    def url(self):
        return self.dataplane_urls()[0]

    @property
    def token_file(self):
        return os.path.join(self.data_dir, "node.token")


def migrate(*args):
    p = subprocess.run([nanotest.NANOCP, "migrate", *args], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


@check
def a_sqlite_store_moves_to_etcd_and_serves_the_same():
    with etcd_cluster.EtcdCluster(1) as cluster:
        src = ControlPlane().start()
        try:
            eq(src.ctl("apps", "create", "hello", "--host", "hello.test")[0], 0, "apps create")
            eq(src.ctl("apps", "deploy", "hello", app_js(src, "hello", APP))[0], 0, "deploy")
            eq(src.ctl("env", "set", "hello", "GREETING=hi")[0], 0, "env set")
            eq(src.ctl("secret", "set", "hello", "PASS", stdin="s3cret\n")[0], 0, "secret set")
            seq = src.get("/v1/version")["config_seq"]
            before = src.ctl_json("apps", "get", "hello")
            store = cluster.url(prefix="/moved")
            db = os.path.join(src.data_dir, "nanocp.db")
            # the source is in use: read in one read transaction while nanocp runs
            code, out, err = migrate("--from", f"sqlite:{db}", "--to", store)
            eq(code, 0, f"migrate: {out} {err}")
            expect("1 apps, 1 deployments" in out and "verified" in out, out)
            # again: the destination is not empty, refused with one line
            code, out, err = migrate("--from", f"sqlite:{db}", "--to", store)
            eq(code, 1, "a second migrate")
            lines = [x for x in err.splitlines() if x.startswith("nanocp:")]  # not the log
            expect(len(lines) == 1 and "not empty" in lines[0], err)
        finally:
            src.stop()
        cp = Cp(data_dir=src.data_dir, args=["--store", store]).start()
        dp = None
        try:
            eq(cp.get("/v1/version")["config_seq"], seq, "config seq on the new store")
            after = cp.ctl_json("apps", "get", "hello")
            eq(after, before, "apps get on the new store")
            dp = DataPlane(cp, "edge-1",
                           extra=["--control-plane-rpc", cp.dataplane_urls()[1]]).start()
            dp.wait_body("hello.test", "hi s3cret")
            # the new store takes changes, after the copied ones
            eq(cp.ctl("env", "set", "hello", "GREETING=hey")[0], 0, "env set on etcd")
            dp.wait_body("hello.test", "hey s3cret")
            eq(cp.get("/v1/version")["config_seq"], seq + 1, "the seq goes on")
        finally:
            if dp is not None:
                dp.stop()
            cp.stop()


def main():
    if etcd_cluster.etcd_binary() is None:
        print("skipped: no etcd binary (install etcd-server; scripts/bootstrap does)")
        sys.exit(etcd_cluster.SKIP)
    run()


if __name__ == "__main__":
    main()
