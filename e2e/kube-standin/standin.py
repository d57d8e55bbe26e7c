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
import datetime
import json
import os
import re
import ssl
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import yaml

try:  # CEL (x-kubernetes-validations) through cel-python; without it the rules are not run.
    import celpy
except ImportError:  # pragma: no cover
    celpy = None

# Watch events kept; older resourceVersions get 410 Gone. Small in tests to provoke it.
EVENT_WINDOW = int(os.environ.get("STANDIN_EVENT_WINDOW", "5000"))


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self):
        s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
             "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            s["details"] = self.details
        return s


# ---------------------------------------------------------------------------------------------
# Resource types


class Resource:
    """One served resource type (built-in or from a CRD)."""

    def __init__(self, group, version, kind, plural, singular, namespaced, short_names=(),
                 schema=None, status_subresource=False, printer_columns=(), list_kind=None,
                 verbs=None, categories=()):
        self.group, self.version, self.kind, self.plural = group, version, kind, plural
        self.singular, self.namespaced, self.short_names = singular, namespaced, list(short_names)
        self.schema, self.status_subresource = schema, status_subresource
        self.printer_columns = list(printer_columns)
        self.list_kind = list_kind or kind + "List"
        self.categories = list(categories)
        self.verbs = verbs or ["create", "delete", "deletecollection", "get", "list", "patch",
                               "update", "watch"]

    @property
    def api_version(self):
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self):
        return (self.group, self.plural)


def builtin_resources():
    r = Resource
    return [
        r("", "v1", "Namespace", "namespaces", "namespace", False, ["ns"]),
        r("", "v1", "Node", "nodes", "node", False, ["no"], status_subresource=True),
        r("", "v1", "Secret", "secrets", "secret", True),
        r("", "v1", "ConfigMap", "configmaps", "configmap", True, ["cm"]),
        r("", "v1", "Event", "events", "event", True, ["ev"]),
        r("", "v1", "Pod", "pods", "pod", True, ["po"], status_subresource=True),
        r("", "v1", "Service", "services", "service", True, ["svc"], status_subresource=True),
        r("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", True),
        r("events.k8s.io", "v1", "Event", "events", "event", True, ["ev"]),
        r("coordination.k8s.io", "v1", "Lease", "leases", "lease", True),
        r("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions",
          "customresourcedefinition", False, ["crd", "crds"]),
    ]


def crd_resources(crd):
    spec = crd["spec"]
    names = spec["names"]
    out = []
    for v in spec["versions"]:
        if not v.get("served", True):
            continue
        out.append(Resource(
            spec["group"], v["name"], names["kind"], names["plural"],
            names.get("singular", names["kind"].lower()), spec.get("scope") == "Namespaced",
            names.get("shortNames", []), (v.get("schema") or {}).get("openAPIV3Schema"),
            "status" in (v.get("subresources") or {}), v.get("additionalPrinterColumns", []),
            names.get("listKind"), categories=names.get("categories", [])))
    return out


# ---------------------------------------------------------------------------------------------
# Schema validation (structural schemas as the API server applies them to custom objects)

FORMATS = {
    "date-time": re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"),
    "ipv4": re.compile(r"^((25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(25[0-5]|2[0-4]\d|1?\d?\d)$"),
}


def apply_defaults(schema, value):
    """Structural defaulting, as the API server does before validation: a missing property
    with a `default` in the schema is set, inside every object that is present."""
    if not schema:
        return
    if isinstance(value, dict):
        for k, s in (schema.get("properties") or {}).items():
            if k not in value and isinstance(s, dict) and "default" in s:
                value[k] = copy.deepcopy(s["default"])
            if k in value:
                apply_defaults(s, value[k])
        if isinstance(schema.get("additionalProperties"), dict):
            for v in value.values():
                apply_defaults(schema["additionalProperties"], v)
    elif isinstance(value, list):
        for item in value:
            apply_defaults(schema.get("items"), item)


def validate(schema, value, path, errors, unknown):
    """Appends (field, reason, message) for every violation; prunes unknown fields and notes
    them in `unknown` (reported as errors under fieldValidation=Strict)."""
    if schema is None:
        return
    shown = path.lstrip(".")  # the API server writes "spec.size in body ..."
    if value is None:
        if not schema.get("nullable"):
            errors.append((path, "FieldValueRequired", "Required value"))
        return
    t = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, (int, str)) or isinstance(value, bool):
            errors.append((path, "FieldValueTypeInvalid",
                           f"Invalid value: \"{value}\": {path} in body must be of type int-or-string"))
        return
    ok = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
    }
    if t and not ok[t](value):
        got = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
               float: "number"}.get(type(value), type(value).__name__)
        errors.append((path, "FieldValueTypeInvalid",
                       f"Invalid value: \"{got}\": {path} in body must be of type {t}: \"{got}\""))
        return
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(json.dumps(e) for e in schema["enum"])
        errors.append((path, "FieldValueNotSupported",
                       f"Unsupported value: {json.dumps(value)}: supported values: {allowed}"))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and (value < schema["minimum"] or
                                    (schema.get("exclusiveMinimum") and value == schema["minimum"])):
            errors.append((path, "FieldValueInvalid",
                           f"Invalid value: {value}: {shown} in body should be greater than or equal to {schema['minimum']}"))
        if "maximum" in schema and (value > schema["maximum"] or
                                    (schema.get("exclusiveMaximum") and value == schema["maximum"])):
            errors.append((path, "FieldValueInvalid",
                           f"Invalid value: {value}: {shown} in body should be less than or equal to {schema['maximum']}"))
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append((path, "FieldValueInvalid",
                           f"Invalid value: \"{value}\": {path} in body should be at least {schema['minLength']} chars long"))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append((path, "FieldValueTooLong",
                           f"Too long: may not be more than {schema['maxLength']} bytes"))
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append((path, "FieldValueInvalid",
                           f"Invalid value: \"{value}\": {path} in body should match '{schema['pattern']}'"))
        fmt = FORMATS.get(schema.get("format", ""))
        if fmt and not fmt.match(value):
            errors.append((path, "FieldValueInvalid",
                           f"Invalid value: \"{value}\": {path} in body must be of type {schema['format']}: \"{value}\""))
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append((path, "FieldValueInvalid", f"Invalid value: {len(value)}: {shown} in body should have at least {schema['minItems']} items"))
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append((path, "FieldValueTooMany", f"Too many: {len(value)}: must have at most {schema['maxItems']} items"))
        for i, item in enumerate(value):
            validate(schema.get("items"), item, f"{path}[{i}]", errors, unknown)
        keys = schema.get("x-kubernetes-list-map-keys")
        if schema.get("x-kubernetes-list-type") == "map" and keys:
            seen = set()
            for i, item in enumerate(value):
                k = tuple(json.dumps(item.get(key)) for key in keys) if isinstance(item, dict) else None
                if k in seen:
                    errors.append((f"{path}[{i}]", "FieldValueDuplicate", f"Duplicate value: {json.dumps({kk: item.get(kk) for kk in keys})}"))
                seen.add(k)
    if isinstance(value, dict):
        props = schema.get("properties")
        for req in schema.get("required", []):
            if req not in value:
                errors.append((f"{path}.{req}", "FieldValueRequired", "Required value"))
        if props is not None:
            for k in list(value.keys()):
                sub = f"{path}.{k}"
                if k in props:
                    validate(props[k], value[k], sub, errors, unknown)
                elif schema.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in schema:
                    if isinstance(schema.get("additionalProperties"), dict):
                        validate(schema["additionalProperties"], value[k], sub, errors, unknown)
                else:
                    unknown.append(sub)
                    del value[k]
        elif isinstance(schema.get("additionalProperties"), dict):
            for k, v in value.items():
                validate(schema["additionalProperties"], v, f"{path}.{k}", errors, unknown)


# ---------------------------------------------------------------------------------------------
# CEL validation rules (x-kubernetes-validations)

_CEL_CACHE = {}


