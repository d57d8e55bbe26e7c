"""Label and field selectors, and the Event conversions a list of Events goes through."""

import re

from .errors import ApiError


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
        # Events' fields, and Pods' node and phase (`kubectl drain` lists a node's pods).
        if k not in ("metadata.name", "metadata.namespace") and not k.startswith(("involvedObject.", "regarding.")) \
                and k not in ("reason", "type", "source", "reportingController", "spec.nodeName", "status.phase"):
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
