"""The pod's VM lives until the last container of the pod is gone, whatever
the order (docs/pods.md "Lifetimes"): the keeper, a process apart from the
sandbox's shim, owns QEMU and the agent channel. Driven with cocoon's own
CLI and podman-shaped specs (namespace paths /proc/<sandbox pid>/ns/...);
test_podman_pods.py and test_containerd.py drive the same through the
engines."""
import json
import os
import select
import signal
import subprocess
import time

from conftest import COCOON, pids_mentioning, qemu_pids, wait_for, write_bundle
from test_network import Net
from test_pods import HTTP_PORT, lines, ns_paths, pid_alive, start_sandbox, with_www


def keeper_pid(env, cid="sandbox"):
    pid, _ = (env.root / cid / "keeper").read_text().split()
    return int(pid)


def member(env, cid, args, sandbox_pid):
    b = write_bundle(env.tmp / cid, args, extra=ns_paths(sandbox_pid))
    rc, out, err = env.create(cid, b)
    assert rc == 0, err.read_text()
    env.run("start", cid, check=True)
    return out


def listed(env):
    r = env.run("list", "--quiet", check=True)
    return r.stdout.split()


def counts_on(path, timeout=20):
    """The counter's output grows (the member runs)."""
    before = len(lines(path))
    return wait_for(lambda: len(lines(path)) >= before + 3, timeout=timeout)


def test_sandbox_deleted_first_its_members_keep_the_vm(env):
    sb = start_sandbox(env)
    keeper = keeper_pid(env)
    assert keeper != sb and pid_alive(keeper), "the VM's keeper is a process of its own"
    cnt = member(env, "cnt", ["payload", "counter", "200"], sb)
    web_b = with_www(write_bundle(env.tmp / "web", ["busybox", "httpd", "-f", "-p",
                                                     f"127.0.0.1:{HTTP_PORT}", "-h", "/www"],
                                  extra=ns_paths(sb)))
    rc, _, err = env.create("web", web_b)
    assert rc == 0, err.read_text()
    env.run("start", "web", check=True)
    assert wait_for(lambda: len(lines(cnt)) >= 3, timeout=60)
    assert len(qemu_pids(str(env.tmp))) == 1

    # The sandbox goes first, as `podman rm -f <infra>` or a kubelet that
    # lost its pause container would have it.
    env.run("delete", "--force", "sandbox", check=True)
    assert not pid_alive(sb), "the sandbox's shim (the engine's pid) has exited"
    r = env.run("state", "sandbox")
    assert r.returncode != 0 and "does not exist" in r.stderr, r.stderr
    assert sorted(listed(env)) == ["cnt", "web"]
    assert len(qemu_pids(str(env.tmp))) == 1, "the VM stays for the members"
    assert pid_alive(keeper)
    assert env.state("cnt")["status"] == "running"
    assert counts_on(cnt), "a member stopped with its sandbox"
    # The pod's network (held in the guest by the members) still works.
    r = env.run("exec", "cnt", "sh", "-c",
                f"printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | busybox nc 127.0.0.1 {HTTP_PORT}")
    assert r.returncode == 0 and "hello from the pod" in r.stdout, r.stdout + r.stderr
    # A new member cannot join a pod whose sandbox is gone.
    late = write_bundle(env.tmp / "late", ["payload", "echo", "x"], extra=ns_paths(sb))
    rc, _, err = env.create("late", late)
    assert rc != 0 and "sandbox" in err.read_text(), err.read_text()

    # One member stopped and deleted: the VM stays for the other.
    env.run("kill", "cnt", "KILL", check=True)
    assert wait_for(lambda: env.state("cnt")["status"] == "stopped", timeout=30)
    env.run("delete", "cnt", check=True)
    assert len(qemu_pids(str(env.tmp))) == 1
    assert env.state("web")["status"] == "running"

    # The last one: when its delete returns, the VM, the keeper and the
    # sandbox's directory are gone.
    env.run("delete", "--force", "web", check=True)
    assert qemu_pids(str(env.tmp)) == [], "the VM outlived the pod's last container"
    assert not pid_alive(keeper)
    assert pids_mentioning(str(env.root)) == []
    assert list(env.root.iterdir()) == []


