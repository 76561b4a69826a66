"""Shared fixtures for cocoon's end-to-end tests.

Every test runs the real `cocoon` binary against real QEMU and the real guest
image, in a state directory of its own, and kills whatever VM it left behind
even when it fails.
"""
import os
import pathlib
import signal
import subprocess
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("COCOON_BUILD", REPO / "build"))
COCOON = BUILD / "cocoon"
AGENT = BUILD / "cocoon-agent"


def qemu_pids(needle=None):
    """PIDs of qemu-system-x86_64 processes, optionally only those whose
    command line mentions needle."""
    pids = []
    for p in pathlib.Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not cmd or not cmd[0].endswith(b"qemu-system-x86_64"):
            continue
        if needle is None or any(needle.encode() in a for a in cmd):
            pids.append(int(p.name))
    return pids


@pytest.fixture(scope="session", autouse=True)
def built():
    if not COCOON.exists():
        pytest.exit(f"{COCOON} is missing: run 'make' first", returncode=1)
    image = pathlib.Path(os.environ.get("COCOON_CACHE_DIR", "/var/cache/cocoon")) / "image"
    if not (image / "vmlinux").exists():
        pytest.exit(f"no guest image in {image}: run 'make image' first", returncode=1)


class Env:
    """A private state root and config for one test."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.root = tmp / "root"
        self.config = tmp / "config.toml"
        self.write_config("")

    def write_config(self, text, vm=None):
        body = text
        if vm is not None:
            body += "[vm]\n" + vm
        self.config.write_text(body)

    def run(self, *args, timeout=180, check=False):
        cmd = [str(COCOON), "--root", str(self.root), "--config", str(self.config), *args]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"{cmd} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path)
    yield e
    # Whatever happened, no VM of this test survives it.
    for pid in qemu_pids(str(tmp_path)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    leaked = qemu_pids(str(tmp_path))
    deadline = time.time() + 5
    while leaked and time.time() < deadline:
        time.sleep(0.1)
        leaked = qemu_pids(str(tmp_path))
