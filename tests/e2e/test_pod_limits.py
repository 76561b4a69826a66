"""A pod's limits hold inside its VM for its containers together
(docs/pods.md "The pod's limits in the guest"): the guest's cgroup
pod-<sandbox> carries them, with the sandbox's and each member's cgroup
beneath it, from create through a whole-pod checkpoint and restore into a
fresh VM and a member's restore into the running pod. Driven with the specs
containerd's CRI plugin writes (the pod-level annotations); podman's `pod
create --memory` is in test_podman_pods.py."""
import subprocess

from conftest import COCOON, qemu_pids, wait_for, write_bundle
from test_pods import start_sandbox

POD_MIB = 200
SANDBOX = "pause"


def annotations(kind):
    a = {"io.kubernetes.cri.container-type": kind, "io.kubernetes.cri.sandbox-id": SANDBOX}
    if kind == "sandbox":
        a.update({"io.kubernetes.cri.sandbox-memory": str(POD_MIB << 20),
                  "io.kubernetes.cri.sandbox-cpu-quota": "150000",
                  "io.kubernetes.cri.sandbox-cpu-period": "100000"})
    return a


def member_spec(spec):
    """A CRI member without limits of its own, which sees the guest's
    cgroups (as a runc container sees the host's without a cgroup
    namespace)."""
    spec["annotations"] = annotations("container")
    spec["mounts"].append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                           "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]})


def start_member(env, cid):
    b = write_bundle(env.tmp / cid, ["payload", "counter", "500"], extra=member_spec)
    rc, _, err = env.create(cid, b)
    assert rc == 0, err.read_text()
    env.run("start", cid, check=True)
    return b


def in_guest(env, cid, *args, timeout=180):
    r = env.run("exec", cid, *args, timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.split()


def assert_in_pod_cgroup(env, *cids):
    for cid in cids:
        assert in_guest(env, cid, "cat", "/proc/self/cgroup") == [f"0::/pod-{SANDBOX}/{cid}"], cid
    assert in_guest(env, cids[0], "cat", f"/sys/fs/cgroup/pod-{SANDBOX}/memory.max",
                    f"/sys/fs/cgroup/pod-{SANDBOX}/cpu.max") == [str(POD_MIB << 20), "150000", "100000"]


def assert_hog_killed(env, cid):
    """A process filling more than the pod's memory in a member without a
    limit of its own: the kernel OOM-kills it in the pod's cgroup (the VM
    would have room: it has the pod's memory twice, plus the guest's)."""
    try:
        r = env.run("exec", cid, "payload", "memhog", str(POD_MIB + 60), timeout=240)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"a {POD_MIB + 60} MiB hog in {cid} ran on above the pod's {POD_MIB} MiB")
    assert r.returncode == 137, (r.returncode, r.stdout[-300:], r.stderr)


def test_pod_limits_hold_across_whole_pod_and_member_restores(env):
    start_sandbox(env, SANDBOX, annotations=annotations("sandbox"))
    vm = qemu_pids(str(env.tmp))
    assert len(vm) == 1
    bundles = {cid: start_member(env, cid) for cid in ("m1", "m2")}
    assert_hog_killed(env, "m1")
    assert_in_pod_cgroup(env, "m1", "m2")

    # The whole pod into a fresh VM: its cgroup comes back with its limits,
    # the restored containers beneath it.
    images = env.tmp / "pod-ck"
    r = env.run("checkpoint", "--pod", "--image-path", str(images), SANDBOX, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    for cid in ("m1", "m2", SANDBOX):
        assert wait_for(lambda: env.state(cid)["status"] == "stopped", timeout=30), cid
        env.run("delete", cid, check=True)
    assert wait_for(lambda: qemu_pids(str(env.tmp)) == [], timeout=30)
    with open(env.tmp / "pod.restored.out", "wb") as o, open(env.tmp / "pod.restored.err", "wb") as e:
        r = subprocess.run([str(COCOON), "--root", str(env.root), "--config", str(env.config),
                            "restore", "--pod", "--image-path", str(images), SANDBOX],
                           stdin=subprocess.DEVNULL, stdout=o, stderr=e, timeout=900)
    assert r.returncode == 0, (env.tmp / "pod.restored.err").read_text()
    vm = qemu_pids(str(env.tmp))
    assert len(vm) == 1
    assert_in_pod_cgroup(env, "m1", "m2")
    assert in_guest(env, SANDBOX, "cat", "/proc/self/cgroup") == [f"0::/pod-{SANDBOX}/{SANDBOX}"]
    assert_hog_killed(env, "m2")
    assert [env.state(c)["status"] for c in (SANDBOX, "m1", "m2")] == ["running"] * 3

    # One member checkpointed and restored into the running pod: back
    # beneath the pod's cgroup, under its limit.
    r = env.run("checkpoint", "--image-path", str(env.tmp / "m1-ck"), "m1", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert wait_for(lambda: env.state("m1")["status"] == "stopped", timeout=30)
    env.run("delete", "m1", check=True)
    env.restore_detached("m1", env.tmp / "m1-ck", bundles["m1"])
    assert qemu_pids(str(env.tmp)) == vm, "restored into the pod's VM"
    assert_in_pod_cgroup(env, "m1")
    assert_hog_killed(env, "m1")
    assert [env.state(c)["status"] for c in (SANDBOX, "m1", "m2")] == ["running"] * 3

    for cid in ("m1", "m2", SANDBOX):
        env.run("delete", "--force", cid, check=True)
    assert qemu_pids(str(env.tmp)) == []
