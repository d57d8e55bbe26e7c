#!/usr/bin/env python3
"""kube-standin: a Kubernetes API stand-in for kube-vrrp's end-to-end tests.

TEST INFRASTRUCTURE, NOT SHIPPED. No real kube-apiserver can run on the machines this project
is built on, so this program serves the parts of the Kubernetes API that kube-rs (watcher,
reflector, Controller, Leases) and kubectl use, following the "API concepts" and "server-side
apply" documentation: discovery, a global resourceVersion, list+watch with 410 Gone and
bookmarks, label and field selectors, create/get/update/delete with optimistic concurrency,
merge / JSON / server-side apply patches with field managers, the status subresource,
metadata.generation, finalizers and deletionTimestamp, Status errors, schema defaulting and validation of custom
objects against the CRD's openAPIV3Schema and its CEL x-kubernetes-validations rules (through
cel-python), Table output from additionalPrinterColumns, and
fault injection (pause, fail, drop watches, restart from the state file).

Usage:
  standin.py --listen 203.0.113.1:6443 --crds DIR [--state FILE] [--kubeconfig FILE]

Plain HTTP. Without --rbac every request is allowed; with --rbac FILE (a rendered manifest)
requests are authenticated by ServiceAccount token and authorized by the manifest's RBAC
rules as kube-apiserver does (401, 403 with its message), and GET /_standin/rbac lists the
denied requests and the granted rules no request used. Fault injection: POST /_standin/fault with JSON
{"mode": "pause" | "fail" | "fail-watches" | "none", "code": 503}; POST /_standin/drop-watches
ends every open watch; GET /_standin/stats counts the 410 Gone answers given. Restart: kill the
process and start it again with the same --state file.
"""

import argparse
import base64
import copy
import json
import os
import re
import ssl
import subprocess
import sys
from http.server import ThreadingHTTPServer

import yaml

# The modules live in apiserver/ beside this file: importable from any working directory (and
# when Python does not put the script's directory first on sys.path, as with -P). They write
# no __pycache__ into the source tree, as the one-file script wrote none.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))

