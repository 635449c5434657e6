#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Style suite: the README's Layout section, libuffdwp/meson.build and the
files in libuffdwp/ tell the same story.

- every .c file of libuffdwp/ is built (listed in libuffdwp/meson.build),
  and every file meson lists exists;
- every .c file, and every header with no .c file of its name, is named in
  the Layout block's libuffdwp/ part (a name or a shell glob);
- every name or glob there matches a file that exists.

usage: test-layout.py SOURCE_ROOT
"""
import fnmatch
import os
import re
import sys


def main():
    root = sys.argv[1]
    libdir = os.path.join(root, 'libuffdwp')
    readme = open(os.path.join(root, 'README.md'), encoding='utf-8').read()
    meson = open(os.path.join(libdir, 'meson.build'), encoding='utf-8').read()
    errors = []

    m = re.search(r'^## Layout\n.*?```\n(.*?)```', readme, re.S | re.M)
    if not m:
        print('README.md: no Layout section with a block')
        return 1
    names, inside = [], False
    for line in m.group(1).splitlines():
        if line.startswith('libuffdwp/'):
            inside = True
            continue
        if inside and not line.startswith('  '):
            break
        if inside:
            names += re.split(r'\s{2,}', line.strip())[0].split()
    if not names:
        errors.append('README.md Layout: no libuffdwp/ entries')

    files = sorted(os.listdir(libdir))
    sources = [f for f in files if f.endswith('.c')]
    built = set(re.findall(r"'([\w.-]+\.c)'", meson))
    for f in sources:
        if f not in built:
            errors.append(f'libuffdwp/{f}: not in libuffdwp/meson.build')
    for f in sorted(built):
        if f not in files:
            errors.append(f'libuffdwp/meson.build lists {f}, which is gone')

    wanted = sources + [f for f in files if f.endswith('.h') and
                        f[:-2] + '.c' not in files]
    for f in wanted:
        if not any(fnmatch.fnmatchcase(f, n) for n in names):
            errors.append(f'libuffdwp/{f}: not in README.md Layout')
    for n in names:
        if not any(fnmatch.fnmatchcase(f, n) for f in files):
            errors.append(f'README.md Layout names {n}: no such file')

    for e in errors:
        print(e)
    if not errors:
        print(f'{len(wanted)} files named, {len(built)} built, '
              f'{len(names)} layout entries')
    return 1 if errors else 0


sys.exit(main())
