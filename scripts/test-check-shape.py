#!/usr/bin/env python3
"""make lint: check-shape.py fails on what it is meant to catch.

Copies the tracked sources into a scratch git tree, checks that the copy
passes, then plants one violation of each kind check-shape.py looks for
(a call up the guest's layers, a call and an include up the host's, a
call cycle, a C file, a doc and a proto file over the line limit) and checks that each is reported
by name and that the script exits non-zero. Run from the top of the tree.
"""
import os
import shutil
import subprocess
import sys
import tempfile

SCRIPT = os.path.abspath('scripts/check-shape.py')

# (file, text appended to it, words the report must contain)
PLANTS = [
    ('src/guest/channel.c',
     '\nvoid shape_planted_up(void);\nvoid shape_planted_up(void)\n{\n\t(void)agent_job_start_ex;\n}\n',
     'src/guest/channel.c (channel) calls agent_job_start_ex() of src/guest/jobs.c (jobs)'),
    ('src/host/vm/accel.c',
     '\nvoid shape_planted_vm(void);\nvoid shape_planted_vm(void)\n{\n\t(void)container_load;\n}\n',
     'src/host/vm/accel.c (vm) calls container_load() of src/host/lib/container.c (library)'),
    ('src/host/lib/state.c', '\n#include "commands.h"\n',
     'src/host/lib/state.c (library core) includes commands.h of cli'),
    ('src/guest/procfs.c',
     '\nvoid shape_planted_cycle(void);\nvoid shape_planted_cycle(void)\n{\n\t(void)container_find;\n}\n',
     'a cycle between'),
    ('src/guest/sysctl.c', '\n' * 700, 'src/guest/sysctl.c: '),
    ('docs/errors.md', '\n' * 700, 'docs/errors.md: '),
    ('proto/cocoon.proto', '\n' * 700, 'proto/cocoon.proto: '),
]


def run(tree):
    return subprocess.run([sys.executable, SCRIPT], cwd=tree, capture_output=True, text=True)


def main():
    files = subprocess.run(['git', 'ls-files', 'src', 'scripts', 'docs', 'proto'],
                           capture_output=True, text=True, check=True).stdout.split()
    failures = []
    with tempfile.TemporaryDirectory(prefix='check-shape-') as tree:
        for f in files:
            if not os.path.isfile(f):
                continue
            os.makedirs(os.path.join(tree, os.path.dirname(f)), exist_ok=True)
            shutil.copy2(f, os.path.join(tree, f))
        subprocess.run(['git', 'init', '-q'], cwd=tree, check=True)
        subprocess.run(['git', 'add', '-A'], cwd=tree, check=True)
        clean = run(tree)
        if clean.returncode != 0:
            failures.append('the unchanged copy fails:\n' + clean.stderr)
        for path, text, want in PLANTS:
            with open(os.path.join(tree, path), 'a', encoding='utf-8') as f:
                f.write(text)
        planted = run(tree)
        if planted.returncode == 0:
            failures.append('the planted tree passes')
        for path, _, want in PLANTS:
            if want not in planted.stderr:
                failures.append(f'no report of the violation planted in {path} '
                                f'(wanted "{want}")')
    for f in failures:
        print('test-check-shape: ' + f, file=sys.stderr)
    if not failures:
        print(f'test-check-shape: {len(PLANTS)} planted violations reported, the clean tree passes')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
