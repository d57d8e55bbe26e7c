"""The API's verbs on the Store: discovery, OpenAPI v3, create, get, update, patch and apply,
delete, list."""

import copy
import datetime
import json
import threading
import uuid

import yaml

from .apply import (IGNORED_FOR_OWNERSHIP, decode_fields, default_list_map_keys, encode_fields,
                    field_set, get_path, merge_applied, remove_path)
from .cel import cel_validate
from .errors import ApiError
from .patch import json_patch, merge_patch
from .schema import apply_defaults, validate
from .selectors import (event_as_core, event_as_events_v1, fields_match, labels_match,
                        parse_field_selector, parse_label_selector)


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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

    def require_namespace(self, res, namespace):
        """A namespaced object is made only in a Namespace that exists (kube-apiserver's
        NamespaceLifecycle admission): 404 otherwise."""
        if not res.namespaced or not namespace:
            return
        ns_res = self.find("", "v1", "namespaces")
        if ("", namespace) not in self.store.table(ns_res):
            raise ApiError(404, "NotFound", f"namespaces \"{namespace}\" not found",
                           {"name": namespace, "kind": "namespaces"})

    def create(self, res, namespace, body, q):
        st = self.store
        manager = q.get("fieldManager", ["kubectl"])[0]
        with st.lock:
            self.require_namespace(res, namespace or (body.get("metadata") or {}).get("namespace", ""))
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
                if old is None:
                    self.require_namespace(res, namespace)
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
