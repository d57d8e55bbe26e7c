"""Server-side apply: field sets, merging and ownership."""

import copy
import json

from .schema import list_keys, sub_schema


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
