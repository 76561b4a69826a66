"""containerd for the e2e tests: a private containerd (Containerd,
start_containerd for a module's fixture) with a hand-built OCI image of
busybox and the test payload imported, and the `ctr` steps several test
files share (test_containerd.py, test_terminal.py, test_vmsnap.py)."""
import gzip
import hashlib
import io
import json
import os
import pathlib
import shutil
import signal
import subprocess
import tarfile

from conftest import COCOON, PAYLOAD, pids_mentioning, wait_for

NS = "cocoon-e2e"
IMAGE = "docker.io/library/cocoon-test:latest"


def blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def build_image(dest, name=IMAGE, cmd=("payload", "echo", "default")):
    """A hand-built OCI image NAME: one layer with busybox and the test
    payload, CMD its command."""
    layer_buf = io.BytesIO()
    with tarfile.open(fileobj=layer_buf, mode="w") as t:
        def add_dir(path):
            info = tarfile.TarInfo(path)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            t.addfile(info)
        for d in ("bin", "tmp", "data", "etc", "proc", "sys", "dev"):
            add_dir(d)
        for src, path in ((PAYLOAD, "bin/payload"), (pathlib.Path("/bin/busybox"), "bin/busybox")):
            data = src.read_bytes()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o755
            t.addfile(info, io.BytesIO(data))
        for tool in ("sh", "cat", "echo", "sleep"):
            info = tarfile.TarInfo(f"bin/{tool}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            t.addfile(info)
    layer = layer_buf.getvalue()
    tag = "" if name == IMAGE else "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    layout = dest / f"layout{tag}"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    gz = gzip.compress(layer)
    layer_desc = blob(layout, gz)
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Env": ["PATH=/bin"], "Cmd": list(cmd)},
              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}}
    config_desc = blob(layout, json.dumps(config).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_desc},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer_desc}]}
    manifest_desc = blob(layout, json.dumps(manifest).encode())
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest_desc,
        "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "latest"}}]}
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    archive = dest / f"image{tag}.tar"
    with tarfile.open(archive, "w") as t:
        for p in sorted(layout.rglob("*")):
            t.add(p, arcname=str(p.relative_to(layout)), recursive=False)
    return archive


def clear_stale_state(ns):
    """containerd's runc shim keeps the runtime's state in
    /run/containerd/runc/NS, which no test owns: it outlives a killed run, and
    CI machines keep /run between runs, so a fixed ID such as "vm1" would meet
    "container vm1 already exists". No containerd of this suite runs now (one
    at a time), so whatever is there is stale: delete it through cocoon (which
    ends its shim and VM and removes its cgroups), then the directory."""
    for pid in pids_mentioning(f"-namespace {ns}"):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    root = pathlib.Path("/run/containerd/runc") / ns
    if not root.is_dir():
        return
    for entry in root.iterdir():
        subprocess.run([str(COCOON), "--root", str(root), "delete", "--force", entry.name],
                       capture_output=True, timeout=120)
    shutil.rmtree(root, ignore_errors=True)