def test_sandbox_exits_on_its_own_and_is_deleted_before_its_member(env):
    """A pause that ends by itself: its exit status reaches its shim's
    waiter (the engine), the member runs on; `delete` of the stopped sandbox
    leaves the member's VM alone."""
    b = write_bundle(env.tmp / "sandbox", ["sh", "-c", "sleep 6; exit 5"], hostname="podhost")
    rc, _, err = env.create("sandbox", b)
    assert rc == 0, err.read_text()
    sb = env.state("sandbox")["pid"]
    env.run("start", "sandbox", check=True)
    cnt = member(env, "cnt", ["payload", "counter", "200"], sb)
    # The waiter is create's child; here it was reparented: poll for its end.
    assert wait_for(lambda: env.state("sandbox")["status"] == "stopped", timeout=60)
    assert not pid_alive(sb)
    st = json.loads((env.root / "sandbox" / "state.json").read_text())
    assert st["exit_status"] == 5, st
    assert env.state("cnt")["status"] == "running"
    assert counts_on(cnt)
    r = env.run("exec", "cnt", "payload", "hostname")
    assert r.stdout.strip() == "podhost", r.stdout + r.stderr
    env.run("delete", "sandbox", check=True)
    assert len(qemu_pids(str(env.tmp))) == 1
    assert counts_on(cnt)
    env.run("kill", "cnt", "KILL", check=True)
    assert wait_for(lambda: env.state("cnt")["status"] == "stopped", timeout=30)
    # The member's shim waited for the VM's end before it exited.
    assert qemu_pids(str(env.tmp)) == []
    env.run("delete", "cnt", check=True)
    assert pids_mentioning(str(env.root)) == []
    assert list(env.root.iterdir()) == []


def test_a_crash_of_any_one_process_of_the_pod_leaks_nothing(env):
    """SIGKILL, one at a time: the sandbox's shim (the sandbox stops, its
    members run on), a member's shim (that container stops), then the
    keeper (every container stops, QEMU goes with it). `state` tells each
    truthfully; deletes leave nothing, not even the directory of a sandbox
    deleted before its keeper died."""
    sb = start_sandbox(env)
    keeper = keeper_pid(env)
    outs = {cid: member(env, cid, ["payload", "counter", "200"], sb) for cid in ("a", "b")}
    assert wait_for(lambda: all(len(lines(o)) >= 3 for o in outs.values()), timeout=60)

    os.kill(sb, signal.SIGKILL)
    assert wait_for(lambda: env.state("sandbox")["status"] == "stopped", timeout=10)
    assert all(env.state(c)["status"] == "running" for c in ("a", "b"))
    assert counts_on(outs["a"]) and counts_on(outs["b"])
    assert len(qemu_pids(str(env.tmp))) == 1
    env.run("delete", "sandbox", check=True)
    assert pid_alive(keeper)

    a_shim = env.state("a")["pid"]
    os.kill(a_shim, signal.SIGKILL)
    assert wait_for(lambda: env.state("a")["status"] == "stopped", timeout=10)
    n = len(lines(outs["a"]))
    time.sleep(1.5)
    assert len(lines(outs["a"])) == n, "a member whose shim died still runs in the VM"
    assert counts_on(outs["b"])
    assert len(qemu_pids(str(env.tmp))) == 1

    os.kill(keeper, signal.SIGKILL)
    assert wait_for(lambda: qemu_pids(str(env.tmp)) == [], timeout=10), "QEMU outlived its keeper"
    assert wait_for(lambda: env.state("b")["status"] == "stopped", timeout=10)
    for cid in ("a", "b"):
        env.run("delete", cid, check=True)
    assert wait_for(lambda: pids_mentioning(str(env.root)) == [], timeout=5)
    assert list(env.root.iterdir()) == [], "the dead keeper's sandbox directory was left"


def test_a_plain_container_ends_with_its_vm(env):
    """No pod: the shim still exits only once the VM is down, with the
    container's status, and the keeper is gone with it."""
    b = write_bundle(env.tmp / "c", ["sh", "-c", "sleep 1; exit 3"])
    rc, _, err = env.create("c", b)
    assert rc == 0, err.read_text()
    shim, keeper = env.state("c")["pid"], keeper_pid(env, "c")
    env.run("start", "c", check=True)
    assert wait_for(lambda: env.state("c")["status"] == "stopped", timeout=60)
    assert qemu_pids(str(env.tmp)) == []
    assert not pid_alive(shim) and not pid_alive(keeper)
    assert not (env.root / "c" / "keeper").exists()
    env.run("delete", "c", check=True)
    assert list(env.root.iterdir()) == []


def with_netns(path, then=None):
    def extra(spec):
        nss = [n for n in spec["linux"]["namespaces"] if n["type"] != "network"]
        spec["linux"]["namespaces"] = nss + [{"type": "network", "path": path}]
        if then:
            then(spec)
    return extra


