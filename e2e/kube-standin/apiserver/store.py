"""Storage: the objects, the global resourceVersion, the watch history, the state journal."""

import copy
import json
import os
import threading


# Watch events kept; older resourceVersions get 410 Gone. Small in tests to provoke it.
EVENT_WINDOW = int(os.environ.get("STANDIN_EVENT_WINDOW", "5000"))


class Store:
    def __init__(self, resources, state_file):
        self.lock = threading.Condition()
        self.resources = resources
        self.state_file = state_file
        self.rv = 0
        self.objects = {}  # (group, plural) -> {(namespace, name): obj}
        self.events = []  # (rv, (group, plural), type, obj)
        self.watch_epoch = 0  # bumped to drop every watch
        # The state file is a journal: one JSON line per change ({"rv", "key", "id", "obj"},
        # obj null for a deletion), appended under the lock, so a write costs one object, not
        # the whole store (as etcd writes one key). Replayed on start.
        if state_file and os.path.exists(state_file):
            with open(state_file) as f:
                for line in f:
                    if not line.strip():
                        continue
                    try:
                        change = json.loads(line)
                    except ValueError:
                        break  # a torn last line from a kill mid-write
                    self.rv = max(self.rv, change["rv"])
                    g, p = change["key"].split("/", 1)
                    table = self.objects.setdefault((g, p), {})
                    ident = tuple(change["id"])
                    if change["obj"] is None:
                        table.pop(ident, None)
                    else:
                        table[ident] = change["obj"]
        self.first_rv = self.rv  # watches from before a restart are too old
        self.journal = open(state_file, "a") if state_file else None

    def save(self, res, obj, deleted):
        if self.journal is None:
            return
        md = obj["metadata"]
        change = {"rv": self.rv, "key": f"{res.key[0]}/{res.key[1]}",
                  "id": [md.get("namespace", ""), md["name"]], "obj": None if deleted else obj}
        self.journal.write(json.dumps(change) + "\n")
        self.journal.flush()

    def bump(self):
        self.rv += 1
        return str(self.rv)

    def record(self, res, kind, obj):
        self.events.append((self.rv, res.key, kind, copy.deepcopy(obj)))
        if len(self.events) > EVENT_WINDOW:
            drop = len(self.events) - EVENT_WINDOW
            self.first_rv = self.events[drop - 1][0]
            del self.events[:drop]
        self.save(res, obj, kind == "DELETED")
        self.lock.notify_all()

    def events_after(self, last, key):
        """Events newer than `last` for resource `key` (the list is in rv order: scan back)."""
        i = len(self.events)
        while i > 0 and self.events[i - 1][0] > last:
            i -= 1
        return [e for e in self.events[i:] if e[1] == key]

    def table(self, res):
        return self.objects.setdefault(res.key, {})
