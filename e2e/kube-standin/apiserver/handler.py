"""HTTP: routing to the Api, watches, the /_standin/ control endpoints (fault injection)."""

import copy
import datetime
import json
import os
import re
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import yaml

from .errors import ApiError
from .protobuf import request_object
from .rbac import Rbac, request_verb
from .selectors import fields_match, labels_match, parse_field_selector, parse_label_selector
from .table import to_table


ROUTE = re.compile(r"^/(?:api/(?P<cv>v1)|apis/(?P<g>[^/]+)/(?P<v>[^/]+))"
                   r"(?:/namespaces/(?P<ns>[^/]+))?(?:/(?P<plural>[^/]+))?(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?$")


def make_handler(api):
    store = api.store

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            if os.environ.get("STANDIN_LOG"):
                now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")
                sys.stderr.write(f"standin: {now} " + (fmt % args) + "\n")

        def send_json(self, code, obj, ctype="application/json"):
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Audit-Id", str(uuid.uuid4()))
            self.end_headers()
            self.wfile.write(data)

        def body(self):
            return self._body

        def do_GET(self):
            self.dispatch("GET")

        def do_POST(self):
            self.dispatch("POST")

        def do_PUT(self):
            self.dispatch("PUT")

        def do_PATCH(self):
            self.dispatch("PATCH")

        def do_DELETE(self):
            self.dispatch("DELETE")

        def dispatch(self, method):
            # Always drain the body (DELETE carries DeleteOptions): a keep-alive connection
            # must not see it as the next request.
            n = int(self.headers.get("Content-Length") or 0)
            self._body = self.rfile.read(n) if n else b""
            url = urlsplit(self.path)
            q = parse_qs(url.query)
            try:
                if url.path.startswith("/_standin/"):
                    return self.control(url.path, method)
                self.who = api.rbac.identify(self.headers.get("Authorization")) if api.rbac else Rbac.ADMIN
                api.paused.wait()
                if api.fault["mode"] == "fail-watches" and q.get("watch", ["false"])[0] in ("true", "1"):
                    raise ApiError(api.fault["code"], "ServiceUnavailable", "injected watch failure (kube-standin fault injection)")
                if api.fault["mode"] == "fail":
                    raise ApiError(api.fault["code"], "InternalError" if api.fault["code"] == 500 else "ServiceUnavailable",
                                   "injected failure (kube-standin fault injection)")
                self.route(method, url.path, q)
            except ApiError as e:
                self.send_json(e.code, e.status())
            except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as e:
                self.send_json(400, ApiError(400, "BadRequest", f"the body of the request was in an unknown format: {e}").status())
            except BrokenPipeError:
                pass

        def control(self, path, method):
            if path == "/_standin/fault" and method == "POST":
                f = json.loads(self.body() or b"{}")
                api.fault.update(f)
                if f.get("mode") == "pause":
                    api.paused.clear()
                else:
                    api.paused.set()
                return self.send_json(200, api.fault)
            if path == "/_standin/stats":
                return self.send_json(200, api.stats)
            if path == "/_standin/rbac":
                if not api.rbac:
                    raise ApiError(404, "NotFound", "RBAC is not enforced: start the stand-in with --rbac")
                return self.send_json(200, api.rbac.report())
            if path == "/_standin/drop-watches" and method == "POST":
                with store.lock:
                    store.watch_epoch += 1
                    store.lock.notify_all()
                return self.send_json(200, {"dropped": True})
            raise ApiError(404, "NotFound", "unknown control endpoint")

        def route(self, method, path, q):
            if (api.rbac and "system:authenticated" not in self.who[1] and not ROUTE.match(path)
                    and path not in ("/version", "/healthz", "/readyz", "/livez")):
                # kube-apiserver's default roles: discovery for authenticated users only.
                raise ApiError(403, "Forbidden", f"forbidden: User \"{self.who[0]}\" cannot {method.lower()} path \"{path}\"")
            if path == "/version":
                return self.send_json(200, {"major": "1", "minor": "32", "gitVersion": "v1.32.0-kube-standin",
                                            "platform": "linux/amd64", "goVersion": "n/a", "compiler": "n/a",
                                            "buildDate": "2026-01-01T00:00:00Z", "gitCommit": "", "gitTreeState": "clean"})
            if path in ("/healthz", "/readyz", "/livez"):
                data = b"ok"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "2")
                self.end_headers()
                return self.wfile.write(data)
            if path == "/api":
                return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": self.server.server_address[0]}]})
            if path == "/apis":
                return self.send_json(200, api.groups())
            if path == "/openapi/v3":
                return self.send_json(200, api.openapi_index())
            if path.startswith("/openapi/v3/"):
                return self.send_json(200, api.openapi_gv(path[len("/openapi/v3/"):]))
            if path.startswith("/openapi/"):
                # OpenAPI v2 is not served: kubectl uses v3 (server-side field validation).
                raise ApiError(404, "NotFound", "OpenAPI v2 is not served by kube-standin; v3 is")
            m = ROUTE.match(path)
            if not m:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            group = m.group("g") or ""
            version = m.group("v") or m.group("cv")
            ns, plural, name, sub = m.group("ns"), m.group("plural"), m.group("name"), m.group("sub")
            if ns is not None and not group and plural is None:
                # /api/v1/namespaces/NAME is the Namespace itself, not a namespace's resource
                # (`kubectl label namespace`, `get namespace NAME`). Its status and finalize
                # subresources are not served.
                ns, plural, name = None, "namespaces", ns
            if plural is None:
                if ns is None:
                    return self.send_json(200, api.resource_list(group, version))
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            if ns is not None and plural is None:
                raise ApiError(404, "NotFound", "not found")
            res = api.find(group, version, plural)
            if res.namespaced and ns is None and name is not None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            if not res.namespaced and ns is not None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            eviction = res.key == ("", "pods") and sub == "eviction" and method == "POST"
            if sub and not eviction and (sub != "status" or not res.status_subresource):
                raise ApiError(404, "NotFound", f"the server could not find the requested resource ({sub})")
            ns = ns or ""
            if api.rbac:
                api.rbac.authorize(self.who, request_verb(method, name, q), res, ns, name, sub)
                if method == "PATCH" and "apply-patch" in (self.headers.get("Content-Type") or "") and not sub:
                    # Server-side apply that makes the object is authorized as create as well
                    # (API concepts, "Patch and apply").
                    with store.lock:
                        exists = (ns, name) in store.table(res)
                    if not exists:
                        api.rbac.authorize(self.who, "create", res, ns, name, sub)
            if eviction:
                # `kubectl drain`: an Eviction (no disruption budgets are weighed here) deletes
                # the Pod.
                api.delete(res, ns, name, {})
                return self.send_json(201, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                            "status": "Success"})
            if name is None:
                if method == "GET":
                    if q.get("watch", ["false"])[0] in ("true", "1"):
                        return self.watch(res, ns, q)
                    lst = api.list(res, ns, q)
                    if "as=Table" in (self.headers.get("Accept") or ""):
                        return self.send_json(200, to_table(res, lst["items"], lst["metadata"]["resourceVersion"]))
                    return self.send_json(200, lst)
                if method == "POST":
                    code, obj = api.create(res, ns, request_object(self.body(), self.headers.get("Content-Type")), q)
                    return self.send_json(code, obj)
                raise ApiError(405, "MethodNotAllowed", f"the server does not allow this method on the requested resource")
            if method == "GET":
                with store.lock:
                    obj = copy.deepcopy(api.get(res, ns, name))
                if "as=Table" in (self.headers.get("Accept") or ""):
                    return self.send_json(200, to_table(res, [obj], obj["metadata"]["resourceVersion"]))
                return self.send_json(200, obj)
            if method == "PUT":
                code, obj = api.update(res, ns, name, request_object(self.body(), self.headers.get("Content-Type")), q, sub or "")
                return self.send_json(code, obj)
            if method == "PATCH":
                code, obj = api.patch(res, ns, name, self.body(), self.headers.get("Content-Type", ""), q, sub or "")
                return self.send_json(code, obj)
            if method == "DELETE":
                code, obj = api.delete(res, ns, name, q)
                return self.send_json(code, obj)
            raise ApiError(405, "MethodNotAllowed", "method not allowed")

        def watch(self, res, ns, q):
            labels = parse_label_selector(q.get("labelSelector", [""])[0])
            fields = parse_field_selector(q.get("fieldSelector", [""])[0])
            bookmarks = q.get("allowWatchBookmarks", ["false"])[0] == "true"
            timeout = float(q.get("timeoutSeconds", ["1800"])[0])
            rv_text = q.get("resourceVersion", [""])[0]
            send_initial = q.get("sendInitialEvents", ["false"])[0] == "true"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def chunk(obj):
                data = (json.dumps(obj) + "\n").encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            def visible(obj):
                return ((not ns or obj["metadata"].get("namespace", "") == ns)
                        and labels_match(labels, obj["metadata"].get("labels")) and fields_match(fields, obj))

            deadline = time.time() + timeout
            try:
                with store.lock:
                    epoch = store.watch_epoch
                    if rv_text in ("", "0") or send_initial:
                        # "Any" / initial events: start with the current state as ADDED events.
                        start = store.rv
                        initial = [copy.deepcopy(o) for o in store.table(res).values() if visible(o)]
                    else:
                        start = int(rv_text)
                        initial = []
                        if start < store.first_rv:
                            api.stats["gone"] += 1
                            chunk({"type": "ERROR", "object": ApiError(410, "Expired", f"too old resource version: {start} ({store.first_rv})").status()})
                            self.wfile.write(b"0\r\n\r\n")
                            return
                for o in initial:
                    chunk({"type": "ADDED", "object": o})
                if send_initial:
                    chunk({"type": "BOOKMARK", "object": {"kind": res.kind, "apiVersion": res.api_version, "metadata": {
                        "resourceVersion": str(start), "annotations": {"k8s.io/initial-events-end": "true"}}}})
                last = start
                last_bookmark = time.time()
                while time.time() < deadline:
                    with store.lock:
                        pending = store.events_after(last, res.key)
                        if not pending:
                            store.lock.wait(timeout=min(1.0, max(0.0, deadline - time.time())))
                            pending = store.events_after(last, res.key)
                        if store.watch_epoch != epoch:
                            break
                        current = store.rv
                    for rv, _, kind, obj in pending:
                        last = rv
                        if visible(obj):
                            chunk({"type": kind, "object": obj})
                    if bookmarks and time.time() - last_bookmark > 1.0:
                        last = max(last, current) if not pending else last
                        chunk({"type": "BOOKMARK", "object": {"kind": res.kind, "apiVersion": res.api_version,
                                                              "metadata": {"resourceVersion": str(last)}}})
                        last_bookmark = time.time()
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler
