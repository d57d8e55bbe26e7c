"""CEL validation rules (x-kubernetes-validations)."""

import re

from .schema import list_keys, sub_schema

try:  # CEL (x-kubernetes-validations) through cel-python; without it the rules are not run.
    import celpy
except ImportError:  # pragma: no cover
    celpy = None


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