def _cel_functions():
    import ipaddress

    def is_ip(s):
        try:
            ipaddress.ip_address(str(s))
            return celpy.celtypes.BoolType(True)
        except ValueError:
            return celpy.celtypes.BoolType(False)

    def is_cidr(s):
        try:
            ipaddress.ip_network(str(s), strict=False)
            return celpy.celtypes.BoolType("/" in str(s))
        except ValueError:
            return celpy.celtypes.BoolType(False)

    # The Kubernetes CEL library's isIP / isCIDR, as plain functions.
    return {"isIP": is_ip, "isCIDR": is_cidr}


def cel_program(rule):
    prog = _CEL_CACHE.get(rule)
    if prog is None:
        env = celpy.Environment()
        prog = env.program(env.compile(rule), functions=_cel_functions())
        _CEL_CACHE[rule] = prog
    return prog


def uses_old_self(rule):
    return re.search(r"\boldSelf\b", rule) is not None


def type_name(v):
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
            float: "number"}.get(type(v), "object")


def cel_validate(schema, value, old, path, errors):
    """Runs every x-kubernetes-validations rule on the value it is attached to. Transition
    rules (those naming oldSelf) run only on updates where the old value exists."""
    if schema is None or value is None or celpy is None:
        return
    # Validation ratcheting (Kubernetes 1.30+, GA in 1.33): a value an update leaves unchanged
    # is not validated again. (It also spares re-running every spec rule on status writes.)
    if old is not None and value == old:
        return
    for v in schema.get("x-kubernetes-validations", []):
        rule = v["rule"]
        if uses_old_self(rule) and old is None:
            continue
        act = {"self": celpy.json_to_cel(value)}
        if old is not None:
            act["oldSelf"] = celpy.json_to_cel(old)
        try:
            ok = bool(cel_program(rule).evaluate(act))
        except Exception as e:  # evaluation errors reject, as the API server does
            errors.append((path, "FieldValueInvalid", f"Invalid value: \"{type_name(value)}\": rule evaluation error: {e}"))
            continue
        if not ok:
            field = path + v.get("fieldPath", "") if v.get("fieldPath") else path
            msg = v.get("message")
            if not msg and v.get("messageExpression"):
                try:  # as the API server: a failing messageExpression falls back to the rule
                    msg = str(cel_program(v["messageExpression"]).evaluate(act))
                except Exception:
                    msg = None
            msg = msg or f"failed rule: {rule}"
            reason = {"FieldValueForbidden": "FieldValueForbidden", "FieldValueRequired": "FieldValueRequired",
                      "FieldValueDuplicate": "FieldValueDuplicate"}.get(v.get("reason", ""), "FieldValueInvalid")
            errors.append((field, reason, f"Invalid value: \"{type_name(value)}\": {msg}"))
    if isinstance(value, dict):
        for k, sub in value.items():
            s = sub_schema(schema, k)
            o = old.get(k) if isinstance(old, dict) else None
            cel_validate(s, sub, o, f"{path}.{k}", errors)
    elif isinstance(value, list):
        items = schema.get("items")
        keys = list_keys(schema)
        for i, item in enumerate(value):
            o = None
            if isinstance(old, list):
                if keys and keys != "set" and isinstance(item, dict):
                    match = [x for x in old if isinstance(x, dict) and all(x.get(k) == item.get(k) for k in keys)]
                    o = match[0] if match else None
                elif i < len(old):
                    o = old[i] if not keys else None
            cel_validate(items, item, o, f"{path}[{i}]", errors)


# ---------------------------------------------------------------------------------------------
# Server-side apply: field sets, merging and ownership


def list_keys(schema):
    if schema and schema.get("type") == "array":
        if schema.get("x-kubernetes-list-type") == "map":
            return schema.get("x-kubernetes-list-map-keys") or []
        if schema.get("x-kubernetes-list-type") == "set":
            return "set"
    return None


def sub_schema(schema, key):
    if not schema:
        return None
    props = schema.get("properties") or {}
    if key in props:
        return props[key]
    ap = schema.get("additionalProperties")
    return ap if isinstance(ap, dict) else None


def default_list_map_keys(schema, value, path=""):
    """Sets each list-map entry's missing keys to their defaults; returns what cannot be."""
    out = []
    if not schema:
        return out
    if isinstance(value, dict):
        for k, v in value.items():
            sub = sub_schema(schema, k)
            out += default_list_map_keys(sub, v, f"{path}.{k}")
    elif isinstance(value, list):
        keys = list_keys(schema)
        items = schema.get("items") or {}
        for i, item in enumerate(value):
            if isinstance(item, dict) and keys and keys != "set":
                for k in keys:
                    if k not in item:
                        prop = (items.get("properties") or {}).get(k) or {}
                        if "default" in prop:
                            item[k] = copy.deepcopy(prop["default"])
                        else:
                            out.append(f"{path}: element {i}: associative list with keys has an element "
                                       f"that omits key field \"{k}\" (and doesn't have default value)")
            out += default_list_map_keys(items, item, f"{path}[{i}]")
    return out


def item_key(item, keys):
    return "k:" + json.dumps({k: item.get(k) for k in keys}, separators=(",", ":"), sort_keys=True)


def field_set(obj, schema, prefix=()):
    """The set of leaf paths an object sets (fieldsV1 semantics, flattened to tuples)."""
    out = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            p = prefix + ("f:" + k,)
            s = sub_schema(schema, k)
            if isinstance(v, dict) and v and (s is None or s.get("type") in (None, "object")) and not (s or {}).get("x-kubernetes-map-type") == "atomic":
                out.add(p)
                out |= field_set(v, s, p)
            elif isinstance(v, list) and list_keys(s) not in (None,):
                keys = list_keys(s)
                out.add(p)
                for item in v:
                    if keys == "set":
                        out.add(p + ("v:" + json.dumps(item, sort_keys=True),))
                    elif isinstance(item, dict):
                        ip = p + (item_key(item, keys),)
                        out.add(ip)
                        out |= field_set(item, (s or {}).get("items"), ip)
            else:
                out.add(p)
    return out


def get_path(obj, path, schema):
    cur, s = obj, schema
    for part in path:
        if part.startswith("f:"):
            if not isinstance(cur, dict) or part[2:] not in cur:
                return False, None
            s = sub_schema(s, part[2:])
            cur = cur[part[2:]]
        elif part.startswith("k:"):
            want = json.loads(part[2:])
            keys = list(want.keys())
            match = [i for i in (cur or []) if isinstance(i, dict) and all(i.get(k) == want[k] for k in keys)]
            if not match:
                return False, None
            cur, s = match[0], (s or {}).get("items")
        elif part.startswith("v:"):
            v = json.loads(part[2:])
            return (v in (cur or [])), v
    return True, cur


def remove_path(obj, path, schema):
    if not path:
        return
    parents = [(obj, schema)]
    cur, s = obj, schema
    for part in path[:-1]:
        ok, nxt = get_path(cur, (part,), s)
        if not ok:
            return
        if part.startswith("f:"):
            s = sub_schema(s, part[2:])
        else:
            s = (s or {}).get("items")
        cur = nxt
        parents.append((cur, s))
    last = path[-1]
    if last.startswith("f:") and isinstance(cur, dict):
        cur.pop(last[2:], None)
    elif last.startswith("k:") and isinstance(cur, list):
        want = json.loads(last[2:])
        cur[:] = [i for i in cur if not (isinstance(i, dict) and all(i.get(k) == want[k] for k in want))]
    elif last.startswith("v:") and isinstance(cur, list):
        v = json.loads(last[2:])
        cur[:] = [i for i in cur if i != v]


