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


def pids_mentioning(needle):
    """PIDs of processes (not us) whose command line mentions needle."""
    pids = []
    for p in pathlib.Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid():
            continue
        try:
            if needle.encode() in (p / "cmdline").read_bytes():
                pids.append(int(p.name))
        except OSError:
            continue
    return pids


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
        # A QEMU run through its own loader (scripts/fetch-vmsnap-vmm.sh):
        # ld-linux ... --library-path DIR .../qemu-system-x86_64.
        if not cmd or not any(a.endswith(b"qemu-system-x86_64") for a in cmd[:4]):
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

    def restore_detached(self, cid, images, bundle, *flags, check=True):
        """`cocoon restore --detach` of cid from images with bundle (a Bundle).
        The restored process's stdout and stderr go to CID.restored.out/.err in
        the test's directory. Returns (returncode, out path, err path); with
        check, a failed restore raises with its stderr."""
        out = self.tmp / f"{cid}.restored.out"
        err = self.tmp / f"{cid}.restored.err"
        with open(out, "wb") as o, open(err, "wb") as e:
            r = subprocess.run([str(COCOON), "--root", str(self.root), "--config", str(self.config),
                                "restore", "--image-path", str(images), "--bundle", str(bundle.path),
                                "--detach", *flags, cid],
                               stdin=subprocess.DEVNULL, stdout=o, stderr=e, timeout=600)
        if check:
            assert r.returncode == 0, err.read_text()
        return r.returncode, out, err


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path)
    yield e
    # Whatever happened, no shim or VM of this test survives it.
    for pid in pids_mentioning(str(tmp_path)) + qemu_pids(str(tmp_path)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    leaked = qemu_pids(str(tmp_path))
    deadline = time.time() + 5
    while leaked and time.time() < deadline:
        time.sleep(0.1)
        leaked = qemu_pids(str(tmp_path))


PAYLOAD = BUILD / "payload"


def make_rootfs(dest):
    """A minimal rootfs: the static test payload and busybox for a shell."""
    bin_dir = dest / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "payload").write_bytes(PAYLOAD.read_bytes())
    (bin_dir / "payload").chmod(0o755)
    (bin_dir / "busybox").write_bytes(pathlib.Path("/bin/busybox").read_bytes())
    (bin_dir / "busybox").chmod(0o755)
    for tool in ("sh", "cat", "echo", "sleep", "ls"):
        (bin_dir / tool).symlink_to("busybox")
    for d in ("proc", "dev", "sys", "tmp", "etc", "data"):
        (dest / d).mkdir()
    (dest / "etc" / "passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
    return dest


class Bundle:
    def __init__(self, path):
        self.path = path
        self.config = path / "config.json"
        self.rootfs = path / "rootfs"


def privileged(spec):
    """write_bundle's extra= for a --privileged-style spec (podman's and
    runc's meaning): every capability, no no_new_privs, nothing masked."""
    del spec["process"]["capabilities"]
    spec["process"]["noNewPrivileges"] = False
    del spec["linux"]["maskedPaths"]
    del spec["linux"]["readonlyPaths"]


def write_bundle(path, args, terminal=False, env=None, cwd="/", hostname="cocoon",
                 readonly=False, extra=None):
    """An OCI bundle made by `cocoon spec`, then adjusted."""
    import json
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([str(COCOON), "spec", "--bundle", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    spec = json.loads((path / "config.json").read_text())
    spec["process"]["args"] = args
    spec["process"]["terminal"] = terminal
    spec["process"]["cwd"] = cwd
    if env:
        spec["process"]["env"] += env
    spec["hostname"] = hostname
    spec["root"]["readonly"] = readonly
    if extra:
        extra(spec)
    (path / "config.json").write_text(json.dumps(spec, indent=2))
    if not (path / "rootfs").exists():
        make_rootfs(path / "rootfs")
    return Bundle(path)


def env_create(self, cid, bundle, *flags):
    """`cocoon create`, with the container's stdio in files: the shim keeps
    them open for the container's life, as runc's container init does."""
    safe = cid.replace("/", "_")[:80]
    out = self.tmp / f"{safe}.out"
    err = self.tmp / f"{safe}.err"
    with open(out, "wb") as o, open(err, "wb") as e:
        r = subprocess.run([str(COCOON), "--root", str(self.root), "--config", str(self.config),
                            "create", "--bundle", str(bundle.path), *flags, cid],
                           stdin=subprocess.DEVNULL, stdout=o, stderr=e, timeout=180)
    return r.returncode, out, err


def env_state(self, cid):
    import json
    r = self.run("state", cid)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def wait_for(pred, timeout=30, interval=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return pred()


Env.create = env_create
Env.state = env_state
