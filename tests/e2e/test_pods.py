"""Pods: every container of a pod in the VM of its sandbox, each with a shim
of its own (docs/pods.md). These drive cocoon directly with the specs the
engines write: podman's (namespace paths /proc/<infra shim pid>/ns/...) and
CRI's (annotations io.kubernetes.cri.*)."""
import json
import os
import pathlib
import subprocess
import time

import pytest

from conftest import COCOON, Bundle, qemu_pids, wait_for, write_bundle

HTTP_PORT = 8080


def ns_paths(pid, types=("network", "ipc", "uts")):
    files = {"network": "net", "ipc": "ipc", "uts": "uts"}

    def extra(spec):
        nss = [n for n in spec["linux"]["namespaces"] if n["type"] not in types]
        nss += [{"type": t, "path": f"/proc/{pid}/ns/{files[t]}"} for t in types]
        spec["linux"]["namespaces"] = nss
    return extra


def with_www(bundle):
    www = bundle.rootfs / "www"
    www.mkdir(exist_ok=True)
    (www / "index.html").write_text("hello from the pod\n")
    return bundle


def run_fg(env, cid, bundle, timeout=120):
    return subprocess.run([str(COCOON), "--root", str(env.root), "--config", str(env.config),
                           "run", "--bundle", str(bundle.path), cid],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def start_sandbox(env, cid="sandbox", hostname="podhost", annotations=None):
    def extra(spec):
        if annotations:
            spec["annotations"] = annotations
    b = write_bundle(env.tmp / cid, ["payload", "sleep", "1000"], hostname=hostname, extra=extra)
    rc, _, err = env.create(cid, b)
    assert rc == 0, err.read_text()
    env.run("start", cid, check=True)
    return env.state(cid)["pid"]


def assert_gone(env):
    assert qemu_pids(str(env.tmp)) == [], "a VM was left behind"
    assert not [p for p in env.root.iterdir()] if env.root.exists() else True


def test_pod_members_share_network_ipc_uts_in_one_vm(env):
    pid = start_sandbox(env)
    assert len(qemu_pids(str(env.tmp))) == 1

    # A member serves HTTP on the pod's loopback...
    web = with_www(write_bundle(env.tmp / "web", ["busybox", "httpd", "-f", "-p",
                                                   f"127.0.0.1:{HTTP_PORT}", "-h", "/www"],
                                extra=ns_paths(pid)))
    rc, _, err = env.create("web", web)
    assert rc == 0, err.read_text()
    env.run("start", "web", check=True)
    web_state = env.state("web")
    assert web_state["status"] == "running"
    assert web_state["pid"] not in (0, pid), "a member has a shim (and pid) of its own"
    assert len(qemu_pids(str(env.tmp))) == 1, "a member must not boot a VM"

    # ...another fetches it over localhost, sees the pod's hostname and
    # the SysV segment a third put into the pod's IPC namespace.
    put = write_bundle(env.tmp / "put", ["payload", "shm-put", "4242", "shared-by-ipc"],
                       extra=ns_paths(pid))
    r = run_fg(env, "put", put)
    assert r.returncode == 0, r.stderr
    get = write_bundle(env.tmp / "get", ["sh", "-c",
                                         "payload hostname; payload shm-get 4242; "
                                         f"printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | "
                                         f"busybox nc 127.0.0.1 {HTTP_PORT}"],
                       extra=ns_paths(pid))
    r = run_fg(env, "get", get)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[0] == "podhost"
    assert out[1] == "shared-by-ipc"
    assert "hello from the pod" in r.stdout
    assert len(qemu_pids(str(env.tmp))) == 1

    # Each container has its own lifecycle: a member's kill, state and
    # delete leave the others running.
    env.run("kill", "web", "KILL", check=True)
    assert wait_for(lambda: env.state("web")["status"] == "stopped", timeout=30)
    assert env.state("sandbox")["status"] == "running"
    for cid in ("web", "put", "get"):
        env.run("delete", cid, check=True)
    assert len(qemu_pids(str(env.tmp))) == 1
    env.run("kill", "sandbox", "KILL", check=True)
    assert wait_for(lambda: env.state("sandbox")["status"] == "stopped", timeout=30)
    env.run("delete", "sandbox", check=True)
    assert qemu_pids(str(env.tmp)) == []
    assert list(env.root.iterdir()) == []


def test_member_pause_ps_exec_and_exit_status_are_its_own(env):
    """A member's pause/resume, ps, exec and exit status are that container's
    alone, in the pod's one VM: the sandbox and the other member run on."""
    pid = start_sandbox(env)
    a = write_bundle(env.tmp / "a", ["sh", "-c", "payload sleep 1000 & exec payload counter 200"],
                     extra=ns_paths(pid))
    b = write_bundle(env.tmp / "b", ["payload", "counter", "200"], extra=ns_paths(pid))
    outs = {}
    for cid, bundle in (("a", a), ("b", b)):
        rc, outs[cid], err = env.create(cid, bundle)
        assert rc == 0, err.read_text()
        env.run("start", cid, check=True)
    assert wait_for(lambda: all(len(lines(o)) >= 3 for o in outs.values()), timeout=60)
    assert len(qemu_pids(str(env.tmp))) == 1

    # ps: each container's own processes (the guest's pids), none shared.
    ps = {cid: json.loads(env.run("ps", "--format", "json", cid, check=True).stdout)
          for cid in ("sandbox", "a", "b")}
    assert (len(ps["sandbox"]), len(ps["a"]), len(ps["b"])) == (1, 2, 1), ps
    assert len(set(ps["sandbox"]) | set(ps["a"]) | set(ps["b"])) == 4, ps

    # pause: a stops counting, b does not; resume: a goes on.
    env.run("pause", "a", check=True)
    assert [env.state(c)["status"] for c in ("sandbox", "a", "b")] == ["running", "paused", "running"]
    time.sleep(0.5)  # a line written just before the freeze may still be on its way
    na, nb = len(lines(outs["a"])), len(lines(outs["b"]))
    time.sleep(2)
    assert len(lines(outs["a"])) == na, "a paused member went on"
    assert len(lines(outs["b"])) >= nb + 5, "pausing a stopped b"
    env.run("resume", "a", check=True)
    assert env.state("a")["status"] == "running"
    assert wait_for(lambda: len(lines(outs["a"])) >= na + 3, timeout=30), "a did not resume"
    got = [int(x) for x in lines(outs["a"])]
    assert got == list(range(got[0], got[0] + len(got))), got

    # exec and exit status: the container's own.
    r = env.run("exec", "b", "payload", "exit", "7")
    assert r.returncode == 7, r.stderr
    r = env.run("exec", "a", "payload", "hostname")
    assert r.returncode == 0 and r.stdout == "podhost\n", r.stdout + r.stderr
    c = write_bundle(env.tmp / "c", ["payload", "exit", "3"], extra=ns_paths(pid))
    r = run_fg(env, "c", c)
    assert r.returncode == 3, r.stderr
    env.run("delete", "c", check=True)
    env.run("kill", "b", "KILL", check=True)
    assert wait_for(lambda: env.state("b")["status"] == "stopped", timeout=30)
    assert [env.state(c)["status"] for c in ("sandbox", "a")] == ["running", "running"]
    assert len(qemu_pids(str(env.tmp))) == 1
    for cid in ("b", "a", "sandbox"):
        env.run("delete", "--force", cid, check=True)
    assert qemu_pids(str(env.tmp)) == [] and list(env.root.iterdir()) == []


@pytest.mark.parametrize("engine", ["containerd", "cri-o"])
def test_cri_annotations_join_the_sandbox(env, engine):
    keys = {"containerd": ("io.kubernetes.cri.container-type", "io.kubernetes.cri.sandbox-id"),
            "cri-o": ("io.kubernetes.cri-o.ContainerType", "io.kubernetes.cri-o.SandboxID")}[engine]
    start_sandbox(env, "pause1", annotations={keys[0]: "sandbox", keys[1]: "pause1"})

    def extra(spec):
        spec["annotations"] = {keys[0]: "container", keys[1]: "pause1"}
    b = write_bundle(env.tmp / "app", ["payload", "hostname"], extra=extra)
    r = run_fg(env, "app", b)
    assert r.returncode == 0, r.stderr
    # Without namespace paths it has its own UTS namespace, in the pod's VM.
    assert r.stdout.strip() == "cocoon"
    assert len(qemu_pids(str(env.tmp))) == 1
    env.run("delete", "app", check=True)
    env.run("delete", "--force", "pause1", check=True)
    assert qemu_pids(str(env.tmp)) == []


def test_member_killed_with_force_delete(env):
    pid = start_sandbox(env)
    b = write_bundle(env.tmp / "m", ["payload", "counter"], extra=ns_paths(pid))
    rc, _, err = env.create("m", b)
    assert rc == 0, err.read_text()
    env.run("start", "m", check=True)
    member_pid = env.state("m")["pid"]
    env.run("delete", "--force", "m", check=True)
    assert not (env.root / "m").exists()
    assert wait_for(lambda: not pid_alive(member_pid), timeout=10)
    # The sandbox's VM lives on, and takes a new member under the same id.
    assert env.state("sandbox")["status"] == "running"
    b2 = write_bundle(env.tmp / "m2", ["payload", "echo", "again"], extra=ns_paths(pid))
    r = run_fg(env, "m", b2)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "again\n"
    env.run("delete", "m", check=True)
    env.run("delete", "--force", "sandbox", check=True)
    assert qemu_pids(str(env.tmp)) == []


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("target", ["self", "init"])
def test_proc_path_of_a_foreign_process_is_refused(env, target):
    pid = 1 if target == "init" else __import__("os").getpid()
    b = write_bundle(env.tmp / "x", ["payload", "echo", "x"], extra=ns_paths(pid, ("ipc",)))
    r = env.run("create", "--bundle", str(b.path), "x")
    assert r.returncode == 1
    assert f"process {pid} is not the shim of a running cocoon container" in r.stderr
    assert qemu_pids(str(env.tmp)) == []
    assert not (env.root / "x").exists()


def test_joining_a_pid_namespace_is_refused(env):
    pid = start_sandbox(env)
    b = write_bundle(env.tmp / "x", ["payload", "echo", "x"], extra=ns_paths(pid, ("ipc",)))
    spec = json.loads(b.config.read_text())
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "pid"]
    spec["linux"]["namespaces"].append({"type": "pid", "path": f"/proc/{pid}/ns/pid"})
    b.config.write_text(json.dumps(spec))
    r = env.run("create", "--bundle", str(b.path), "x")
    assert r.returncode == 1
    assert f"joining the pid namespace of /proc/{pid}/ns/pid (Kubernetes' shareProcessNamespace) " \
           "is not supported: in the pod's VM each container's processes are a pid namespace of " \
           "their own, which CRIU checkpoints and restores whole" in r.stderr, r.stderr
    assert "share their network, IPC and UTS namespaces only" in r.stderr
    assert not (env.root / "x").exists()
    # The mount namespace, the same.
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] not in ("pid", "mount")]
    spec["linux"]["namespaces"] += [{"type": "pid"}, {"type": "mount", "path": f"/proc/{pid}/ns/mnt"}]
    b.config.write_text(json.dumps(spec))
    r = env.run("create", "--bundle", str(b.path), "x")
    assert r.returncode == 1 and "joining the mount namespace" in r.stderr, r.stderr
    env.run("delete", "--force", "sandbox", check=True)