def merge_applied(live, applied, schema):
    """Merges an applied configuration into the live object (maps recursively, list-maps by
    key, sets by value, everything else replaced)."""
    if not isinstance(live, dict) or not isinstance(applied, dict):
        return copy.deepcopy(applied)
    out = dict(live)
    for k, v in applied.items():
        s = sub_schema(schema, k)
        keys = list_keys(s)
        if isinstance(v, dict) and isinstance(out.get(k), dict) and (s or {}).get("x-kubernetes-map-type") != "atomic":
            out[k] = merge_applied(out[k], v, s)
        elif isinstance(v, list) and isinstance(out.get(k), list) and keys:
            cur = list(out[k])
            for item in v:
                if keys == "set":
                    if item not in cur:
                        cur.append(item)
                    continue
                idx = [i for i, c in enumerate(cur) if isinstance(c, dict) and all(c.get(kk) == item.get(kk) for kk in keys)]
                if idx:
                    cur[idx[0]] = merge_applied(cur[idx[0]], item, (s or {}).get("items"))
                else:
                    cur.append(copy.deepcopy(item))
            out[k] = cur
        else:
            out[k] = copy.deepcopy(v)
    return out


def encode_fields(paths):
    tree = {}
    for p in sorted(paths):
        node = tree
        for part in p:
            node = node.setdefault(part, {})
    def fix(n):
        return {k: fix(v) for k, v in n.items()} if n else {}
    def mark(n):
        # fieldsV1 marks a node that is itself owned with ".": {}
        return n
    return mark(fix(tree))


def decode_fields(fields, prefix=()):
    out = set()
    for k, v in (fields or {}).items():
        if k == ".":
            continue
        p = prefix + (k,)
        out.add(p)
        out |= decode_fields(v, p)
    return out


IGNORED_FOR_OWNERSHIP = {("f:apiVersion",), ("f:kind",), ("f:metadata",), ("f:metadata", "f:name"),
                         ("f:metadata", "f:namespace"), ("f:metadata", "f:resourceVersion"),
                         ("f:metadata", "f:uid"), ("f:metadata", "f:creationTimestamp"),
                         ("f:metadata", "f:generation"), ("f:metadata", "f:managedFields")}


# ---------------------------------------------------------------------------------------------
# Label and field selectors


def parse_label_selector(text):
    reqs = []
    if not text:
        return reqs
    for part in re.split(r",(?![^()]*\))", text):
        part = part.strip()
        m = re.match(r"^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$", part)
        if m:
            reqs.append((m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",") if v.strip()}))
        elif "!=" in part:
            k, v = part.split("!=", 1)
            reqs.append((k.strip(), "!=", v.strip()))
        elif "==" in part or "=" in part:
            k, v = re.split(r"==?", part, maxsplit=1)
            reqs.append((k.strip(), "=", v.strip()))
        elif part.startswith("!"):
            reqs.append((part[1:].strip(), "!exists", None))
        else:
            reqs.append((part, "exists", None))
    return reqs


def labels_match(reqs, labels):
    labels = labels or {}
    for k, op, v in reqs:
        if op == "=" and labels.get(k) != v:
            return False
        if op == "!=" and labels.get(k) == v:
            return False
        if op == "in" and labels.get(k) not in v:
            return False
        if op == "notin" and labels.get(k) in v:
            return False
        if op == "exists" and k not in labels:
            return False
        if op == "!exists" and k in labels:
            return False
    return True


def parse_field_selector(text):
    reqs = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        if "!=" in part:
            k, v = part.split("!=", 1)
            reqs.append((k, "!=", v))
        else:
            k, v = re.split(r"==?", part, maxsplit=1)
            reqs.append((k, "=", v))
    for k, _, _ in reqs:
        if k not in ("metadata.name", "metadata.namespace") and not k.startswith(("involvedObject.", "regarding.")) \
                and k not in ("reason", "type", "source", "reportingController"):
            raise ApiError(400, "BadRequest", f"field label not supported: {k}")
    return reqs


def fields_match(reqs, obj):
    for k, op, v in reqs:
        actual = obj
        for part in k.split("."):
            actual = actual.get(part, "") if isinstance(actual, dict) else ""
        if k == "source" and isinstance(actual, dict):
            actual = actual.get("component", "")
        if (op == "=") != ((actual or "") == v):
            return False
    return True


# Events: the API server keeps one store and serves it as core/v1 and as events.k8s.io/v1,
# converting the fields (kubectl describe reads core Events by involvedObject).
def event_as_core(e):
    if e.get("apiVersion") == "v1":
        return e
    out = {"apiVersion": "v1", "kind": "Event", "metadata": e.get("metadata", {}),
           "involvedObject": e.get("regarding", {}), "reason": e.get("reason", ""),
           "message": e.get("note", ""), "type": e.get("type", "Normal"),
           "source": {"component": e.get("reportingController", "")},
           "reportingComponent": e.get("reportingController", ""),
           "reportingInstance": e.get("reportingInstance", ""),
           "eventTime": e.get("eventTime"), "action": e.get("action", ""),
           "count": (e.get("series") or {}).get("count", 1),
           "firstTimestamp": e.get("deprecatedFirstTimestamp") or e.get("eventTime"),
           "lastTimestamp": (e.get("series") or {}).get("lastObservedTime") or e.get("eventTime")}
    return out


def event_as_events_v1(e):
    if e.get("apiVersion") == "events.k8s.io/v1":
        return e
    return {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": e.get("metadata", {}),
            "regarding": e.get("involvedObject", {}), "reason": e.get("reason", ""),
            "note": e.get("message", ""), "type": e.get("type", "Normal"),
            "reportingController": (e.get("source") or {}).get("component", ""),
            "reportingInstance": e.get("reportingInstance", ""),
            "eventTime": e.get("eventTime") or e.get("lastTimestamp"), "action": e.get("action", "")}


# ---------------------------------------------------------------------------------------------
# Storage


class Store:
    def __init__(self, resources, state_file):
        self.lock = threading.Condition()
        self.resources = resources
        self.state_file = state_file
        self.rv = 0
        self.objects = {}  # (group, plural) -> {(namespace, name): obj}
        self.events = []  # (rv, (group, plural), type, obj)
        self.watch_epoch = 0  # bumped to drop every watch
        # The state file is a journal: one JSON line per change ({"rv", "key", "id", "obj"},
        # obj null for a deletion), appended under the lock, so a write costs one object, not
        # the whole store (as etcd writes one key). Replayed on start.
        if state_file and os.path.exists(state_file):
            with open(state_file) as f:
                for line in f:
                    if not line.strip():
                        continue
                    try:
                        change = json.loads(line)
                    except ValueError:
                        break  # a torn last line from a kill mid-write
                    self.rv = max(self.rv, change["rv"])
                    g, p = change["key"].split("/", 1)
                    table = self.objects.setdefault((g, p), {})
                    ident = tuple(change["id"])
                    if change["obj"] is None:
                        table.pop(ident, None)
                    else:
                        table[ident] = change["obj"]
        self.first_rv = self.rv  # watches from before a restart are too old
        self.journal = open(state_file, "a") if state_file else None

    def save(self, res, obj, deleted):
        if self.journal is None:
            return
        md = obj["metadata"]
        change = {"rv": self.rv, "key": f"{res.key[0]}/{res.key[1]}",
                  "id": [md.get("namespace", ""), md["name"]], "obj": None if deleted else obj}
        self.journal.write(json.dumps(change) + "\n")
        self.journal.flush()

    def bump(self):
        self.rv += 1
        return str(self.rv)

    def record(self, res, kind, obj):
        self.events.append((self.rv, res.key, kind, copy.deepcopy(obj)))
        if len(self.events) > EVENT_WINDOW:
            drop = len(self.events) - EVENT_WINDOW
            self.first_rv = self.events[drop - 1][0]
            del self.events[:drop]
        self.save(res, obj, kind == "DELETED")
        self.lock.notify_all()

    def events_after(self, last, key):
        """Events newer than `last` for resource `key` (the list is in rv order: scan back)."""
        i = len(self.events)
        while i > 0 and self.events[i - 1][0] > last:
            i -= 1
        return [e for e in self.events[i:] if e[1] == key]

    def table(self, res):
        return self.objects.setdefault(res.key, {})


# ---------------------------------------------------------------------------------------------
# HTTP


