"""Authentication and RBAC (--rbac): ServiceAccount tokens, and the RBAC authorizer's rules."""

import threading
import uuid

from .errors import ApiError


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