def lines(path):
    return [x for x in path.read_text().splitlines() if x.strip()]


def test_member_checkpointed_and_restored_in_place(env):
    """One container of a pod checkpointed and restored into the same pod:
    the VM runs on, the sandbox and the other member are untouched, and
    the restored member is back in the pod's network and IPC namespaces."""
    pid = start_sandbox(env)
    vm = qemu_pids(str(env.tmp))
    assert len(vm) == 1
    srv = write_bundle(env.tmp / "srv", ["payload", "tcp", "7000"], extra=ns_paths(pid))
    rc, _, err = env.create("srv", srv)
    assert rc == 0, err.read_text()
    env.run("start", "srv", check=True)
    srv_pid = env.state("srv")["pid"]
    cnt = write_bundle(env.tmp / "cnt", ["sh", "-c", "payload shm-put 99 before-checkpoint && "
                                                     "exec payload counter 200"], extra=ns_paths(pid))
    rc, out, err = env.create("cnt", cnt)
    assert rc == 0, err.read_text()
    env.run("start", "cnt", check=True)
    assert wait_for(lambda: len(lines(out)) >= 5, timeout=60), out.read_text() + err.read_text()

    r = env.run("checkpoint", "--image-path", str(env.tmp / "ck"), "cnt", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (env.tmp / "ck" / "cocoon.json").exists()
    assert wait_for(lambda: env.state("cnt")["status"] == "stopped", timeout=30)
    last = int(lines(out)[-1])
    env.run("delete", "cnt", check=True)
    assert qemu_pids(str(env.tmp)) == vm, "the pod's VM must run on"

    restored_out = env.restore_detached("cnt", env.tmp / "ck", cnt)[1]
    assert env.state("cnt")["status"] == "running"
    assert qemu_pids(str(env.tmp)) == vm, "restored into the same VM"
    assert wait_for(lambda: len(lines(restored_out)) >= 3, timeout=60)
    got = [int(x) for x in lines(restored_out)[:3]]
    assert got[0] == last + 1, f"counter restarted at {got[0]}, expected {last + 1}"

    # Still in the pod: its loopback reaches srv, its IPC namespace is the
    # pod's (a segment made before the checkpoint, and one made now by
    # another member, both seen from the restored member).
    assert env.state("srv")["pid"] == srv_pid and env.state("srv")["status"] == "running"
    put = write_bundle(env.tmp / "put", ["payload", "shm-put", "98", "after-restore"], extra=ns_paths(pid))
    assert run_fg(env, "put", put).returncode == 0
    r = env.run("exec", "cnt", "sh", "-c", "payload shm-get 99; payload shm-get 98; payload tcp-connect 7000")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[:2] == ["before-checkpoint", "after-restore"], r.stdout
    assert "tcp-connect 42" in r.stdout, r.stdout
    assert env.state("sandbox")["status"] == "running"

    for cid in ("cnt", "srv", "put"):
        env.run("delete", "--force", cid, check=True)
    env.run("delete", "--force", "sandbox", check=True)
    assert qemu_pids(str(env.tmp)) == []


def restore_detached(env, cid, images, bundle):
    return env.restore_detached(cid, images, bundle)[1]


def repoint(bundle, pid):
    """A member's spec after its sandbox was restored: podman would name the
    new infra pid in the namespace paths, as it does at any start."""
    spec = json.loads(bundle.config.read_text())
    ns_paths(pid)(spec)
    bundle.config.write_text(json.dumps(spec))


def test_whole_pod_checkpointed_and_restored_into_a_fresh_vm(env):
    pid = start_sandbox(env)
    old_vm = qemu_pids(str(env.tmp))
    srv = write_bundle(env.tmp / "srv", ["payload", "tcp", "7000"], extra=ns_paths(pid))
    rc, _, err = env.create("srv", srv)
    assert rc == 0, err.read_text()
    env.run("start", "srv", check=True)
    cnt = write_bundle(env.tmp / "cnt", ["sh", "-c", "payload shm-put 77 pod-ipc && exec payload counter 200"],
                       extra=ns_paths(pid))
    rc, out, err = env.create("cnt", cnt)
    assert rc == 0, err.read_text()
    env.run("start", "cnt", check=True)
    assert wait_for(lambda: len(lines(out)) >= 5, timeout=60)

    # A member is not a pod.
    r = env.run("checkpoint", "--pod", "--image-path", str(env.tmp / "no"), "cnt")
    assert r.returncode == 1 and "cnt is a member of a pod, not its sandbox" in r.stderr, r.stderr
    assert env.state("cnt")["status"] == "running" and not (env.tmp / "no").exists()

    images = env.tmp / "pod-ck"
    r = env.run("checkpoint", "--pod", "--image-path", str(images), "sandbox", timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    pod = json.loads((images / "pod.json").read_text())
    assert pod["sandbox"] == "sandbox" and sorted(pod["members"]) == ["cnt", "srv"]
    for cid in ("cnt", "srv", "sandbox"):
        assert (images / cid / "cocoon.json").exists()
        assert wait_for(lambda: env.state(cid)["status"] == "stopped", timeout=30), cid
    last = int(lines(out)[-1])
    for cid in ("cnt", "srv", "sandbox"):
        env.run("delete", cid, check=True)
    assert wait_for(lambda: qemu_pids(str(env.tmp)) == [], timeout=30)

    # The engine's order: the sandbox (a fresh VM), then its members.
    sb_bundle = Bundle(env.tmp / "sandbox")  # start_sandbox's
    restore_detached(env, "sandbox", images / "sandbox", sb_bundle)
    new_vm = qemu_pids(str(env.tmp))
    assert len(new_vm) == 1 and new_vm != old_vm
    new_pid = env.state("sandbox")["pid"]
    for cid, b in (("srv", srv), ("cnt", cnt)):
        repoint(b, new_pid)
    restore_detached(env, "srv", images / "srv", srv)
    out2 = restore_detached(env, "cnt", images / "cnt", cnt)
    assert qemu_pids(str(env.tmp)) == new_vm, "one VM for the restored pod"
    assert wait_for(lambda: len(lines(out2)) >= 3, timeout=60)
    assert int(lines(out2)[0]) == last + 1, "the counter restarted"
    # The pod's IPC namespace came back with the segment, its loopback with
    # the listening server, its UTS namespace with the hostname.
    r = env.run("exec", "cnt", "sh", "-c", "payload shm-get 77; payload hostname; payload tcp-connect 7000")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[:2] == ["pod-ipc", "podhost"], r.stdout
    assert "tcp-connect 42" in r.stdout
    for cid in ("cnt", "srv", "sandbox"):
        env.run("delete", "--force", cid, check=True)
    assert qemu_pids(str(env.tmp)) == []


def vm_args(env):
    pids = qemu_pids(str(env.tmp))
    assert len(pids) == 1, pids
    return pathlib.Path(f"/proc/{pids[0]}/cmdline").read_bytes().decode().split("\0")


def member_with(sandbox_id, **res):
    def extra(spec):
        spec["annotations"] = {"io.kubernetes.cri.container-type": "container",
                               "io.kubernetes.cri.sandbox-id": sandbox_id}
        spec["linux"]["resources"] = res
    return extra


def test_pod_vm_sized_from_the_pod_limits_and_a_member_that_does_not_fit_refused(env):
    """containerd's pod-level annotations size the pod's VM; members whose
    limits do not fit in it are refused by name, with both figures, and
    leave nothing behind (docs/pods.md "Pod sizing")."""
    start_sandbox(env, "pause2", annotations={
        "io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-id": "pause2",
        "io.kubernetes.cri.sandbox-memory": str(200 << 20),
        "io.kubernetes.cri.sandbox-cpu-quota": "100000", "io.kubernetes.cri.sandbox-cpu-period": "100000"})
    args = vm_args(env)
    # 200 MiB for the pod + the guest's 128 + 200 of checkpoint headroom; 1 vCPU.
    assert args[args.index("-m") + 1] == "528", args
    assert args[args.index("-smp") + 1] == "1", args
    vm = qemu_pids(str(env.tmp))

    m1 = write_bundle(env.tmp / "m1", ["payload", "sleep", "1000"], extra=member_with("pause2", memory={"limit": 150 << 20}))
    rc, _, err = env.create("m1", m1)
    assert rc == 0, err.read_text()
    env.run("start", "m1", check=True)

    m2 = write_bundle(env.tmp / "m2", ["payload", "echo", "x"], extra=member_with("pause2", memory={"limit": 100 << 20}))
    rc, _, err = env.create("m2", m2)
    msg = err.read_text()
    assert rc != 0, msg
    assert ("container m2: its memory limit of 100 MiB does not fit in pod pause2: the pod's containers "
            "have 200 MiB (the annotations io.kubernetes.cri.sandbox-*), 150 MiB of it taken") in msg, msg
    assert not (env.root / "m2").exists()

    m3 = write_bundle(env.tmp / "m3", ["payload", "echo", "x"],
                      extra=member_with("pause2", cpu={"quota": 200000, "period": 100000}))
    rc, _, err = env.create("m3", m3)
    msg = err.read_text()
    assert rc != 0 and "its CPU limit of 2.00 CPUs does not fit in pod pause2, whose VM has 1 vCPUs" in msg, msg
    assert not (env.root / "m3").exists()

    # What fits still does, in the same VM; the first member ran on.
    m4 = write_bundle(env.tmp / "m4", ["payload", "echo", "fits"], extra=member_with("pause2", memory={"limit": 50 << 20}))
    r = run_fg(env, "m4", m4)
    assert r.returncode == 0 and r.stdout == "fits\n", r.stderr
    assert env.state("m1")["status"] == "running"
    assert qemu_pids(str(env.tmp)) == vm
    for cid in ("m4", "m1"):
        env.run("delete", "--force", cid, check=True)
    env.run("delete", "--force", "pause2", check=True)
    assert qemu_pids(str(env.tmp)) == []


def rounds(path):
    """The client's round trips: (v, ok) for each 'tcp v -> w ok|BAD' line."""
    out = []
    for line in lines(path):
        p = line.split()
        if len(p) == 5 and p[0] == "tcp" and p[1].isdigit():
            out.append((int(p[1]), p[4] == "ok"))
    return out


def annotate_criu_config(bundle, conf):
    spec = json.loads(bundle.config.read_text())
    spec.setdefault("annotations", {})["org.criu.config"] = str(conf)
    bundle.config.write_text(json.dumps(spec))


def test_whole_pod_restored_in_one_command_with_its_loopback_connection(env):
    """checkpoint --pod, then restore --pod: the whole pod back in one fresh
    VM from pod.json, and a TCP connection between two members over
    127.0.0.1 carries on (each member is restored by a CRIU run of its own;
    the pod's loopback is held until all are back)."""
    pid = start_sandbox(env)
    old_vm = qemu_pids(str(env.tmp))
    srv = write_bundle(env.tmp / "srv", ["payload", "tcp", "7100"], extra=ns_paths(pid))
    rc, _, err = env.create("srv", srv)
    assert rc == 0, err.read_text()
    env.run("start", "srv", check=True)
    cli = write_bundle(env.tmp / "cli", ["payload", "tcp-client", "7100"], extra=ns_paths(pid))
    rc, out, err = env.create("cli", cli)
    assert rc == 0, err.read_text()
    env.run("start", "cli", check=True)
    assert wait_for(lambda: len(rounds(out)) >= 5, timeout=60), out.read_text() + err.read_text()

    images = env.tmp / "pod-ck"
    r = env.run("checkpoint", "--pod", "--tcp-established", "--image-path", str(images), "sandbox",
                timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    pod = json.loads((images / "pod.json").read_text())
    assert pod["bundles"]["cli"] == str(cli.path) and pod["bundles"]["sandbox"] == str(env.tmp / "sandbox")
    for cid in ("cli", "srv", "sandbox"):
        assert wait_for(lambda: env.state(cid)["status"] == "stopped", timeout=30), cid
    before = rounds(out)
    assert all(ok for _, ok in before) and "tcp broken" not in out.read_text()
    for cid in ("cli", "srv", "sandbox"):
        env.run("delete", cid, check=True)
    assert wait_for(lambda: qemu_pids(str(env.tmp)) == [], timeout=30)

    # Not a pod's checkpoint: refused by name, nothing restored.
    r = env.run("restore", "--pod", "--image-path", str(images / "srv"), "sandbox")
    assert r.returncode == 1 and "not a checkpoint of a whole pod" in r.stderr, r.stderr
    assert qemu_pids(str(env.tmp)) == [] and not (env.root / "sandbox").exists()

    # Each container's CRIU settings are its own bundle's (org.criu.config),
    # as for a restore of it alone, read before anything boots: a member's
    # that cannot be read stops the whole restore, naming it.
    annotate_criu_config(cli, env.tmp / "missing.conf")
    r = env.run("restore", "--pod", "--image-path", str(images), "sandbox")
    assert r.returncode == 1, r.stdout
    assert f"restore cli (bundle {cli.path})" in r.stderr and "org.criu.config" in r.stderr, r.stderr
    assert "missing.conf" in r.stderr, r.stderr
    assert qemu_pids(str(env.tmp)) == [] and list(env.root.iterdir()) == []
    # A readable one is used: the connection's two ends get
    # --tcp-established from it alone (CRIU refuses a connected socket
    # without it), the command line does not say it.
    conf = env.tmp / "tcp.conf"
    conf.write_text("# the pod's connections\ntcp-established\n")
    for b in (cli, srv):
        annotate_criu_config(b, conf)

    restored = env.tmp / "pod.restored.out"
    with open(restored, "wb") as o, open(env.tmp / "pod.restored.err", "wb") as e:
        r = subprocess.run([str(COCOON), "--root", str(env.root), "--config", str(env.config),
                            "restore", "--pod", "--image-path", str(images),
                            "sandbox"], stdin=subprocess.DEVNULL, stdout=o, stderr=e, timeout=900)
    assert r.returncode == 0, (env.tmp / "pod.restored.err").read_text()
    new_vm = qemu_pids(str(env.tmp))
    assert len(new_vm) == 1 and new_vm != old_vm, "one fresh VM for the restored pod"
    for cid in ("sandbox", "srv", "cli"):
        assert env.state(cid)["status"] == "running", cid
    # The same connection goes on: the next round trip is the one after
    # the last before the checkpoint (a reconnect would start at 0 again),
    # and the client never saw it break.
    assert wait_for(lambda: len(rounds(restored)) >= 3 or "tcp broken" in restored.read_text(),
                    timeout=180), restored.read_text()
    after = rounds(restored)
    assert "tcp broken" not in restored.read_text(), restored.read_text()
    assert after[0][0] == before[-1][0] + 2, (before[-3:], after[:3])
    assert all(ok for _, ok in after), after
    assert [v for v, _ in after] == list(range(after[0][0], after[0][0] + 2 * len(after), 2))
    for cid in ("cli", "srv", "sandbox"):
        env.run("delete", "--force", cid, check=True)
    assert qemu_pids(str(env.tmp)) == []


def test_sandbox_shim_serves_the_pod_while_a_member_is_dumped(env):
    """A member's checkpoint goes through the sandbox's shim, which must not
    wait for it: while CRIU dumps one member (held at its post-dump stage by
    the fault injection, as a slow dump), another member's exec and a
    third's kill get through (they used to wait until the dump ended)."""
    pid = start_sandbox(env)
    for cid in ("big", "other", "victim"):
        b = write_bundle(env.tmp / cid, ["payload", "sleep", "1000"], extra=ns_paths(pid))
        rc, _, err = env.create(cid, b)
        assert rc == 0, err.read_text()
        env.run("start", cid, check=True)

    ck = subprocess.Popen([str(COCOON), "--root", str(env.root), "--config", str(env.config),
                           "checkpoint", "--image-path", str(env.tmp / "ck"), "big"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "COCOON_FAULT": "post-dump:stall"})
    try:
        time.sleep(2)  # the dump is under way; it stalls until the agent's watch ends it
        t0 = time.monotonic()
        r = env.run("exec", "other", "payload", "echo", "during-the-dump", timeout=120)
        assert r.returncode == 0 and r.stdout == "during-the-dump\n", r.stderr
        env.run("kill", "victim", "KILL", check=True, timeout=120)
        assert wait_for(lambda: env.state("victim")["status"] == "stopped", timeout=30)
        served = time.monotonic() - t0
        assert ck.poll() is None, f"exec and kill were served only once the dump ended ({served:.1f} s)"
    finally:
        stdout, stderr = ck.communicate(timeout=600)
    # The stalled dump fails, and the member runs on as it was.
    assert ck.returncode != 0, stdout + stderr
    assert env.state("big")["status"] == "running"
    assert env.run("exec", "big", "payload", "echo", "alive").stdout == "alive\n"
    assert env.state("other")["status"] == "running"
    for cid in ("big", "other", "victim"):
        env.run("delete", "--force", cid, check=True)
    env.run("delete", "--force", "sandbox", check=True)
    assert qemu_pids(str(env.tmp)) == []
