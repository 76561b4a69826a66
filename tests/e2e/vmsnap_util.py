"""What the whole-VM checkpoint tests (docs/whole-vm.md) share:
test_vmsnap.py (the saved VM carries on, through cocoon and the engines)
and test_vmsnap_refusals.py (what a whole-VM checkpoint or restore
refuses).

Debian 12's QEMU 7.2 cannot save a VM with virtiofs shares; the `vmm`
fixture fetches Debian 13's QEMU and virtiofsd into a private directory
(scripts/fetch-vmsnap-vmm.sh) and skips, saying why, only when that fails.

Usage, from a test:

    from vmsnap_util import vmm  # noqa: F401  (the fixture, module scope)
    from vmsnap_util import vm_mode

    def test_x(env, vmm):
        vm_mode(env, vmm)
"""
import os
import pathlib
import re
import subprocess

import pytest

from conftest import wait_for
from test_checkpoint import checkpoint, lines, start

ROOT = pathlib.Path(__file__).resolve().parents[2]
FETCH = ROOT / "scripts" / "fetch-vmsnap-vmm.sh"


@pytest.fixture(scope="module")
def vmm():
    """The directory with the wrapped qemu-system-x86_64 and virtiofsd."""
    r = subprocess.run(["sh", str(FETCH)], capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        pytest.skip(f"a QEMU that can save a VM with virtiofs shares could not be fetched: {r.stderr.strip()}")
    return pathlib.Path(r.stdout.strip())


def vm_mode(env, vmm, memory=512, extra=""):
    env.write_config("[runtime]\ncheckpoint_mode = \"vm\"\n",
                     vm=f"snapshot_qemu = \"{vmm / 'qemu-system-x86_64'}\"\n"
                     f"snapshot_virtiofsd = \"{vmm / 'virtiofsd'}\"\nmemory_mib = {memory}\n" + extra)


def state_held(env):
    """Open descriptors, in any process, of a saved VM state under the
    test's directory: vm.state, vm.state.zst, or the unnamed file a zstd
    state is decompressed into (O_TMPFILE: "DIR/#INODE (deleted)")."""
    held = []
    for p in pathlib.Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            for fd in (p / "fd").iterdir():
                t = os.readlink(fd)
                if t.startswith(str(env.tmp)) and ("vm.state" in t or "/#" in t):
                    held.append(f"{p.name}: {t}")
        except OSError:
            continue
    return held


def memhog_rounds(path):
    return [(m.group(1), int(m.group(2))) for m in
            (re.search(r"hash (\w+) round (\d+)", x) for x in lines(path)) if m]


def saved_counter(env, vmm, cid, pause=False):
    """A counter in whole-VM mode, saved into env.tmp/ck (paused first with
    PAUSE) and deleted: its bundle, that directory and the last number it
    printed."""
    vm_mode(env, vmm)
    b, out = start(env, cid, ["payload", "counter", "100"])
    assert wait_for(lambda: len(lines(out)) >= 2)
    if pause:
        env.run("pause", cid, check=True)
    ck = env.tmp / "ck"
    checkpoint(env, cid, ck)
    assert wait_for(lambda: env.state(cid)["status"] == "stopped")
    last = int(lines(out)[-1])
    env.run("delete", cid, check=True)
    return b, ck, last


def snapshot_vmm(vmm):
    """The config keys of a VMM that can save a VM; the mode itself comes
    from the engine, as the annotation users pass."""
    return (f"[vm]\nsnapshot_qemu = \"{vmm / 'qemu-system-x86_64'}\"\n"
            f"snapshot_virtiofsd = \"{vmm / 'virtiofsd'}\"\n")


def counted(text):
    return [int(x) for x in text.split() if x.isdigit()]


def carried_on(numbers, at):
    """The counter went on from about where it was saved (at numbers): a
    fresh start would count from 0 again. One line written to the old
    output just before the save may come twice."""
    return (len(numbers) > at + 3 and numbers[:at] == list(range(at))
            and all(b - a in (0, 1) for a, b in zip(numbers, numbers[1:])))