from apiserver.api import Api  # noqa: E402
from apiserver.cel import celpy  # noqa: E402
from apiserver.handler import make_handler  # noqa: E402
from apiserver.rbac import Rbac  # noqa: E402
from apiserver.resources import builtin_resources, crd_resources, load_crds  # noqa: E402
from apiserver.store import Store  # noqa: E402
# For a program that imports this file (e2e/tests/standin_kube.rs decodes protobuf bodies).
from apiserver.errors import ApiError  # noqa: E402,F401
from apiserver.protobuf import decode_protobuf  # noqa: E402,F401


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", default="127.0.0.1:6443")
    ap.add_argument("--crds", help="directory of CustomResourceDefinition YAML files")
    ap.add_argument("--state", help="state journal (JSON lines): replayed on start, appended on every change")
    ap.add_argument("--kubeconfig", help="write a kubeconfig for this server here")
    ap.add_argument("--rbac", help="a rendered manifest (e.g. helm template): enforce its Roles, ClusterRoles and "
                                   "bindings; each ServiceAccount's kubeconfig is written beside --kubeconfig as "
                                   "kubeconfig-NAMESPACE-NAME")
    args = ap.parse_args()
    host, port = args.listen.rsplit(":", 1)
    crds = load_crds(args.crds)
    if celpy is None and "x-kubernetes-validations" in json.dumps(crds):
        sys.exit("kube-standin: the CRDs carry CEL rules: install cel-python (pip install cel-python)")
    resources = builtin_resources()
    for crd in crds:
        resources += crd_resources(crd)
    store = Store(resources, args.state)
    api = Api(resources, store)
    if args.rbac:
        kept = {}
        if args.kubeconfig:
            folder = os.path.dirname(os.path.abspath(args.kubeconfig))
            for fn in os.listdir(folder):
                if fn.startswith("kubeconfig"):
                    try:
                        with open(os.path.join(folder, fn)) as f:
                            user = yaml.safe_load(f)["users"][0]
                        kept[user["name"]] = user["user"]["token"]
                    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError):
                        pass
        with open(args.rbac) as f:
            api.rbac = Rbac([d for d in yaml.safe_load_all(f) if isinstance(d, dict)], kept)
    # The CRDs themselves are visible as objects, as in a cluster.
    crd_res = api.find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    with store.lock:
        for crd in crds:
            if (("", crd["metadata"]["name"])) not in store.table(crd_res):
                obj = copy.deepcopy(crd)
                api.prepare_new(crd_res, obj, "", "kube-standin")
                api.write(crd_res, None, obj, "kube-standin", "Update")
        ns_res = api.find("", "v1", "namespaces")
        # The ServiceAccounts' namespaces exist from the start unless told otherwise
        # (STANDIN_ACCOUNT_NAMESPACES=0: a test that runs the install's own `kubectl create
        # namespace`).
        account_namespaces = (sorted({ns for ns, _ in api.rbac.accounts})
                              if api.rbac and os.environ.get("STANDIN_ACCOUNT_NAMESPACES") != "0"
                              else [])
        for n in ["default", "kube-system"] + account_namespaces:
            if ("", n) not in store.table(ns_res):
                obj = {"metadata": {"name": n}, "status": {"phase": "Active"}}
                api.prepare_new(ns_res, obj, "", "kube-standin")
                api.write(ns_res, None, obj, "kube-standin", "Update")
    server = ThreadingHTTPServer((host, int(port)), make_handler(api))
    server.daemon_threads = True
    url = f"http://{args.listen}"
    ca_data = None
    if api.rbac:
        # Tokens travel over TLS only (kubectl sends none over plain HTTP): a CA of its own and
        # a certificate for the listening address, kept across restarts like the tokens.
        folder = os.path.dirname(os.path.abspath(args.kubeconfig or args.state or "."))
        ca, cert, key = (os.path.join(folder, n) for n in ("standin-ca.crt", "standin.crt", "standin.key"))
        if not all(os.path.exists(p) for p in (ca, cert, key)):
            # A CA and a server certificate it signs (rustls refuses a CA as the server's).
            san = ("IP:" if re.fullmatch(r"[0-9.]+|.*:.*", host) else "DNS:") + host
            ca_key, csr, ext = (os.path.join(folder, n) for n in ("standin-ca.key", "standin.csr", "standin.ext"))
            with open(ext, "w") as f:
                f.write(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
            ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
            for argv in (["openssl", "req", "-x509", *ec, "-days", "2", "-subj", "/CN=kube-standin-ca",
                          "-keyout", ca_key, "-out", ca],
                         ["openssl", "req", *ec, "-subj", "/CN=kube-standin", "-keyout", key, "-out", csr],
                         ["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
                          "-days", "2", "-extfile", ext, "-out", cert]):
                subprocess.run(argv, check=True, capture_output=True)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        # The handshake happens in each connection's thread, not in the accepting one.
        server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        url = f"https://{args.listen}"
        with open(ca, "rb") as f:
            ca_data = base64.b64encode(f.read()).decode()

    def kubeconfig_for(user, token, namespace):
        return yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "standin",
            "clusters": [{"name": "standin", "cluster": {"server": url, **({"certificate-authority-data": ca_data} if ca_data else {})}}],
            "users": [{"name": user, "user": {"token": token} if token else {}}],
            "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": user, "namespace": namespace}}]},
            sort_keys=False)

    if args.kubeconfig and api.rbac:
        # Written first: the admin's kubeconfig appearing means every file is there.
        for (ns, name), token in api.rbac.account_tokens.items():
            path = os.path.join(os.path.dirname(os.path.abspath(args.kubeconfig)), f"kubeconfig-{ns}-{name}")
            with open(path, "w") as f:
                f.write(kubeconfig_for(name, token, ns))
    text = kubeconfig_for("standin", api.rbac.admin_token() if api.rbac else None, "default")
    if args.kubeconfig:
        with open(args.kubeconfig + ".tmp", "w") as f:
            f.write(text)
        os.replace(args.kubeconfig + ".tmp", args.kubeconfig)
    print(text, flush=True)
    print(f"kube-standin serving {url} ({len(resources)} resources)", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
