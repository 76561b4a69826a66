"""Runs last (files are collected in name order): nothing the suite started
may still be running."""
from conftest import pids_mentioning, qemu_pids
from podman_util import LEFT_AFTER_RM


def test_no_qemu_outlives_the_suite():
    """pytest's directories, and podman's test storage (podman_util: a
    short /tmp/cpm-* for podman's runroot, where cocoon's --root is)."""
    assert qemu_pids("/tmp/pytest-") == []
    assert qemu_pids("/tmp/cpm-") == []


def test_no_shim_or_containerd_outlives_the_suite():
    """cocoon's shims, containerd and its shims all carry a path of the
    suite's temporary directories on their command lines."""
    left = []
    for pid in pids_mentioning("/tmp/pytest-of-") + pids_mentioning("/tmp/cpm-"):
        try:
            left.append(open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ")[:200])
        except OSError:
            continue
    assert left == []


def test_no_podman_test_left_a_vm_or_shim_behind_podman_rm():
    """The podman fixture kills whatever is left at teardown, so that one
    leak does not spread; what was still running 15 s after podman removed
    every pod and container is recorded (podman_util.LEFT_AFTER_RM) and
    named here."""
    assert LEFT_AFTER_RM == []
