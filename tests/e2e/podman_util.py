"""podman driving cocoon, for end-to-end tests.

Usage, from a test:

    from podman_util import podman      # the fixture (function scope)

    def test_x(podman):
        r = podman.run("run", "--rm", podman.image, "payload", "echo", "hi")
        assert r.returncode == 0, r.stderr

`podman` is a `Podman` object: podman 4.3 (Debian 12) with cocoon as its
runtime, and everything of its own in the test's temporary directory:

- `podman.run(*args, timeout=..., input=None)` runs `podman ARGS` and returns
  the CompletedProcess (text mode); `podman.check(*args)` does the same and
  raises with podman's output when it fails.
- `podman.image` is a local image (`localhost/cocoon-test:latest`): busybox
  (`/bin/sh`, `cat`, `echo`, `sleep`, `ls`, ...) and the static test payload
  (`/bin/payload`, tests/payload/payload.c). It is built with `podman import`
  from a tar: no registry is reached.
- `podman.storage(name)` gives another Podman sharing this one's image tar
  and configuration but with its own storage root (`--root`): a second host,
  for `checkpoint --export` / `restore --import`. It keeps the runroot and
  tmpdir paths, as another host's podman would have the same default ones
  (podman 4.3's --import reuses the old runroot paths). Its image is
  imported on first use of `.image`.
- `podman.tmp` is the test's directory, `podman.base` the storage's (podman
  wants a runroot of at most 50 characters, so it is a short /tmp/cpm-*);
  `podman.env` the environment podman runs with (CONTAINERS_CONF,
  COCOON_CONFIG, and COCOON_CACHE_DIR as inherited).
- `podman.cocoon_config` is the cocoon config.toml the runtime reads: write
  to it to change cocoon's settings for this test.

podman hands conmon, and so the runtime, a scrubbed environment (LC_*,
CONTAINERS_CONF and XDG_RUNTIME_DIR only): COCOON_CONFIG and
COCOON_CACHE_DIR would not reach cocoon. So the runtime podman runs is a
two-line wrapper, `<tmp>/cocoon-runtime`, that sets them and execs
`<build>/cocoon`.

The containers.conf it writes (pointed at by CONTAINERS_CONF):
- cocoon as the default runtime, so tests pass no --runtime flag and drive
  podman exactly as a user does;
- default_ulimits nofile=1024:1024 and nproc=1024:1024: this host's hard
  nofile limit is below podman's default (DESIGN.md);
- the file events backend and cgroupfs, which work without systemd.

The storage directory is a shared mount of its own (bound on itself), as
everything is on a systemd host: podman 4.3 relies on it for `--uidmap`
containers (see `shared_mount`).

At teardown every container and pod of the test's storage roots is removed
(with force), and any shim or VM that mentions the test's directory is
killed. A QEMU, cocoon shim or keeper, virtiofsd or conmon still there 15 s
after podman's own removal is a leak of the delete path: it is killed too,
and recorded in LEFT_AFTER_RM, which test_zz_no_leaks reports (a test that
leaks passes on its own; the suite does not). Tests skip with the reason
when podman is not installed.
"""
import io
import os
import pathlib
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time

import pytest

from conftest import COCOON, PAYLOAD, pids_mentioning, qemu_pids, wait_for

IMAGE = "localhost/cocoon-test:latest"
PODMAN = shutil.which("podman")
BUSYBOX = pathlib.Path("/bin/busybox")
# "<test directory>: <command line>" of each leak found at a teardown.
LEFT_AFTER_RM = []
LEAKERS = ("qemu-system-x86_64", "cocoon", "virtiofsd", "conmon")
TOOLS = ("sh", "cat", "echo", "sleep", "ls", "mkdir", "rm", "wc", "head", "tail", "grep", "dd",
         "id", "mount", "touch", "stat", "nc", "ip", "hostname", "true", "false", "env", "ps",
         "httpd")


