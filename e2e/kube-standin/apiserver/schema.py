"""Schema validation (structural schemas as the API server applies them to custom objects),
and the sub-schema lookups server-side apply and CEL share."""

import copy
import json
import re


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
