"""Request bodies: protobuf as kubectl's typed commands send it, and request_object (a create
or update body, JSON or protobuf)."""

import base64
import json

from .errors import ApiError


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
