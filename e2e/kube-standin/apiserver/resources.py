"""Resource types: the built-ins and those of CRDs, and the CRDs read from a directory."""

import os
import sys

import yaml


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
        # What an install creates (the chart, `kube-vrrp manifest daemonset`): stored and
        # served, never run (no kubelet, no controllers here).
        r("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", True, ["sa"]),
        r("apps", "v1", "Deployment", "deployments", "deployment", True, ["deploy"],
          status_subresource=True),
        r("apps", "v1", "DaemonSet", "daemonsets", "daemonset", True, ["ds"],
          status_subresource=True),
        r("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", "poddisruptionbudget",
          True, ["pdb"], status_subresource=True),
        r("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", False),
        r("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings",
          "clusterrolebinding", False),
        r("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", True),
        r("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", True),
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
