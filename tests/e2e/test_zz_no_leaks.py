"""Runs last (files are collected in name order): nothing the suite started
may still be running."""
from conftest import pids_mentioning, qemu_pids


def test_no_qemu_outlives_the_suite():
    assert qemu_pids("/tmp/pytest-") == []


def test_no_shim_or_containerd_outlives_the_suite():
    """cocoon's shims, containerd and its shims all carry a path of the
    suite's temporary directories on their command lines."""
    left = []
    for pid in pids_mentioning("/tmp/pytest-of-"):
        try:
            left.append(open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ")[:200])
        except OSError:
            continue
    assert left == []