class Containerd:
    """cgroup2: containerd, its shims and so cocoon run in a mount namespace
    of their own whose /sys/fs/cgroup is the cgroup2 hierarchy, so that they
    take the host for a cgroup v2 one (test_oom_kill_on_cgroup_v2...)."""

    def __init__(self, tmp, cgroup2=False):
        self.tmp = tmp
        self.prefix = []
        self.ns = "cocoon-v2" if cgroup2 else NS
        clear_stale_state(self.ns)
        self.sock = tmp / "containerd.sock"
        self.config = tmp / "containerd.toml"
        self.config.write_text(f"""version = 2
root = "{tmp}/root"
state = "{tmp}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{self.sock}.ttrpc"
""")
        # The shims, and so cocoon, inherit containerd's environment: the
        # tests steer cocoon's configuration through this file.
        self.cocoon_config = tmp / "cocoon.toml"
        self.cocoon_config.write_text("")
        self.log = open(tmp / "containerd.log", "wb")
        cmd = ["containerd", "--config", str(self.config)]
        if cgroup2:
            cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                   'mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec "$@"', "sh", *cmd]
        # containerd 1.6 unpacks a checkpoint it restores from its content
        # store into $XDG_RUNTIME_DIR/ctrd-checkpoint* (/tmp without it) and
        # never removes it: a whole VM's is the VM's full memory size, left
        # in /tmp by every run. Here it stays in the test's directory.
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log,
                                     env={**os.environ, "COCOON_CONFIG": str(self.cocoon_config),
                                          "XDG_RUNTIME_DIR": str(tmp)})
        if cgroup2:
            # ctr builds the spec: in containerd's namespace too.
            self.prefix = ["nsenter", "-t", str(self.proc.pid), "-m"]
        assert wait_for(lambda: self.proc.poll() is None and self.ctr("version").returncode == 0,
                        timeout=30), (tmp / "containerd.log").read_text()[-2000:]

    def ctr(self, *args, timeout=300, input=None):
        return subprocess.run([*self.prefix, "ctr", "--address", str(self.sock), "--namespace", self.ns, *args],
                              capture_output=True, text=True, timeout=timeout, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL)

    def stop(self):
        for t in self.ctr("tasks", "ls", "-q").stdout.split():
            try:
                remove_task(self, t)
            except subprocess.TimeoutExpired:
                pass  # the shims are killed below
        for c in self.ctr("containers", "ls", "-q").stdout.split():
            self.ctr("containers", "delete", c, timeout=60)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        # Shims outlive containerd by design; ours must not outlive the suite.
        for pid in pids_mentioning(str(self.tmp)) + pids_mentioning(f"-namespace {self.ns}"):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # Every mount containerd left in its directory: the tasks' rootfs
        # (`umount -R state` missed them, state being no mount point: the
        # rootfs of a task made by `ctr containers restore --live` stayed,
        # and a stale one in a fixed --basetemp failed the next run's setup).
        # Lazily, deepest first: a shim killed just now may still hold one.
        for m in sorted(mounts_under(self.tmp), key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        assert mounts_under(self.tmp) == [], f"mounts left under {self.tmp}: {mounts_under(self.tmp)}"


def mounts_under(path):
    """The mount points at or below PATH (this mount namespace's
    /proc/self/mountinfo; octal escapes such as \\040 decoded)."""
    prefix = str(path).rstrip("/")
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp == prefix or mp.startswith(prefix + "/"):
                out.append(mp)
    return out


def start_containerd(tmp, cgroup2=False):
    c = Containerd(tmp, cgroup2)
    try:
        archive = build_image(tmp)
        r = c.ctr("images", "import", "--snapshotter", "native", str(archive))
        assert r.returncode == 0, r.stderr
        assert IMAGE in c.ctr("images", "ls", "-q").stdout
        yield c
    finally:
        c.stop()


def run_args(*extra):
    return ["run", "--snapshotter", "native", "--runc-binary", str(COCOON), *extra]


def task_status(cd, cid):
    for line in cd.ctr("tasks", "ls").stdout.splitlines()[1:]:
        parts = line.split()
        if parts and parts[0] == cid:
            return parts[2]
    return None


def task_pid(cd, cid):
    for line in cd.ctr("tasks", "ls").stdout.splitlines()[1:]:
        parts = line.split()
        if parts and parts[0] == cid:
            return int(parts[1])
    return None


def remove_task(cd, cid, timeout=60):
    """Ends CID's task and deletes it, each ctr call within TIMEOUT. A task
    whose start failed (a refused restore: CREATED, pid 0, no process) is
    deleted without --force: ctr 1.6.20's `tasks delete -f` first waits for
    the task to exit, and one that never got a pid never does, so it hangs
    for ever (containerd issue 10441, fixed in ctr 1.6.35 and 1.7.21;
    docs/containerd.md). Plain `tasks delete` takes a CREATED task with pid
    0 at once (containerd issue 7357, in 1.6.20)."""
    pid = task_pid(cd, cid)
    if pid is None:
        return
    if pid == 0 and task_status(cd, cid) == "CREATED":
        cd.ctr("tasks", "delete", cid, timeout=timeout)
        return
    cd.ctr("tasks", "kill", "-s", "KILL", cid, timeout=timeout)
    cd.ctr("tasks", "delete", "-f", cid, timeout=timeout)


def gone_then_restored_live(cd, cid, ref):
    """CID, checkpointed into image REF (ctr containers checkpoint --task),
    is killed and deleted, task and container; then ctr containers restore
    --live makes it again from REF, running."""
    cd.ctr("tasks", "kill", "-s", "KILL", cid)
    assert wait_for(lambda: task_status(cd, cid) == "STOPPED", timeout=60)
    cd.ctr("tasks", "delete", cid)
    assert cd.ctr("containers", "delete", cid).returncode == 0
    r = cd.ctr("containers", "restore", "--rw", "--live", cid, ref, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert wait_for(lambda: task_status(cd, cid) == "RUNNING", timeout=60)
