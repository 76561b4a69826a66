#!/usr/bin/python3
"""The hostile-guest tier: the real cocoon binary against a guest that owns
its agent (tests/helpers/hostile-vmm.c, run as vm.qemu). Each case plants an
attack, runs a cocoon command, and checks that the canary outside the state
root is untouched, that nothing hangs past a bound, and that the error is
clear. The harness is hostile_env.py, the cases are in cases_*.py (run, in
this order, as they are imported). Prints TAP.

    test_hostile.py COCOON HOSTILE_VMM [CASE...]
"""
import sys

import cases_checkpoint  # noqa: F401  (imported: its cases run)
import cases_restore  # noqa: F401
import cases_host  # noqa: F401
import cases_staged  # noqa: F401
import cases_pod  # noqa: F401
import cases_podsilent  # noqa: F401
import cases_podrestore  # noqa: F401
import cases_silence  # noqa: F401
import cases_kill  # noqa: F401
from hostile_env import results

for i, (ok, name, detail) in enumerate(results, 1):
    skip = detail.startswith("skip:")
    line = f"{'ok' if ok else 'not ok'} {i} - {name.replace('_', ' ')}"
    if skip:
        line += f" # SKIP {detail[5:].strip()}"
    print(line)
    if detail and not skip:
        for d in detail.splitlines()[:6]:
            print(f"# {d}")
print(f"1..{len(results)}")
sys.exit(0 if all(ok for ok, _, _ in results) else 1)
