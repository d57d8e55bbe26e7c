"""Table output (Accept: as=Table): additionalPrinterColumns through a JSONPath, kubectl's
columns for Services, ages."""

import datetime
import json
import re


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

