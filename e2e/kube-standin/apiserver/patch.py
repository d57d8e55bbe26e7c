"""PATCH bodies: merge patches (strategic ones taken as merge patches) and JSON patches."""

import copy

from .errors import ApiError


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
