#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Style suite: the library's dependencies run one way (CODING_STYLE.md).

1. Every source and header of libuffdwp/ belongs to exactly one layer of
   CODING_STYLE.md's `layers` block.
2. No #include "..." reaches a layer above the including file's.
3. The call graph between the files, read from the shipped objects with
   nm (a file that uses a symbol another file defines depends on it), has
   no circle, except among the files of one `components` line.

DEBTS may list crossings and circles a step of work leaves for a later one
(the redesign of issue 16 did, while it was under way; none is left). The
list can only shrink: a debt that no longer exists fails the test until it
is deleted here, so a step that pays one must say so.

usage: test-layers.py SOURCE_ROOT CORE_ARCHIVE
"""
import collections
import fnmatch
import os
import re
import subprocess
import sys

# Crossings and circles a step of work may leave for a later one, each with
# why: (file, header) or a frozenset of files. Empty since the redesign of
# issue 16 paid its last one.
DEBTS = {}


def fail(msgs):
    for m in msgs:
        print(m)
    sys.exit(1 if msgs else 0)


def read_blocks(path):
    text = open(path, encoding='utf-8').read()
    blocks = {}
    for name, body in re.findall(r'```(\w+)\n(.*?)```', text, re.S):
        blocks[name] = [line.split() for line in body.splitlines()
                        if line.strip()]
    return blocks


def main():
    root, archive = sys.argv[1], sys.argv[2]
    blocks = read_blocks(os.path.join(root, 'CODING_STYLE.md'))
    layers = blocks.get('layers')
    if not layers:
        fail(['CODING_STYLE.md has no layers block'])
    rank = {}  # pattern list per layer, top first: a lower rank is higher
    order = [(i, row[0], row[1:]) for i, row in enumerate(layers)]
    components = [set(row) for row in blocks.get('components', [])]

    libdir = os.path.join(root, 'libuffdwp')
    files = sorted(f for f in os.listdir(libdir)
                   if f.endswith('.c') or f.endswith('.h'))
    errors = []
    for f in files:
        hits = [(i, name) for i, name, pats in order
                if any(fnmatch.fnmatchcase(f, p) for p in pats)]
        if not hits:
            errors.append(f'{f}: in no layer of CODING_STYLE.md')
            continue
        rank[f] = hits[0]

    seen_debts = set()
    for f in files:
        if f not in rank:
            continue
        src = open(os.path.join(libdir, f), encoding='utf-8').read()
        for h in re.findall(r'^#include "([^"]+)"', src, re.M):
            if h not in rank:
                errors.append(f'{f}: includes "{h}", not a library header')
                continue
            if rank[h][0] < rank[f][0]:
                if (f, h) in DEBTS:
                    seen_debts.add((f, h))
                    continue
                errors.append(f'{f} ({rank[f][1]}) includes {h} '
                              f'({rank[h][1]}): a layer above')

    # The call graph, from the archive's objects.
    out = subprocess.run(['nm', '-A', archive], capture_output=True,
                         text=True, check=True).stdout
    defs, uses = {}, collections.defaultdict(set)
    for line in out.splitlines():
        m = re.match(r'^[^:]*:([^:]*):\s*(?:[0-9a-f]+)?\s+(\w)\s+(\S+)$',
                     line)
        if not m:
            continue
        obj = os.path.basename(m.group(1))
        obj = obj[:-2] if obj.endswith('.c.o') else obj
        if m.group(2) == 'U':
            uses[obj].add(m.group(3))
        elif m.group(2) in 'TDBRVWG':
            defs[m.group(3)] = obj
    edges = collections.defaultdict(set)
    for obj, syms in uses.items():
        for s in syms:
            if s in defs and defs[s] != obj:
                edges[obj].add(defs[s])
    if len(set(defs.values())) < 10:
        fail([f'{archive}: too few objects read, nm output not understood'])

    # Tarjan's strongly connected components.
    index, low, stack, on, sccs = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            sccs.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(set(edges) | set(defs.values())):
        if v not in index:
            visit(v)
    for comp in sccs:
        if len(comp) < 2 or any(comp <= c for c in components):
            continue
        key = frozenset(comp)
        if key in DEBTS:
            seen_debts.add(key)
            continue
        path = ' '.join(sorted(comp))
        errors.append(f'a circle of calls among: {path}')

    for debt, why in DEBTS.items():
        if debt not in seen_debts:
            what = (' -> '.join(debt) if isinstance(debt, tuple)
                    else ' '.join(sorted(debt)))
            errors.append(f'paid debt still listed in test-layers.py: '
                          f'{what} ({why})')
    if not errors:
        print(f'{len(files)} files in {len(order)} layers, '
              f'{len(DEBTS)} debts')
    fail(errors)


main()