def test_member_naming_another_network_namespace_is_refused(env):
    """In the VM a member gets its pod's network whatever it names; a member
    that names another network namespace by path is refused, by name, rather
    than silently put in the pod's (docs/pods.md)."""
    net = Net("kp")
    other = f"ccn-kpo-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", other], check=True)
    try:
        b = write_bundle(env.tmp / "sandbox", ["payload", "sleep", "1000"], extra=with_netns(net.path))
        rc, _, err = env.create("sandbox", b)
        assert rc == 0, err.read_text()
        env.run("start", "sandbox", check=True)
        sb = env.state("sandbox")["pid"]
        bad = write_bundle(env.tmp / "bad", ["payload", "echo", "x"],
                           extra=with_netns(f"/run/netns/{other}", ns_paths(sb, ("ipc", "uts"))))
        rc, _, err = env.create("bad", bad)
        msg = err.read_text()
        assert rc != 0 and f"/run/netns/{other} is not the one of pod sandbox sandbox" in msg, msg
        assert not (env.root / "bad").exists()
        # CRI's way: the sandbox-id annotation and the CNI path.
        cri = {"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "sandbox"}

        def annotate(spec):
            spec["annotations"] = cri
        bad2 = write_bundle(env.tmp / "bad2", ["payload", "echo", "x"],
                            extra=with_netns(f"/run/netns/{other}", annotate))
        rc, _, err = env.create("bad2", bad2)
        assert rc != 0 and "is not the one of pod sandbox sandbox" in err.read_text(), err.read_text()
        # The pod's own path is fine, and is the pod's network in the VM.
        good = write_bundle(env.tmp / "good", ["payload", "echo", "joined"],
                            extra=with_netns(net.path, annotate))
        rc, out, err = env.create("good", good)
        assert rc == 0, err.read_text()
        env.run("start", "good", check=True)
        assert wait_for(lambda: env.state("good")["status"] == "stopped", timeout=30)
        assert out.read_text() == "joined\n"
        env.run("delete", "good", check=True)
        env.run("delete", "--force", "sandbox", check=True)
        assert qemu_pids(str(env.tmp)) == []
        assert list(env.root.iterdir()) == []
    finally:
        subprocess.run(["ip", "netns", "del", other])
        net.close()


def test_checkpoint_pod_leaves_a_stopped_member_out(env, tmp_path):
    """A member that exited and is not deleted yet has nothing in the VM:
    `checkpoint --pod` leaves it out, says so, and checkpoints the rest
    (before, it refused the whole pod)."""
    sb = start_sandbox(env)
    cnt = member(env, "cnt", ["payload", "counter", "200"], sb)
    member(env, "done", ["payload", "echo", "finished"], sb)
    assert wait_for(lambda: env.state("done")["status"] == "stopped", timeout=30)
    assert wait_for(lambda: len(lines(cnt)) >= 3, timeout=60)
    images = tmp_path / "pod-images"
    r = env.run("checkpoint", "--pod", "--image-path", str(images), "sandbox", timeout=600)
    assert r.returncode == 0, r.stderr
    assert "member done is stopped: left out of the checkpoint" in r.stderr, r.stderr
    pod = json.loads((images / "pod.json").read_text())
    assert pod["sandbox"] == "sandbox" and pod["members"] == ["cnt"], pod
    assert sorted(p.name for p in images.iterdir()) == ["cnt", "pod.json", "sandbox"]
    assert wait_for(lambda: qemu_pids(str(env.tmp)) == [], timeout=30)
    for cid in ("cnt", "done", "sandbox"):
        env.run("delete", cid, check=True)
    assert list(env.root.iterdir()) == []


def test_sandbox_that_ends_leaves_its_engines_pipe_at_eof_while_a_member_runs(env):
    """review10 6: the shim writes the container's output through its own
    non-blocking opens of the engine's pipes. When the sandbox ended while
    a member ran, the keeper put /dev/null over its stdio but kept those
    opens: the engine's pipe saw no EOF until the last member went
    (containerd's task delete waits for it, conmon until its timeout)."""
    b = write_bundle(env.tmp / "sandbox", ["sh", "-c", "echo up; sleep 4; echo down; exit 3"],
                     hostname="podhost")
    r, w = os.pipe()  # the engine's stdout and stderr
    with open(env.tmp / "sandbox.create.err", "wb") as e:
        p = subprocess.run([str(COCOON), "--root", str(env.root), "--config", str(env.config),
                            "create", "--bundle", str(b.path), "sandbox"],
                           stdin=subprocess.DEVNULL, stdout=w, stderr=w, timeout=180)
    os.close(w)
    try:
        assert p.returncode == 0, "create of the sandbox failed"
        sb = env.state("sandbox")["pid"]
        env.run("start", "sandbox", check=True)
        cnt = member(env, "cnt", ["payload", "counter", "200"], sb)
        got, eof_at, deadline = b"", None, time.time() + 60
        while eof_at is None and time.time() < deadline:
            ready, _, _ = select.select([r], [], [], max(0.0, deadline - time.time()))
            chunk = os.read(r, 65536) if ready else b""
            got += chunk
            if ready and not chunk:
                eof_at = time.time()
        assert b"up\n" in got and b"down\n" in got, got
        assert eof_at is not None, f"no EOF on the engine's pipe 60 s on, the member running: {got!r}"
        assert env.state("sandbox")["status"] == "stopped"
        assert env.state("cnt")["status"] == "running", "the member did not run on"
        assert counts_on(cnt)
    finally:
        os.close(r)
    env.run("delete", "sandbox", check=True)
    env.run("delete", "--force", "cnt", check=True)
    assert qemu_pids(str(env.tmp)) == []