def image_tar(dest):
    """A root filesystem as a tar: busybox, its applets used by the tests,
    the test payload, and the directories a container expects."""
    archive = dest / "cocoon-test-rootfs.tar"
    if archive.exists():
        return archive
    with tarfile.open(archive, "w") as t:
        for d in ("bin", "dev", "etc", "proc", "sys", "tmp", "data", "run", "var", "var/tmp"):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if d in ("tmp", "var/tmp") else 0o755
            t.addfile(info)
        for src, name in ((PAYLOAD, "bin/payload"), (BUSYBOX, "bin/busybox")):
            data = src.read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            t.addfile(info, io.BytesIO(data))
        for tool in TOOLS:
            info = tarfile.TarInfo(f"bin/{tool}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            t.addfile(info)
        passwd = b"root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n"
        group = b"root:x:0:\nnobody:x:65534:\n"
        for name, data in (("etc/passwd", passwd), ("etc/group", group)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            t.addfile(info, io.BytesIO(data))
    return archive


def containers_conf(path, runtime):
    path.write_text(f"""[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
runtime = "cocoon"
# podman passes --log (its oci-log) only to the runtimes named here; with
# it, cocoon's warnings stay out of the container's output stream.
runtime_supports_json = ["cocoon"]
cgroup_manager = "cgroupfs"
events_logger = "file"

[engine.runtimes]
cocoon = ["{runtime}"]
""")


class Podman:
    def __init__(self, tmp, name="main", shared=None, cgroup2=False):
        self.tmp = tmp
        self.name = name
        # cgroup2: podman, conmon, the shim and cocoon run in a mount
        # namespace whose /sys/fs/cgroup is the cgroup2 hierarchy, so that
        # they take this cgroup v1 host for a v2 one, as test_containerd's
        # Containerd(cgroup2=True) does. One namespace, held by a sleeping
        # process, for every podman command of the test.
        self.prefix = []
        self.holder = None
        if cgroup2:
            self.holder = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                 "mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec sleep infinity"])
            # A whole line: this host's mount table already has "cgroup2
            # /sys/fs/cgroup/unified" (systemd's hybrid layout), which a
            # substring match found before the holder's mount was made, so
            # that podman could look before it and see v1 (a race lost in
            # the whole suite's order, won when run alone).
            assert wait_for(lambda: "cgroup2 /sys/fs/cgroup" in
                            mounts_of(self.holder.pid).splitlines()), \
                "no cgroup2 mount in the holder's namespace"
            self.prefix = ["nsenter", "-t", str(self.holder.pid), "-m"]
        elif shared is not None:
            self.prefix = shared.prefix
        # podman refuses a runroot longer than 50 characters: pytest's
        # tmp_path is too long, so the storage lives in a short directory.
        self.base = pathlib.Path(tempfile.mkdtemp(prefix=f"cpm-{name}-", dir="/tmp"))
        for d in ("root", "runroot", "tmpdir", "volumes"):
            (self.base / d).mkdir(parents=True, exist_ok=True)
        shared_mount(self.prefix, self.base)
        # Another host's podman has the same runroot path (/run/containers/
        # storage by default) and podman 4.3's --import keeps the old paths
        # of it (conmon's pid file): a second root shares this one's.
        self.runroot = shared.runroot if shared else self.base / "runroot"
        self.tmpdir = shared.tmpdir if shared else self.base / "tmpdir"
        if shared is None:
            self.cocoon_config = tmp / "cocoon.toml"
            self.cocoon_config.write_text("")
            wrapper = tmp / "cocoon-runtime"
            cache = os.environ.get("COCOON_CACHE_DIR", "")
            wrapper.write_text("#!/bin/sh\n"
                               f"export COCOON_CONFIG='{self.cocoon_config}'"
                               + (f" COCOON_CACHE_DIR='{cache}'" if cache else "") + "\n"
                               f"exec '{COCOON}' \"$@\"\n")
            wrapper.chmod(0o755)
            self.conf = tmp / "containers.conf"
            containers_conf(self.conf, wrapper)
            self.others = []
        else:
            self.conf = shared.conf
            self.cocoon_config = shared.cocoon_config
            self.others = shared.others
        self.env = {**os.environ, "CONTAINERS_CONF": str(self.conf),
                    "COCOON_CONFIG": str(self.cocoon_config)}
        self._image = False

    def argv(self, *args):
        return [*self.prefix, PODMAN, "--root", str(self.base / "root"), "--runroot", str(self.runroot),
                "--tmpdir", str(self.tmpdir), "--volumepath", str(self.base / "volumes"),
                "--storage-driver", "vfs", *args]

    def run(self, *args, timeout=300, input=None):
        # In the test's directory: conmon 2.1.6 leaves its OOM mark (a file
        # `oom`) in podman's working directory (docs/resources.md).
        return subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout,
                              input=input, env=self.env, cwd=self.tmp,
                              stdin=None if input is not None else subprocess.DEVNULL)

    def check(self, *args, timeout=300, input=None):
        r = self.run(*args, timeout=timeout, input=input)
        if r.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    @property
    def image(self):
        if not self._image:
            self.check("import", "--change", "ENV=PATH=/bin", "--change", 'CMD=["/bin/sh"]',
                       str(image_tar(self.tmp)), IMAGE, timeout=120)
            self._image = True
        return IMAGE

    def storage(self, name):
        """Another storage root (a second host) with the same configuration."""
        other = Podman(self.tmp, name, shared=self)
        self.others.append(other)
        return other

    def cleanup(self):
        for p in [self, *self.others]:
            for what in (("pod", "rm", "--all", "--force"), ("rm", "--all", "--force", "--time", "0"),
                         ("volume", "rm", "--all", "--force")):
                try:
                    p.run(*what, timeout=120)
                except subprocess.TimeoutExpired:
                    pass
        dirs = [str(self.tmp)] + [str(p.base) for p in [self, *self.others]]
        record_leaks(self.tmp, dirs)
        for pid in {pid for d in dirs for pid in pids_mentioning(d) + qemu_pids(d)}:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.time() + 5
        while any(qemu_pids(d) for d in dirs) and time.time() < deadline:
            time.sleep(0.1)
        for p in [self, *self.others]:
            # vfs layers and podman's shm mounts live under the test's root.
            subprocess.run(["umount", "-R", "-l", str(p.base)], capture_output=True)
            for m in reversed(mounts_under(p.base)):
                subprocess.run(["umount", "-l", m], capture_output=True)
            shutil.rmtree(p.base, ignore_errors=True)
        if self.holder:
            self.holder.kill()
            self.holder.wait()


