"""Kubernetes-shaped pods through containerd's runc shim (`ctr run` with the
CRI annotations and namespace paths, as test_containerd's pod tests): the
pod's size from CRI's sandbox annotations, and a member checkpointed and
restored in place with `ctr` (docs/pods.md)."""
import os
import pathlib
import time

import pytest

from conftest import qemu_pids, wait_for
from containerd_util import IMAGE, gone_then_restored_live, remove_task, run_args, start_containerd, task_pid, \
    task_status
from test_network import Net, http_get

CRI = "io.kubernetes.cri"


@pytest.fixture(scope="module")
def cd(tmp_path_factory):
    yield from start_containerd(tmp_path_factory.mktemp("containerd-pods"))


def sandbox_args(sid, *annotations, net=None):
    """ctr run's flags for a CRI pod sandbox SID (its pause: a sleep)."""
    args = ["-d", "--annotation", f"{CRI}.container-type=sandbox", "--annotation", f"{CRI}.sandbox-id={sid}"]
    for a in annotations:
        args += ["--annotation", a]
    if net:
        args += ["--with-ns", f"network:{net.path}"]
    return args


def member_args(cd, sid, net=None):
    """ctr run's flags for a container of pod SID: the annotations, the
    pod's CNI netns by path, IPC and UTS by /proc/<sandbox pid>/ns/..."""
    pid = task_pid(cd, sid)
    args = ["--annotation", f"{CRI}.container-type=container", "--annotation", f"{CRI}.sandbox-id={sid}"]
    if net:
        args += ["--with-ns", f"network:{net.path}"]
    for t in ("ipc", "uts"):
        args += ["--with-ns", f"{t}:/proc/{pid}/ns/{t}"]
    return args


def start(cd, cid, *args):
    r = cd.ctr(*run_args(*args))
    assert r.returncode == 0, r.stdout + r.stderr
    assert wait_for(lambda: task_status(cd, cid) == "RUNNING", timeout=60), task_status(cd, cid)


def remove(cd, *cids):
    """CRI's order: the pod's containers, then its sandbox (last in CIDS)."""
    for cid in cids:
        remove_task(cd, cid)
        wait_for(lambda: task_status(cd, cid) in ("STOPPED", None), timeout=60)
        cd.ctr("tasks", "delete", cid)
        cd.ctr("containers", "delete", cid)


def qemu_args(pid):
    return pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def test_kubernetes_pod_sized_from_the_cri_sandbox_annotations(cd):
    """containerd's CRI puts the pod's limits on the sandbox as
    io.kubernetes.cri.sandbox-memory and sandbox-cpu-quota/-period: through
    the runc shim they size the pod's VM (-m, -smp), and a member whose
    memory limit does not fit in what is left is refused by ctr with
    cocoon's message, leaving the pod as it was (docs/pods.md "Pod
    sizing")."""
    sb, fit, big = f"szpod{os.getpid()}", f"szfit{os.getpid()}", f"szbig{os.getpid()}"
    before = set(qemu_pids(str(cd.tmp)))
    try:
        start(cd, sb, *sandbox_args(sb, f"{CRI}.sandbox-memory={200 << 20}", f"{CRI}.sandbox-cpu-quota=200000",
                                    f"{CRI}.sandbox-cpu-period=100000"), IMAGE, sb, "payload", "sleep", "1000")
        vms = sorted(set(qemu_pids(str(cd.tmp))) - before)
        assert len(vms) == 1
        args = qemu_args(vms[0])
        # 200 MiB for the pod + the guest's 128 + 200 of checkpoint headroom;
        # 2 vCPUs for a quota of two periods.
        assert args[args.index("-m") + 1] == "528", args
        assert args[args.index("-smp") + 1] == "2", args

        member = member_args(cd, sb)
        start(cd, fit, "-d", *member, "--memory-limit", str(150 << 20), IMAGE, fit, "payload", "sleep", "1000")
        r = cd.ctr(*run_args("-d", *member, "--memory-limit", str(100 << 20), IMAGE, big, "payload", "echo", "x"))
        assert r.returncode != 0, r.stdout
        assert (f"container {big}: its memory limit of 100 MiB does not fit in pod {sb}: the pod's containers "
                f"have 200 MiB (the annotations io.kubernetes.cri.sandbox-*), 150 MiB of it taken") in r.stderr, \
            r.stderr
        assert task_status(cd, big) in (None, "CREATED") and not task_pid(cd, big), "a refused member has a task"
        assert sorted(set(qemu_pids(str(cd.tmp))) - before) == vms, "the refusal changed the pod's VM"
        assert task_status(cd, fit) == "RUNNING" and task_status(cd, sb) == "RUNNING"
    finally:
        remove(cd, big, fit, sb)
    assert wait_for(lambda: set(qemu_pids(str(cd.tmp))) == before, timeout=30), "a VM outlived the pod"


