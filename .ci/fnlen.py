#!/usr/bin/env python3
"""Longest functions in src/ (non-test code): counts lines from `fn` to its closing brace."""
import os, re, sys
root = sys.argv[1] if len(sys.argv) > 1 else 'src'
limit = int(sys.argv[2]) if len(sys.argv) > 2 else 100
res = []
for d, _, fs in os.walk(root):
    for fn in fs:
        if not fn.endswith('.rs') or fn == 'tests.rs': continue
        f = os.path.join(d, fn)
        lines = open(f).read().split('\n')
        stop = next((i for i, l in enumerate(lines) if l.strip() == '#[cfg(test)]'), len(lines))
        i = 0
        while i < stop:
            m = re.match(r'^(\s*)(pub(\(\w+\))? )?(async )?(const )?fn (\w+)', lines[i])
            if m:
                indent = m.group(1)
                j = i
                while j < len(lines) and not (lines[j].startswith(indent + '}') and len(lines[j].rstrip()) == len(indent) + 1):
                    if j > i and lines[j].rstrip().endswith(';') and j == i: break
                    j += 1
                n = j - i + 1
                res.append((n, f, i + 1, m.group(6)))
                i = j
            i += 1
res.sort(reverse=True)
for n, f, l, name in res:
    if n >= limit: print(n, f'{f}:{l}', name)
