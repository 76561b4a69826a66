"""Runs last (files are collected in name order): nothing the suite started
may still be running."""
from conftest import qemu_pids


def test_no_qemu_outlives_the_suite():
    assert qemu_pids("/tmp/pytest-") == []