def counted(cd, cid):
    r = cd.ctr("tasks", "exec", "--exec-id", f"n{time.time_ns()}", cid, "cat", "/tmp/count")
    return [int(x) for x in r.stdout.split() if x.isdigit()]


def test_kubernetes_pod_member_checkpointed_and_restored_in_place_through_ctr(cd):
    """One container of a CRI-shaped pod on a CNI-style network namespace,
    `ctr containers checkpoint --task` then killed, deleted and `ctr
    containers restore --live`: it comes back in the running pod's VM (the
    same QEMU, the sandbox's task untouched), its counter going on, in the
    pod's IPC (a SysV segment another member made), on its loopback and at
    the pod IP from the host."""
    sb, app, peer = f"ckpod{os.getpid()}", f"ckapp{os.getpid()}", f"ckpeer{os.getpid()}"
    net = Net("ckpod")
    before = set(qemu_pids(str(cd.tmp)))
    try:
        start(cd, sb, *sandbox_args(sb, net=net), IMAGE, sb, "payload", "sleep", "1000")
        vms = sorted(set(qemu_pids(str(cd.tmp))) - before)
        assert len(vms) == 1
        sb_pid = task_pid(cd, sb)
        member = member_args(cd, sb, net=net)
        start(cd, peer, "-d", *member, IMAGE, peer, "sh", "-c",
              "mkdir -p /www && echo served in the pod > /www/index.html && "
              "busybox httpd -p 8080 -h /www && exec payload sleep 1000")
        start(cd, app, "-d", *member, IMAGE, app, "sh", "-c", "payload counter 100 > /tmp/count")
        assert wait_for(lambda: len(counted(cd, app)) > 5, timeout=60)
        page = wait_for(lambda: _get_or_none(net.ip, 8080), timeout=60)
        assert page and "served in the pod" in page, page

        r = cd.ctr("containers", "checkpoint", "--rw", "--task", app, f"cocoon/{app}:ck", timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        at_checkpoint = len(counted(cd, app))
        gone_then_restored_live(cd, app, f"cocoon/{app}:ck")
        assert sorted(set(qemu_pids(str(cd.tmp))) - before) == vms, "not restored into the pod's VM"
        assert task_pid(cd, sb) == sb_pid and task_status(cd, peer) == "RUNNING", "the pod was touched"
        assert wait_for(lambda: len(counted(cd, app)) > at_checkpoint + 3, timeout=60), "the counter stopped"
        got = counted(cd, app)
        assert got == list(range(len(got))), f"the counter restarted or skipped: {got}"

        r = cd.ctr("tasks", "exec", "--exec-id", "put", peer, "payload", "shm-put", "77", "after-restore")
        assert r.returncode == 0, r.stderr
        r = cd.ctr("tasks", "exec", "--exec-id", "get", app, "sh", "-c",
                   "payload shm-get 77; printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | busybox nc 127.0.0.1 8080")
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.splitlines()[0] == "after-restore" and "served in the pod" in r.stdout, r.stdout
        page = wait_for(lambda: _get_or_none(net.ip, 8080), timeout=30)
        assert page and "served in the pod" in page, page
    finally:
        remove(cd, app, peer, sb)
        cd.ctr("images", "rm", f"cocoon/{app}:ck")
        net.close()
    assert wait_for(lambda: set(qemu_pids(str(cd.tmp))) == before, timeout=30), "a VM outlived the pod"


def _get_or_none(ip, port):
    try:
        return http_get(ip, port, timeout=5)
    except OSError:
        return None
