#!/usr/bin/env python3
"""CI: fails on an import cycle between modules. Module import graph of src/ (use crate::a::b / super:: paths, non-test code) and its cycles.
Nodes are modules at depth <= 2 (e.g. agent::engine, controller::lb); a file's uses of its own
descendants or ancestors are not edges."""
import os, re, sys
root = sys.argv[1] if len(sys.argv) > 1 else 'src'
def modpath(f):
    rel = os.path.relpath(f, root)[:-3].split('/')
    if rel[-1] in ('mod', 'lib', 'main'): rel = rel[:-1]
    return rel
def node(parts, depth=2): return '::'.join(parts[:depth]) or 'crate'
edges = {}
for d, _, fs in os.walk(root):
    for fn in fs:
        if not fn.endswith('.rs') or d.endswith('/bin') or fn == 'main.rs': continue
        f = os.path.join(d, fn); me = modpath(f)
        text = open(f).read().split('#[cfg(test)]')[0]
        text = '\n'.join(l for l in text.splitlines() if not l.lstrip().startswith('//'))
        for m in re.finditer(r'\b(crate|super(?:::super)*)::([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*)', text):
            head, rest = m.group(1), m.group(2).split('::')
            if head == 'crate': target = rest
            else:
                up = head.count('super')
                base = me[:-up] if fn not in ('mod.rs',) else me[:len(me)-up]
                target = base + rest
            a, b = node(me), node(target)
            if a == b or a.startswith(b + '::') or b.startswith(a + '::'): continue
            # only module names that exist
            if not (os.path.exists(os.path.join(root, *b.split('::')) + '.rs') or os.path.isdir(os.path.join(root, *b.split('::')))):
                b = node(target, 1)
                if a == b or a.startswith(b + '::') or b.startswith(a + '::'): continue
            edges.setdefault(a, set()).add(b)
# Tarjan SCC
idx = {}; low = {}; st = []; on = set(); out = []; i = [0]
sys.setrecursionlimit(10000)
def sc(v):
    idx[v] = low[v] = i[0]; i[0] += 1; st.append(v); on.add(v)
    for w in edges.get(v, ()):
        if w not in idx: sc(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], idx[w])
    if low[v] == idx[v]:
        comp = []
        while True:
            w = st.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1: out.append(sorted(comp))
for v in list(edges): 
    if v not in idx: sc(v)
for c in out:
    print('cycle:', ' <-> '.join(c))
    for a in c:
        for b in sorted(edges.get(a, ())):
            if b in c: print('   ', a, '->', b)
print(len(out), 'cycles among', len(edges), 'modules')
sys.exit(1 if out else 0)