def leaked(dirs):
    """pid -> command line of each QEMU, cocoon, virtiofsd or conmon process
    that mentions one of DIRS."""
    out = {}
    for pid in {pid for d in dirs for pid in pids_mentioning(d) + qemu_pids(d)}:
        try:
            cmd = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
        except OSError:
            continue
        names = {exe, *(os.path.basename(a.decode(errors="replace")) for a in cmd[:4])}
        if names & set(LEAKERS):
            out[pid] = b" ".join(cmd).decode(errors="replace")[:200]
    return out


def record_leaks(tmp, dirs):
    """What podman's own removal of every pod and container left running,
    after a grace of 15 s for processes on their way out."""
    wait_for(lambda: not leaked(dirs), timeout=15)
    LEFT_AFTER_RM.extend(f"{tmp.name}: {cmd}" for cmd in leaked(dirs).values())


def shared_mount(prefix, path):
    """PATH a shared mount of its own (in the mount namespace PREFIX enters),
    so that the mounts podman makes below it (/dev/shm's tmpfs) propagate as
    on a systemd host, where / is shared from boot. podman 4.3 starts conmon,
    and so its exit command `podman container cleanup`, in a copy of its
    mount namespace when a container's uid map leaves host root out
    (`--uidmap`; createRootlessContainer) and counts on that propagation to
    unmount /dev/shm on the host. This host has no systemd and private
    mounts: the cleanup unmounted only its copy, and `podman rm` failed
    "unlinkat .../userdata/shm: device or resource busy" whenever the exit
    command took the container's lock first (with runc too; shmbusy)."""
    for argv in (["mount", "--bind", str(path), str(path)],
                 ["mount", "--make-shared", str(path)]):
        r = subprocess.run([*prefix, *argv], capture_output=True, text=True)
        assert r.returncode == 0, f"{' '.join(argv)}: {r.stderr}"
    info = subprocess.run([*prefix, "cat", "/proc/self/mountinfo"], capture_output=True,
                          text=True, check=True).stdout
    assert any(l.split()[4] == str(path) and "shared:" in l.split(" - ")[0]
               for l in info.splitlines()), f"{path} is not a shared mount:\n{info}"


def mounts_of(pid):
    """'TYPE MOUNTPOINT' of each mount in the mount namespace of PID."""
    try:
        with open(f"/proc/{pid}/mountinfo") as f:
            return "\n".join(f"{l.split(' - ')[1].split()[0]} {l.split()[4]}" for l in f)
    except OSError:
        return ""


def mounts_under(path):
    prefix = str(path)
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4]
            if mp.startswith(prefix):
                out.append(mp)
    return out


@pytest.fixture
def podman_cgroup2(tmp_path):
    """A Podman whose commands all run in a mount namespace with cgroup v2
    on /sys/fs/cgroup (see Podman's cgroup2)."""
    if PODMAN is None:
        pytest.skip("podman is not installed (Debian package podman)")
    if not PAYLOAD.exists():
        pytest.skip(f"{PAYLOAD} is missing: run 'make' first")
    p = Podman(tmp_path, cgroup2=True)
    try:
        yield p
    finally:
        p.cleanup()


@pytest.fixture
def podman(tmp_path):
    if PODMAN is None:
        pytest.skip("podman is not installed (Debian package podman)")
    if not PAYLOAD.exists():
        pytest.skip(f"{PAYLOAD} is missing: run 'make' first")
    p = Podman(tmp_path)
    try:
        yield p
    finally:
        p.cleanup()
