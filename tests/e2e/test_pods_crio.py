"""CRI-O's pods (docs/pods.md): CRI-O pins a pod's IPC and UTS namespaces
before it creates the pod's infra container, and every container of the
pod, the infra container included, names them by path."""
import subprocess

import pytest

from conftest import qemu_pids, write_bundle
from test_pods import run_fg


def pinned_namespaces(where):
    """IPC and UTS namespaces bound on files, as CRI-O's pinns makes them
    for a pod (/var/run/ipcns/<id>, /var/run/utsns/<id>) before its infra
    container is created."""
    where.mkdir(parents=True, exist_ok=True)
    ipc, uts = where / "ipcns", where / "utsns"
    for f in (ipc, uts):
        f.touch()
    r = subprocess.run(["unshare", f"--ipc={ipc}", f"--uts={uts}", "true"], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot pin namespaces here (unshare): {r.stderr.strip()}")
    return ipc, uts


def test_crio_pod_with_its_pinned_namespaces(env):
    """CRI-O's specs: the infra container and every container of the pod
    name the IPC and UTS namespaces CRI-O pinned for the pod by path. The
    sandbox takes them as its own (new ones in the VM) and the members
    join the sandbox's: its hostname, its SysV segments. Before, the
    sandbox was refused ("joining an existing ipc namespace is not
    supported"), so no CRI-O pod could run."""
    ipc, uts = pinned_namespaces(env.tmp / "pinned")
    try:
        def pinned(spec):
            spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] not in ("ipc", "uts")]
            spec["linux"]["namespaces"] += [{"type": "ipc", "path": str(ipc)}, {"type": "uts", "path": str(uts)}]

        def sandbox(spec):
            spec["annotations"] = {"io.kubernetes.cri-o.ContainerType": "sandbox",
                                   "io.kubernetes.cri-o.SandboxID": "crio1"}
            pinned(spec)
        b = write_bundle(env.tmp / "crio1", ["payload", "sleep", "1000"], hostname="criopod", extra=sandbox)
        rc, _, err = env.create("crio1", b)
        assert rc == 0, err.read_text()
        env.run("start", "crio1", check=True)
        vms = qemu_pids(str(env.tmp))
        assert len(vms) == 1
        r = env.run("exec", "crio1", "payload", "shm-put", "91", "crio-pod")
        assert r.returncode == 0, r.stderr

        def member(spec):
            spec["annotations"] = {"io.kubernetes.cri-o.ContainerType": "container",
                                   "io.kubernetes.cri-o.SandboxID": "crio1"}
            pinned(spec)
        m = write_bundle(env.tmp / "crioapp", ["sh", "-c", "payload hostname; payload shm-get 91"], extra=member)
        r = run_fg(env, "crioapp", m)
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines() == ["criopod", "crio-pod"], r.stdout
        assert qemu_pids(str(env.tmp)) == vms, "one VM for the pod"
        env.run("delete", "crioapp", check=True)
        env.run("delete", "--force", "crio1", check=True)
        assert qemu_pids(str(env.tmp)) == []
    finally:
        for f in (ipc, uts):
            subprocess.run(["umount", str(f)], capture_output=True)