class Api:
    def __init__(self, resources, store):
        self.resources = resources
        self.store = store
        self.fault = {"mode": "none", "code": 503}
        self.rbac = None
        self.stats = {"gone": 0, "watches": 0}
        self.paused = threading.Event()
        self.paused.set()

    def find(self, group, version, plural):
        for r in self.resources:
            if r.group == group and r.version == version and r.plural == plural:
                return r
        raise ApiError(404, "NotFound", f"the server could not find the requested resource")

    # -- discovery --------------------------------------------------------------------------

    def resource_list(self, group, version):
        rs = [r for r in self.resources if r.group == group and r.version == version]
        if not rs:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        out = []
        for r in rs:
            out.append({"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                        "kind": r.kind, "verbs": r.verbs, "shortNames": r.short_names,
                        "categories": r.categories, "storageVersionHash": ""})
            if r.status_subresource:
                out.append({"name": r.plural + "/status", "singularName": "", "namespaced": r.namespaced,
                            "kind": r.kind, "verbs": ["get", "patch", "update"]})
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version, "resources": out}

    def groups(self):
        groups = {}
        for r in self.resources:
            if r.group:
                groups.setdefault(r.group, [])
                if r.version not in groups[r.group]:
                    groups[r.group].append(r.version)
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
             "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]}}
            for g, vs in sorted(groups.items())]}

    # -- OpenAPI v3 (what kubectl reads: field validation support, explain) ------------------

    def group_versions(self):
        gvs = []
        for r in self.resources:
            gv = f"apis/{r.group}/{r.version}" if r.group else "api/v1"
            if gv not in gvs:
                gvs.append(gv)
        return gvs

    def openapi_index(self):
        return {"paths": {gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash=standin{self.store.first_rv}"}
                          for gv in self.group_versions()}}

    def openapi_gv(self, gv):
        if gv not in self.group_versions():
            raise ApiError(404, "NotFound", f"no OpenAPI document for {gv}")
        group, version = ("", "v1") if gv == "api/v1" else tuple(gv.split("/")[1:3])
        query = [{"name": n, "in": "query", "schema": {"type": "string"}, "uniqueItems": True}
                 for n in ("fieldValidation", "fieldManager", "dryRun", "force")]
        paths, schemas = {}, {}
        for r in self.resources:
            if (r.group, r.version) != (group, version):
                continue
            gvk = {"group": r.group, "version": r.version, "kind": r.kind}
            rev = ".".join(reversed(r.group.split("."))) if r.group else "io.k8s.api.core"
            sname = f"{rev}.{r.version}.{r.kind}"
            schema = copy.deepcopy(r.schema) if r.schema else {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
            schema.setdefault("properties", {})
            schema["properties"].setdefault("apiVersion", {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."})
            schema["properties"].setdefault("kind", {"type": "string", "description": "Kind is a string value representing the REST resource this object represents."})
            schema["properties"].setdefault("metadata", {"type": "object", "description": "Standard object's metadata.", "x-kubernetes-preserve-unknown-fields": True})
            schema["x-kubernetes-group-version-kind"] = [gvk]
            schemas[sname] = schema
            ref = {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{sname}"}}}}
            op = lambda verb, action: {"operationId": f"{verb}{r.kind}", "parameters": query,
                                       "responses": {"200": {"description": "OK", **ref}},
                                       "x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk}
            base = f"/{gv}" + ("/namespaces/{namespace}" if r.namespaced else "") + f"/{r.plural}"
            paths[base] = {"get": op("list", "list"), "post": op("create", "post")}
            paths[base + "/{name}"] = {"get": op("read", "get"), "put": op("replace", "put"),
                                       "patch": op("patch", "patch"), "delete": op("delete", "delete")}
            if r.status_subresource:
                paths[base + "/{name}/status"] = {"get": op("readStatus", "get"), "put": op("replaceStatus", "put"),
                                                  "patch": op("patchStatus", "patch")}
        return {"openapi": "3.0.0", "info": {"title": "kube-standin", "version": "v1.32.0"},
                "paths": paths, "components": {"schemas": schemas}}

    # -- object helpers -----------------------------------------------------------------------

    def prepare_new(self, res, obj, namespace, manager, op="Update"):
        md = obj.setdefault("metadata", {})
        if res.namespaced:
            md["namespace"] = namespace
        else:
            md.pop("namespace", None)
        if not md.get("name"):
            if md.get("generateName"):
                md["name"] = md["generateName"] + uuid.uuid4().hex[:5]
            else:
                raise ApiError(422, "Invalid", f"{res.kind} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                               {"kind": res.plural, "causes": [{"reason": "FieldValueRequired", "message": "Required value: name or generateName is required", "field": "metadata.name"}]})
        obj["apiVersion"], obj["kind"] = res.api_version, res.kind
        md["uid"] = str(uuid.uuid4())
        md["creationTimestamp"] = now_rfc3339()
        md["generation"] = 1
        md.pop("resourceVersion", None)
        md.pop("deletionTimestamp", None)
        if res.status_subresource and res.schema is not None:
            obj.pop("status", None)

    def check(self, res, obj, strict, name, old=None):
        if res.schema is None:
            return
        errors, unknown = [], []
        body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
        apply_defaults(res.schema, body)
        validate({**res.schema, "properties": {k: v for k, v in (res.schema.get("properties") or {}).items() if k not in ("apiVersion", "kind", "metadata")}},
                 body, "", errors, unknown)
        for k in list(obj.keys()):
            if k not in ("apiVersion", "kind", "metadata") and k not in body:
                del obj[k]
        for k, v in body.items():
            obj[k] = v
        if not errors:
            root = {**res.schema, "properties": {k: v for k, v in (res.schema.get("properties") or {}).items()
                                                 if k not in ("apiVersion", "kind", "metadata")}}
            old_body = {k: v for k, v in old.items() if k not in ("apiVersion", "kind", "metadata")} if old else None
            cel_validate(root, body, old_body, "", errors)
        if strict and unknown:
            fields = ", ".join(f'unknown field "{u.lstrip(".")}"' for u in unknown)
            raise ApiError(400, "BadRequest", f"{res.kind} in version \"{res.version}\" cannot be handled as a "
                           f"{res.kind}: strict decoding error: {fields}")
        if errors:
            causes = [{"reason": r, "message": m, "field": f.lstrip(".")} for f, r, m in errors]
            msg = "; ".join(f"{c['field']}: {c['message']}" for c in causes)
            if len(causes) > 1:
                msg = "[" + ", ".join(f"{c['field']}: {c['message']}" for c in causes) + "]"
            raise ApiError(422, "Invalid", f"{res.kind}.{res.group} \"{name}\" is invalid: {msg}",
                           {"name": name, "group": res.group, "kind": res.kind, "causes": causes})

    def set_managed(self, obj, manager, op, fields, subresource=""):
        mf = [m for m in obj["metadata"].get("managedFields", [])
              if not (m.get("manager") == manager and m.get("operation") == op and m.get("subresource", "") == subresource)]
        fields = {f for f in fields if f not in IGNORED_FOR_OWNERSHIP}
        if fields:
            entry = {"manager": manager, "operation": op, "apiVersion": obj["apiVersion"],
                     "time": now_rfc3339(), "fieldsType": "FieldsV1", "fieldsV1": encode_fields(fields)}
            if subresource:
                entry["subresource"] = subresource
            mf.append(entry)
        obj["metadata"]["managedFields"] = mf

    def take_fields(self, obj, fields, except_manager=None):
        """Removes `fields` from every other manager's set (they were overwritten)."""
        for m in obj["metadata"].get("managedFields", []):
            if m.get("manager") == except_manager and m.get("operation") == "Apply":
                continue
            owned = decode_fields(m.get("fieldsV1"))
            left = owned - fields
            if left != owned:
                m["fieldsV1"] = encode_fields(left)
        obj["metadata"]["managedFields"] = [m for m in obj["metadata"].get("managedFields", []) if m.get("fieldsV1")]

    def changed_fields(self, old, new, schema):
        a, b = field_set(old or {}, schema), field_set(new, schema)
        changed = set()
        for p in b:
            ok1, v1 = get_path(old or {}, p, schema)
            ok2, v2 = get_path(new, p, schema)
            if not ok1 or (v1 != v2 and not isinstance(v2, (dict, list))):
                changed.add(p)
        return changed | (b - a)

    # -- writes ---------------------------------------------------------------------------------

    def write(self, res, old, new, manager, op, subresource=""):
        """Common tail of every write: generation, ownership, resourceVersion, event."""
        st = self.store
        md = new["metadata"]
        if old is not None:
            for k in ("uid", "creationTimestamp", "namespace", "name"):
                if k in old["metadata"]:
                    md[k] = old["metadata"][k]
            if "deletionTimestamp" in old["metadata"]:
                md["deletionTimestamp"] = old["metadata"]["deletionTimestamp"]
            spec_old = {k: v for k, v in old.items() if k not in ("metadata", "status")}
            spec_new = {k: v for k, v in new.items() if k not in ("metadata", "status")}
            md["generation"] = old["metadata"].get("generation", 1) + (0 if spec_old == spec_new else 1)
        if op != "Apply":
            changed = self.changed_fields(old, new, res.schema)
            if changed:
                self.take_fields(new, changed)
                prev = set()
                for m in new["metadata"].get("managedFields", []):
                    if m.get("manager") == manager and m.get("operation") == op and m.get("subresource", "") == subresource:
                        prev = decode_fields(m.get("fieldsV1"))
                self.set_managed(new, manager, op, prev | changed, subresource)
        md["resourceVersion"] = st.bump()
        table = st.table(res)
        key = (md.get("namespace", ""), md["name"])
        if md.get("deletionTimestamp") and not md.get("finalizers"):
            table.pop(key, None)
            st.record(res, "DELETED", new)
        else:
            table[key] = new
            st.record(res, "ADDED" if old is None else "MODIFIED", new)
        return new

    def create(self, res, namespace, body, q):
        st = self.store
        manager = q.get("fieldManager", ["kubectl"])[0]
        with st.lock:
            obj = copy.deepcopy(body)
            self.prepare_new(res, obj, namespace, manager)
            self.check(res, obj, q.get("fieldValidation", [""])[0] == "Strict", obj["metadata"]["name"])
            key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            if key in st.table(res):
                raise ApiError(409, "AlreadyExists", f"{res.plural}.{res.group or 'core'} \"{key[1]}\" already exists".replace(".core", ""),
                               {"name": key[1], "group": res.group, "kind": res.plural})
            if q.get("dryRun"):
                return 201, obj
            return 201, self.write(res, None, obj, manager, "Update")

    def get(self, res, namespace, name):
        obj = self.store.table(res).get((namespace if res.namespaced else "", name))
        if obj is None:
            raise ApiError(404, "NotFound", f"{res.plural}{'.' + res.group if res.group else ''} \"{name}\" not found",
                           {"name": name, "group": res.group, "kind": res.plural})
        return obj

    def update(self, res, namespace, name, body, q, subresource=""):
        st = self.store
        manager = q.get("fieldManager", ["kubectl"])[0]
        with st.lock:
            old = self.get(res, namespace, name)
            obj = copy.deepcopy(body)
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", f"Operation cannot be fulfilled on {res.plural}{'.' + res.group if res.group else ''} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                               {"name": name, "group": res.group, "kind": res.plural})
            new = self.merge_subresource(res, old, obj, subresource)
            new["apiVersion"], new["kind"] = res.api_version, res.kind
            new["metadata"].setdefault("managedFields", old["metadata"].get("managedFields", []))
            self.check(res, new, q.get("fieldValidation", [""])[0] == "Strict", name, old)
            return 200, self.write(res, old, new, manager, "Update", subresource)

    def merge_subresource(self, res, old, obj, subresource):
        if subresource == "status":
            new = copy.deepcopy(old)
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
            return new
        new = obj
        new.setdefault("metadata", {})
        if res.status_subresource:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        return new

    def patch(self, res, namespace, name, body, ctype, q, subresource=""):
        st = self.store
        manager = q.get("fieldManager", [None])[0]
        force = q.get("force", ["false"])[0] == "true"
        with st.lock:
            try:
                old = self.get(res, namespace, name)
            except ApiError:
                if ctype.startswith("application/apply-patch"):
                    old = None
                else:
                    raise
            if ctype.startswith("application/apply-patch"):
                if not manager:
                    raise ApiError(400, "BadRequest", "PATCH, application/apply-patch+yaml requires a fieldManager")
                applied = yaml.safe_load(body) if isinstance(body, (str, bytes)) else body
                return self.apply(res, namespace, name, old, applied, manager, force, q, subresource)
            manager = manager or "kubectl-patch"
            patch = json.loads(body)
            if ctype.startswith("application/json-patch"):
                target = json_patch(copy.deepcopy(old), patch)
            else:  # merge-patch+json and strategic-merge-patch+json (as a merge patch)
                target = merge_patch(copy.deepcopy(old), patch)
            rv = (patch.get("metadata") or {}).get("resourceVersion") if isinstance(patch, dict) else None
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", f"Operation cannot be fulfilled on {res.plural} \"{name}\": the object has been modified; please apply your changes to the latest version and try again")
            new = self.merge_subresource(res, old, target, subresource)
            self.check(res, new, q.get("fieldValidation", [""])[0] == "Strict", name, old)
            return 200, self.write(res, old, new, manager, "Update", subresource)

    def apply(self, res, namespace, name, old, applied, manager, force, q, subresource):
        if not isinstance(applied, dict):
            raise ApiError(400, "BadRequest", "the applied configuration must be an object")
        applied = copy.deepcopy(applied)
        amd = applied.setdefault("metadata", {})
        if amd.get("name", name) != name:
            raise ApiError(400, "BadRequest", "the name of the object does not match the URL")
        amd["name"] = name
        if subresource == "status":
            applied = {k: v for k, v in applied.items() if k in ("apiVersion", "kind", "metadata", "status")}
            applied["metadata"] = {"name": name}
        elif res.status_subresource:
            applied.pop("status", None)
        schema = res.schema
        # An entry of a list-map is found by its keys: one left out takes its schema default
        # (structured-merge-diff does so since Kubernetes 1.27), and one without a default is
        # an error, as the API server's.
        missing = default_list_map_keys(schema, applied)
        if missing:
            raise ApiError(500, "InternalError", "failed to create typed patch object (%s/%s, Kind=%s): %s"
                           % (res.group, res.version, res.kind, missing[0]))
        mine = field_set(applied, schema) - IGNORED_FOR_OWNERSHIP
        if old is None:
            if subresource:
                raise ApiError(404, "NotFound", f"{res.plural} \"{name}\" not found")
            obj = copy.deepcopy(applied)
            self.prepare_new(res, obj, namespace, manager, "Apply")
            obj["metadata"].update({k: v for k, v in amd.items() if k in ("labels", "annotations", "finalizers", "ownerReferences")})
            self.check(res, obj, True, name)
            self.set_managed(obj, manager, "Apply", mine, subresource)
            return 201, self.write(res, None, obj, manager, "Apply", subresource)
        # Conflicts: fields another manager owns whose value we would change.
        conflicts = []
        for m in old["metadata"].get("managedFields", []):
            if m.get("manager") == manager and m.get("operation") == "Apply":
                continue
            for p in decode_fields(m.get("fieldsV1")) & mine:
                ok1, v1 = get_path(old, p, schema)
                ok2, v2 = get_path(applied, p, schema)
                if ok1 and ok2 and v1 != v2 and not isinstance(v2, (dict, list)):
                    conflicts.append((m["manager"], p))
        if conflicts and not force:
            causes = [{"reason": "FieldManagerConflict", "message": f"conflict with \"{mgr}\"",
                       "field": "." + ".".join(x[2:] if x.startswith("f:") else "[" + x[2:] + "]" for x in p)} for mgr, p in conflicts]
            msg = "Apply failed with %d conflict%s: %s" % (len(causes), "s" if len(causes) > 1 else "",
                                                          "; ".join(f"{c['message']}: {c['field']}" for c in causes))
            raise ApiError(409, "Conflict", msg, {"causes": causes})
        new = copy.deepcopy(old)
        # Fields this manager applied before and no longer applies are removed (unless owned by
        # someone else).
        previous = set()
        for m in old["metadata"].get("managedFields", []):
            if m.get("manager") == manager and m.get("operation") == "Apply" and m.get("subresource", "") == subresource:
                previous = decode_fields(m.get("fieldsV1"))
        others = set()
        for m in old["metadata"].get("managedFields", []):
            if not (m.get("manager") == manager and m.get("operation") == "Apply"):
                others |= decode_fields(m.get("fieldsV1"))
        # Parents first: removing a whole list-map entry makes its children moot.
        for p in sorted(previous - mine - others, key=len):
            remove_path(new, p, schema)
        body = {k: v for k, v in applied.items() if k not in ("apiVersion", "kind", "metadata")}
        merged = merge_applied({k: v for k, v in new.items() if k not in ("apiVersion", "kind", "metadata")}, body, schema)
        for k in list(new.keys()):
            if k not in ("apiVersion", "kind", "metadata"):
                del new[k]
        new.update(merged)
        for k in ("labels", "annotations", "finalizers", "ownerReferences"):
            if k in amd:
                new["metadata"][k] = merge_applied(new["metadata"].get(k, {} if k in ("labels", "annotations") else []), amd[k], None) if k in ("labels", "annotations") else amd[k]
        if force:
            self.take_fields(new, mine, except_manager=manager)
        self.set_managed(new, manager, "Apply", mine, subresource)
        self.check(res, new, q.get("fieldValidation", ["Strict"])[0] == "Strict", name, old)
        if q.get("dryRun"):
            return 200, new
        return 200, self.write(res, old, new, manager, "Apply", subresource)

    def delete(self, res, namespace, name, q):
        st = self.store
        with st.lock:
            old = self.get(res, namespace, name)
            if old["metadata"].get("finalizers"):
                if old["metadata"].get("deletionTimestamp"):
                    return 200, old
                new = copy.deepcopy(old)
                new["metadata"]["deletionTimestamp"] = now_rfc3339()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                return 200, self.write(res, old, new, "kube-standin", "Update")
            st.table(res).pop((old["metadata"].get("namespace", ""), name), None)
            deleted = copy.deepcopy(old)
            deleted["metadata"]["resourceVersion"] = st.bump()
            st.record(res, "DELETED", deleted)
            return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                         "details": {"name": name, "group": res.group, "kind": res.plural, "uid": old["metadata"]["uid"]}}

    # -- reads ----------------------------------------------------------------------------------

    def list(self, res, namespace, q):
        st = self.store
        labels = parse_label_selector(q.get("labelSelector", [""])[0])
        fields = parse_field_selector(q.get("fieldSelector", [""])[0])
        with st.lock:
            rows = sorted(st.table(res).items())
            if res.plural == "events" and res.group in ("", "events.k8s.io"):
                # One store behind both Event APIs.
                other = ("events.k8s.io" if res.group == "" else "", "events")
                convert = event_as_core if res.group == "" else event_as_events_v1
                rows = [(k, convert(o)) for k, o in rows]
                rows += [(k, convert(o)) for k, o in sorted(st.objects.get(other, {}).items())]
            items = [copy.deepcopy(o) for (ns, _), o in rows
                     if (not namespace or ns == namespace) and labels_match(labels, o["metadata"].get("labels"))
                     and fields_match(fields, o)]
            rv = str(st.rv)
        return {"kind": res.list_kind, "apiVersion": res.api_version, "metadata": {"resourceVersion": rv}, "items": items}


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        else:
            target[k] = merge_patch(target.get(k), v)
    return target


def json_patch(doc, ops):
    def parts(path):
        return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]

    def walk(d, ps):
        for p in ps:
            d = d[int(p)] if isinstance(d, list) else d[p]
        return d

    for op in ops:
        ps = parts(op["path"])
        try:
            parent = walk(doc, ps[:-1])
            last = ps[-1] if ps else None
            kind = op["op"]
            if kind == "test":
                # As the API server's JSON patch library: a missing path equals null (how
                # kube-runtime's finalizer tests that no finalizer is set yet).
                try:
                    found = walk(doc, ps)
                except (KeyError, IndexError, ValueError, TypeError):
                    found = None
                if found != op.get("value"):
                    raise ApiError(422, "Invalid", f"the test operation failed at {op['path']}")
            elif kind in ("add", "replace"):
                if isinstance(parent, list):
                    if last == "-":
                        parent.append(op["value"])
                    elif kind == "add":
                        parent.insert(int(last), op["value"])
                    else:
                        parent[int(last)] = op["value"]
                else:
                    if kind == "replace" and last not in parent:
                        raise KeyError(last)
                    parent[last] = op["value"]
            elif kind == "remove":
                if isinstance(parent, list):
                    del parent[int(last)]
                else:
                    del parent[last]
            elif kind in ("move", "copy"):
                src = parts(op["from"])
                val = copy.deepcopy(walk(doc, src))
                if kind == "move":
                    sp = walk(doc, src[:-1])
                    del sp[int(src[-1]) if isinstance(sp, list) else src[-1]]
                json_patch(doc, [{"op": "add", "path": op["path"], "value": val}])
        except (KeyError, IndexError, ValueError, TypeError):
            raise ApiError(422, "Invalid", f"the JSON patch operation {op.get('op')} at {op.get('path')} failed")
    return doc


def jsonpath_get(obj, path):
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    parts = re.findall(r"\.([^.\[\]]+)|\[(\d+|\*)\]", path)

    def walk(cur, parts):
        for i, (name, idx) in enumerate(parts):
            if name:
                if not isinstance(cur, dict) or name not in cur:
                    return None
                cur = cur[name]
            elif idx == "*":
                if not isinstance(cur, list):
                    return None
                vals = [walk(c, parts[i + 1:]) for c in cur]
                return [v for v in vals if v is not None]
            else:
                if not isinstance(cur, list) or int(idx) >= len(cur):
                    return None
                cur = cur[int(idx)]
        return cur

    return walk(obj, parts)


def age(ts):
    try:
        t = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return "<unknown>"
    s = int((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds())
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= n:
            return f"{s // n}{unit}"
    return f"{s}s"


# ---------------------------------------------------------------------------------------------
# Protobuf bodies (application/vnd.kubernetes.protobuf): what kubectl's typed commands send
# (`kubectl create namespace`, `kubectl create service ...`). The envelope is "k8s\0" and a
# runtime.Unknown (typeMeta, raw); raw is the object by k8s.io/api's generated.proto field
# numbers. Only the kinds below are decoded; any other is refused (415), never guessed.

PROTO_MAP = "map"  # map<string,string>: repeated entries {1: key, 2: value}
PROTO = {
    "ObjectMeta": {1: ("name", "str"), 2: ("generateName", "str"), 3: ("namespace", "str"),
                   11: ("labels", PROTO_MAP), 12: ("annotations", PROTO_MAP),
                   14: ("finalizers", "[str]")},
    "Namespace": {1: ("metadata", "ObjectMeta"), 2: ("spec", "NamespaceSpec")},
    "NamespaceSpec": {1: ("finalizers", "[str]")},
    "Service": {1: ("metadata", "ObjectMeta"), 2: ("spec", "ServiceSpec")},
    "ServiceSpec": {1: ("ports", "[ServicePort]"), 2: ("selector", PROTO_MAP), 3: ("clusterIP", "str"),
                    4: ("type", "str"), 5: ("externalIPs", "[str]"), 7: ("sessionAffinity", "str"),
                    8: ("loadBalancerIP", "str"), 10: ("externalName", "str"),
                    11: ("externalTrafficPolicy", "str"), 12: ("healthCheckNodePort", "int"),
                    13: ("publishNotReadyAddresses", "bool"), 21: ("loadBalancerClass", "str"),
                    22: ("internalTrafficPolicy", "str")},
    "ConfigMap": {1: ("metadata", "ObjectMeta"), 2: ("data", PROTO_MAP), 3: ("binaryData", "bmap"),
                  4: ("immutable", "bool")},
    "Secret": {1: ("metadata", "ObjectMeta"), 2: ("data", "bmap"), 3: ("type", "str"),
               4: ("stringData", PROTO_MAP), 5: ("immutable", "bool")},
    "ServicePort": {1: ("name", "str"), 2: ("protocol", "str"), 3: ("port", "int"),
                    4: ("targetPort", "IntOrString"), 5: ("nodePort", "int"), 6: ("appProtocol", "str")},
}


def proto_fields(b):
    """(field number, wire type, value) of one message: varints as ints, length-delimited
    as bytes. A truncated or unknown wire type is an error, and so is a varint where a
    message is expected."""
    if not isinstance(b, (bytes, bytearray)):
        raise ValueError("a message was expected, not a number")
    i, out = 0, []
    def varint():
        nonlocal i
        shift = v = 0
        while True:
            if i >= len(b) or shift > 63:
                raise ValueError("truncated varint")
            c = b[i]
            i += 1
            v |= (c & 0x7F) << shift
            shift += 7
            if c < 0x80:
                return v
    while i < len(b):
        key = varint()
        num, wt = key >> 3, key & 7
        if wt == 0:
            out.append((num, wt, varint()))
        elif wt == 2:
            n = varint()
            if i + n > len(b):
                raise ValueError("truncated field")
            out.append((num, wt, b[i:i + n]))
            i += n
        else:
            raise ValueError(f"wire type {wt} not used by Kubernetes objects")
    return out


def proto_message(b, kind):
    """A message of `kind` as JSON. A field of the wrong wire type (a varint where bytes are
    declared, or the other way) or bytes that are not UTF-8 where text is are a ValueError,
    so the request is a 400, never a stored value that breaks every later read."""
    def varints(fields):
        for num, wt, v in fields:
            if wt != 0:
                raise ValueError(f"field {num}: a varint was expected")
        return {num: v for num, _, v in fields}
    if kind == "IntOrString":
        f = proto_fields(b)
        ints = varints([x for x in f if x[0] in (1, 2)])
        text = [v for num, wt, v in f if num == 3]
        if any(not isinstance(v, bytes) for v in text):
            raise ValueError("IntOrString.strVal: bytes were expected")
        return ints.get(2, 0) if ints.get(1, 0) == 0 else (text[-1] if text else b"").decode()
    schema, out = PROTO[kind], {}
    for num, wt, v in proto_fields(b):
        if num not in schema:
            continue
        name, t = schema[num]
        if (t in ("int", "bool")) != (wt == 0):
            raise ValueError(f"{kind}.{name}: wire type {wt} where {t} is declared")
        if t == "str":
            if v:
                out[name] = v.decode()
        elif t == "int":
            if v:
                out[name] = v
        elif t == "bool":
            if v:
                out[name] = True
        elif t == PROTO_MAP:
            e = {n: x for n, _, x in proto_fields(v)}
            if not all(isinstance(x, bytes) for x in e.values()):
                raise ValueError(f"{kind}.{name}: a map entry of bytes was expected")
            out.setdefault(name, {})[e.get(1, b"").decode()] = e.get(2, b"").decode()
        elif t == "bmap":
            e = {n: x for n, _, x in proto_fields(v)}
            if not all(isinstance(x, bytes) for x in e.values()):
                raise ValueError(f"{kind}.{name}: a map entry of bytes was expected")
            out.setdefault(name, {})[e.get(1, b"").decode()] = base64.b64encode(e.get(2, b"")).decode()
        elif t.startswith("["):
            inner = t[1:-1]
            out.setdefault(name, []).append(v.decode() if inner == "str" else proto_message(v, inner))
        else:
            m = proto_message(v, t)
            if m:
                out[name] = m
    return out


def decode_protobuf(body):
    if not body.startswith(b"k8s\x00"):
        raise ApiError(400, "BadRequest", "a protobuf body starts with the magic k8s\\x00")
    try:
        env = {n: v for n, _, v in proto_fields(body[4:])}
        type_meta = {n: v for n, _, v in proto_fields(env.get(1, b""))}
        api_version, kind = (type_meta.get(n, b"") for n in (1, 2))
        if not isinstance(api_version, bytes) or not isinstance(kind, bytes):
            raise ValueError("typeMeta: text was expected")
        api_version, kind = api_version.decode(), kind.decode()
        if kind not in PROTO:
            raise ApiError(415, "UnsupportedMediaType",
                           f"kube-standin decodes protobuf only for Namespace, Service, ConfigMap and Secret, "
                           f"not {kind}: send JSON (Content-Type: application/json)")
        obj = proto_message(env.get(2, b""), kind)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, "BadRequest", f"the body of the request was in an unknown format: {e}")
    return {"apiVersion": api_version, "kind": kind, **obj}


def request_object(body, content_type):
    """A create or update body as an object: JSON (YAML is JSON's superset here), or protobuf."""
    if (content_type or "").startswith("application/vnd.kubernetes.protobuf"):
        return decode_protobuf(body)
    return json.loads(body or b"{}")


def service_cells(o):
    """kubectl's columns for a Service (the API server prints them): type, cluster IP,
    external IP, ports."""
    spec, status = o.get("spec") or {}, o.get("status") or {}
    ingress = (status.get("loadBalancer") or {}).get("ingress") or []
    external = ",".join(i.get("ip") or i.get("hostname") or "" for i in ingress) or (
        "<pending>" if spec.get("type") == "LoadBalancer" else "<none>")
    ports = ",".join(
        f"{p.get('port')}" + (f":{p['nodePort']}" if p.get("nodePort") else "") + f"/{p.get('protocol', 'TCP')}"
        for p in spec.get("ports") or []) or "<none>"
    return [spec.get("type", "ClusterIP"), spec.get("clusterIP") or "<none>", external, ports]


SERVICE_COLUMNS = [("Type", "string"), ("Cluster-IP", "string"), ("External-IP", "string"),
                   ("Port(s)", "string")]


def to_table(res, objs, list_rv):
    cols = [{"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}]
    if res.kind == "Service" and res.group == "":
        cols += [{"name": n, "type": t, "format": "", "description": "", "priority": 0} for n, t in SERVICE_COLUMNS]
        cols.append({"name": "Age", "type": "string", "format": "", "description": "", "priority": 0})
        rows = [{"cells": [o["metadata"]["name"], *service_cells(o), age(o["metadata"].get("creationTimestamp"))],
                 "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}}
                for o in objs]
        return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": list_rv},
                "columnDefinitions": cols, "rows": rows}
    for c in res.printer_columns:
        cols.append({"name": c["name"], "type": c.get("type", "string"), "format": c.get("format", ""),
                     "description": c.get("description", ""), "priority": c.get("priority", 0)})
    has_age = any(c["jsonPath"] == ".metadata.creationTimestamp" for c in res.printer_columns)
    if not res.printer_columns or not has_age:
        cols.append({"name": "Age", "type": "string", "format": "", "description": "", "priority": 0})
    rows = []
    for o in objs:
        cells = [o["metadata"]["name"]]
        for c in res.printer_columns:
            v = jsonpath_get(o, c["jsonPath"])
            if c.get("type") == "date" and v is not None:
                v = age(v)
            elif isinstance(v, (list, dict)):
                v = json.dumps(v, separators=(",", ":")) if isinstance(v, dict) else ",".join(str(x) if not isinstance(x, (dict, list)) else json.dumps(x) for x in v)
            cells.append(v if v is not None else None)
        if not res.printer_columns or not has_age:
            cells.append(age(o["metadata"].get("creationTimestamp")))
        rows.append({"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": list_rv},
            "columnDefinitions": cols, "rows": rows}



# ---------------------------------------------------------------------------------------------
# Authentication and RBAC (--rbac): ServiceAccount tokens, and the RBAC authorizer's rules


class Rbac:
    """RBAC as kube-apiserver enforces it, for the roles and bindings of one rendered manifest.

    Each ServiceAccount of the manifest gets a token (and a kubeconfig beside --kubeconfig);
    the stand-in's own kubeconfig is a member of system:masters. A request without a token is
    system:anonymous, with an unknown one 401. Resource requests are allowed only by a rule
    of a (Cluster)Role bound to the user or one of its groups (a RoleBinding only in its
    namespace); otherwise 403 with kube-apiserver's message. Every rule a request used is
    remembered, so that GET /_standin/rbac can list the grants nothing used."""

    ADMIN = ("kube-standin-admin", ["system:masters", "system:authenticated"])

    def __init__(self, docs, kept=None):
        """`kept`: tokens by user from an earlier run (a restarted API server keeps them)."""
        kept = kept or {}
        self.accounts, self.roles, self.bindings = [], {}, []
        for d in docs:
            kind, meta = d.get("kind"), d.get("metadata") or {}
            ns, name = meta.get("namespace", ""), meta.get("name")
            if kind == "ServiceAccount":
                self.accounts.append((ns, name))
            elif kind in ("Role", "ClusterRole"):
                self.roles[(kind, ns if kind == "Role" else "", name)] = d.get("rules") or []
            elif kind in ("RoleBinding", "ClusterRoleBinding"):
                self.bindings.append((kind, ns if kind == "RoleBinding" else "", d["roleRef"], d.get("subjects") or []))
        self.tokens = {kept.get("standin") or "admin-" + uuid.uuid4().hex: self.ADMIN}
        self.account_tokens = {}
        for ns, name in self.accounts:
            token = kept.get(name) or f"sa-{name}-" + uuid.uuid4().hex
            user = f"system:serviceaccount:{ns}:{name}"
            self.tokens[token] = (user, ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"])
            self.account_tokens[(ns, name)] = token
        self.used, self.denied, self.lock = set(), [], threading.Lock()

    def admin_token(self):
        return next(t for t, who in self.tokens.items() if who == self.ADMIN)

    def identify(self, header):
        if not header:
            return ("system:anonymous", ["system:unauthenticated"])
        kind, _, token = header.partition(" ")
        if kind.lower() != "bearer" or token.strip() not in self.tokens:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        return self.tokens[token.strip()]

    def grants(self):
        """Every (role, rule index, group, resource, verb) the manifest grants."""
        out = set()
        for (kind, ns, name), rules in self.roles.items():
            for i, rule in enumerate(rules):
                for g in rule.get("apiGroups") or []:
                    for r in rule.get("resources") or []:
                        for v in rule.get("verbs") or []:
                            out.add((kind, ns, name, i, g, r, v))
        return out

    @staticmethod
    def describe(grant):
        kind, ns, name, _, group, resource, verb = grant
        where = f"{kind} {ns}/{name}" if ns else f"{kind} {name}"
        return f"{where}: {verb} {resource}" + (f".{group}" if group else "")

    def bound_roles(self, user, groups, namespace):
        for kind, ns, ref, subjects in self.bindings:
            if kind == "RoleBinding" and ns != namespace:
                continue
            for sub in subjects:
                sk, sname = sub.get("kind"), sub.get("name")
                if ((sk == "ServiceAccount" and user == f"system:serviceaccount:{sub.get('namespace', ns)}:{sname}")
                        or (sk == "User" and user == sname) or (sk == "Group" and sname in groups)):
                    role_ns = ns if ref["kind"] == "Role" else ""
                    yield (ref["kind"], role_ns, ref["name"])
                    break

    def authorize(self, who, verb, res, namespace, name, sub):
        user, groups = who
        if "system:masters" in groups:
            return
        resource = res.plural + (f"/{sub}" if sub else "")
        for role in self.bound_roles(user, groups, namespace):
            for i, rule in enumerate(self.roles.get(role, [])):
                if not ({res.group, "*"} & set(rule.get("apiGroups") or [])):
                    continue
                if not ({resource, "*"} & set(rule.get("resources") or [])):
                    continue
                if not ({verb, "*"} & set(rule.get("verbs") or [])):
                    continue
                names = rule.get("resourceNames") or []
                if names and name not in names:
                    continue
                with self.lock:
                    self.used.add(role + (i, res.group, resource, verb))
                return
        scope = f"in the namespace \"{namespace}\"" if namespace else "at the cluster scope"
        reason = f"User \"{user}\" cannot {verb} resource \"{resource}\" in API group \"{res.group}\" {scope}"
        qualified = res.plural + (f".{res.group}" if res.group else "")
        message = (f"{qualified} \"{name}\" is forbidden: {reason}" if name else f"{qualified} is forbidden: {reason}")
        with self.lock:
            self.denied.append(message)
        raise ApiError(403, "Forbidden", message, {"name": name or "", "group": res.group, "kind": res.plural})

    def report(self):
        with self.lock:
            used = set(self.used)
            denied = list(self.denied)
        grants = self.grants()
        return {"denied": denied,
                "used": sorted(self.describe(g) for g in grants if g in used),
                "unused": sorted(self.describe(g) for g in grants if g not in used)}


def request_verb(method, name, q):
    if method == "GET":
        if q.get("watch", ["false"])[0] in ("true", "1"):
            return "watch"
        return "get" if name else "list"
    if method == "DELETE" and not name:
        return "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, method.lower())


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
            if sub and (sub != "status" or not res.status_subresource):
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


def crd_schema_problems(schema, path="openAPIV3Schema"):
    """What the API server refuses in a CRD's schema, as far as the stand-in checks it: the
    keys of a list-map must be scalar properties of its items, each required or defaulted."""
    out = []
    if not isinstance(schema, dict):
        return out
    keys = schema.get("x-kubernetes-list-map-keys")
    if keys is not None:
        items = schema.get("items") or {}
        if schema.get("x-kubernetes-list-type") != "map":
            out.append(f"{path}.x-kubernetes-list-map-keys: Forbidden: only with x-kubernetes-list-type=map")
        for k in keys:
            prop = (items.get("properties") or {}).get(k)
            if prop is None:
                out.append(f"{path}.x-kubernetes-list-map-keys: Invalid value: \"{k}\": not a property of the items")
            elif prop.get("type") not in ("string", "integer", "number", "boolean"):
                out.append(f"{path}.x-kubernetes-list-map-keys: Invalid value: \"{k}\": must be a scalar")
            elif k not in (items.get("required") or []) and "default" not in prop:
                out.append(f"{path}.items.properties[{k}].default: Required value: this property is in "
                           "x-kubernetes-list-map-keys, so it must have a default or be a required property")
    for k, s in (schema.get("properties") or {}).items():
        out += crd_schema_problems(s, f"{path}.properties[{k}]")
    if isinstance(schema.get("items"), dict):
        out += crd_schema_problems(schema["items"], f"{path}.items")
    if isinstance(schema.get("additionalProperties"), dict):
        out += crd_schema_problems(schema["additionalProperties"], f"{path}.additionalProperties")
    return out


def load_crds(directory):
    crds = []
    if not directory:
        return crds
    for fn in sorted(os.listdir(directory)):
        if fn.endswith((".yaml", ".yml", ".json")):
            with open(os.path.join(directory, fn)) as f:
                for doc in yaml.safe_load_all(f):
                    if doc and doc.get("kind") == "CustomResourceDefinition":
                        for v in doc["spec"]["versions"]:
                            problems = crd_schema_problems((v.get("schema") or {}).get("openAPIV3Schema"))
                            if problems:
                                sys.exit(f"kube-standin: CustomResourceDefinition {doc['metadata']['name']} "
                                         f"is invalid: spec.versions[{v['name']}].schema." + "; ".join(problems))
                        crds.append(doc)
    return crds


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
        account_namespaces = sorted({ns for ns, _ in api.rbac.accounts}) if api.rbac else []
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
