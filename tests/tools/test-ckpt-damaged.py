#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Examples suite: examples/ckpt refuses a damaged checkpoint chain, with
the error that says why, and still restores the checkpoints before the
damage.

ckpt writes a chain of five checkpoints (a base image and four deltas).
Each case copies the chain (hard links) with one image damaged:
  corrupted  one byte of a page's data inverted (the last page of an image
             is at its end): the checksum must catch it (EBADMSG);
  truncated  the last half page of the last image cut off, as by a crash
             (ENODATA);
  swapped    image 1 replaced by image 2, itself a valid image, which only
             the chain's instants can tell is misplaced.
Restoring the whole chain must fail (exit 1) saying so; restoring up to the
checkpoint before the damaged one must still succeed.

usage: test-ckpt-damaged.py CKPT [--backend NAME]
"""
import os
import shutil
import subprocess
import sys
import tempfile

CHECKPOINTS = 5


def run(args):
    return subprocess.run(args, capture_output=True, text=True, timeout=240,
                          env=dict(os.environ, LC_ALL='C'))


def copy_chain(src, dst, victim):
    """@dst: @src's files as hard links, but @victim's image."""
    os.mkdir(dst)
    for f in os.listdir(src):
        if f != victim:
            os.link(os.path.join(src, f), os.path.join(dst, f))


def main():
    ckpt, extra = sys.argv[1], sys.argv[2:]
    page = os.sysconf('SC_PAGESIZE')
    tmp = tempfile.mkdtemp(prefix='ckpt-damaged-')
    failed = 0
    try:
        chain = os.path.join(tmp, 'chain')
        r = run([ckpt, '--dir', chain, '--size', '32', '--checkpoints',
                 str(CHECKPOINTS), '--interval-ms', '100'] + extra)
        if r.returncode == 77:
            print(r.stdout.strip().splitlines()[-1] if r.stdout.strip()
                  else 'ckpt: the backend cannot take snapshots here')
            return 77
        if r.returncode != 0:
            print(r.stdout + r.stderr)
            print(f'FAIL: ckpt exited {r.returncode} writing the chain')
            return 1
        img = [f'ckpt-{k:03d}.img' for k in range(CHECKPOINTS)]
        for k in range(CHECKPOINTS):
            if not os.path.exists(os.path.join(chain, img[k])):
                print(f'FAIL: {img[k]} missing from the chain')
                return 1

        def corrupt(dst, name):
            data = bytearray(open(os.path.join(chain, name), 'rb').read())
            data[len(data) - page // 2] ^= 0x20
            with open(os.path.join(dst, name), 'wb') as f:
                f.write(data)

        def truncate(dst, name):
            data = open(os.path.join(chain, name), 'rb').read()
            with open(os.path.join(dst, name), 'wb') as f:
                f.write(data[:len(data) - page // 2])

        def swap(dst, name):
            os.link(os.path.join(chain, img[2]), os.path.join(dst, name))

        cases = [
            ('corrupted', 1, corrupt, 'Bad message'),
            ('truncated', CHECKPOINTS - 1, truncate, 'No data available'),
            ('swapped', 1, swap, "not this chain's image"),
        ]
        for name, victim, damage, says in cases:
            dst = os.path.join(tmp, name)
            copy_chain(chain, dst, img[victim])
            damage(dst, img[victim])
            r = run([ckpt, '--restore', '--dir', dst])
            if r.returncode != 1 or says not in r.stderr:
                print(r.stdout + r.stderr)
                print(f'FAIL: {name} ({img[victim]}): restore exited '
                      f'{r.returncode}, expected 1 saying "{says}"')
                failed += 1
            else:
                print(f'{name}: refused ({says})')
            r = run([ckpt, '--restore', '--dir', dst, '--upto',
                     str(victim - 1)])
            if r.returncode != 0:
                print(r.stdout + r.stderr)
                print(f'FAIL: {name}: checkpoint {victim - 1}, before the '
                      f'damage, does not restore (exit {r.returncode})')
                failed += 1
    finally:
        shutil.rmtree(tmp)
    print(f'{len(cases)} damaged chains, {failed} failures')
    return 1 if failed else 0


sys.exit(main())
