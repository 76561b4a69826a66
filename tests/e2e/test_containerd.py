"""containerd's stock runc shim (io.containerd.runc.v2) driving cocoon,
through `ctr`, against a private containerd started for these tests (the
harness: containerd_util.py)."""
import json
import os
import pathlib
import subprocess
import time

import pytest

from conftest import pids_mentioning, qemu_pids, wait_for
from containerd_util import (IMAGE, NS, gone_then_restored_live, remove_task, run_args, start_containerd, task_pid,
                             task_status)
from test_network import Net, http_get


@pytest.fixture(scope="module")
def cd(tmp_path_factory):
    yield from start_containerd(tmp_path_factory.mktemp("containerd"))


@pytest.fixture(scope="module")
def cd_v2(tmp_path_factory):
    yield from start_containerd(tmp_path_factory.mktemp("containerd-v2"), cgroup2=True)


def test_ctr_run_echo_and_exit_code(cd):
    r = cd.ctr(*run_args("--rm", IMAGE, "echo1", "payload", "echo", "hi"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "hi"
    r = cd.ctr(*run_args("--rm", IMAGE, "exit1", "payload", "exit", "7"))
    assert r.returncode == 7, r.stdout + r.stderr


def test_ctr_run_passes_stdin(cd):
    """`ctr run` without -t: containerd's shim gives the runtime a pipe as
    the container's stdin, and a line written to ctr reaches the process.
    (ctr never passes its stdin's EOF on, with runc either, so the process
    reads one line and exits.) Before the fix the shim closed its fd 0."""
    r = cd.ctr(*run_args("--rm", IMAGE, f"stdin-{os.getpid()}", "sh", "-c", "read l; echo got:$l"),
               input="through stdin\n", timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "got:through stdin\n", r.stdout + r.stderr


def test_force_delete_of_a_task_that_has_exited(cd):
    """ctr 1.6's `tasks delete -f` kills with --all before it deletes, also
    a task that has exited. As runc answers it: cocoon's `kill --all` of a
    stopped container succeeds (nothing left to signal), and a one-process
    kill fails with runc's "container not running", which containerd's shim
    reads as "process already finished". cocoon said "container X is
    stopped", so the shim failed the delete ("unknown error after kill"),
    and the container could not be deleted after it either."""
    cid = f"fd-{os.getpid()}"
    r = cd.ctr(*run_args("-d", IMAGE, cid, "payload", "echo", "hi"))
    assert r.returncode == 0, r.stderr
    try:
        assert wait_for(lambda: task_status(cd, cid) == "STOPPED", timeout=120)
        r = cd.ctr("tasks", "kill", "-s", "KILL", cid, timeout=60)
        assert r.returncode != 0 and "process already finished" in r.stderr, r.stderr
        r = cd.ctr("tasks", "delete", "-f", cid, timeout=60)
        assert r.returncode == 0, r.stderr
        assert task_status(cd, cid) is None
        r = cd.ctr("containers", "delete", cid, timeout=60)
        assert r.returncode == 0, r.stderr
    finally:
        remove_task(cd, cid)
        cd.ctr("containers", "delete", cid, timeout=60)


def test_detached_pause_resume_exec_kill_ps(cd):
    r = cd.ctr(*run_args("-d", IMAGE, "ctr1", "payload", "counter", "100"))
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: task_status(cd, "ctr1") == "RUNNING", timeout=60)
    r = cd.ctr("tasks", "pause", "ctr1")
    assert r.returncode == 0, r.stderr
    assert task_status(cd, "ctr1") == "PAUSED"
    r = cd.ctr("tasks", "resume", "ctr1")
    assert r.returncode == 0, r.stderr
    assert task_status(cd, "ctr1") == "RUNNING"
    r = cd.ctr("tasks", "exec", "--exec-id", "e1", "ctr1", "payload", "echo", "from exec")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "from exec"
    r = cd.ctr("tasks", "ps", "ctr1")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) >= 2
    r = cd.ctr("tasks", "kill", "-s", "KILL", "ctr1")
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: task_status(cd, "ctr1") == "STOPPED", timeout=60)
    assert cd.ctr("tasks", "delete", "ctr1").returncode == 0
    assert cd.ctr("containers", "delete", "ctr1").returncode == 0


def counter_lines(cd, cid):
    r = cd.ctr("tasks", "exec", "--exec-id", f"peek{time.time_ns()}", cid, "sh", "-c", "cat /tmp/count | wc -l")
    return int(r.stdout.strip() or 0)


def test_task_checkpoint_leave_running_then_exit(cd, tmp_path):
    r = cd.ctr(*run_args("-d", IMAGE, "ck1", "sh", "-c", "payload counter 100 > /tmp/count"))
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: task_status(cd, "ck1") == "RUNNING", timeout=60)
    time.sleep(1)
    p1, p2 = tmp_path / "p1", tmp_path / "p2"
    r = cd.ctr("tasks", "checkpoint", "--image-path", str(p1), "ck1", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (p1 / "pstree.img").exists() and (p1 / "inventory.img").exists()
    assert task_status(cd, "ck1") == "RUNNING", "the seed's flow leaves the container running"
    r = cd.ctr("tasks", "checkpoint", "--exit", "--image-path", str(p2), "ck1", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (p2 / "pstree.img").exists() and any(p2.glob("pages-*.img"))
    assert wait_for(lambda: task_status(cd, "ck1") == "STOPPED", timeout=60)
    cd.ctr("tasks", "delete", "ck1")
    cd.ctr("containers", "delete", "ck1")


def test_container_checkpoint_and_live_restore(cd):
    r = cd.ctr(*run_args("-d", IMAGE, "live1", "sh", "-c", "payload counter 100 > /tmp/count"))
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: task_status(cd, "live1") == "RUNNING", timeout=60)
    time.sleep(2)
    at_checkpoint = counter_lines(cd, "live1")
    assert at_checkpoint > 5
    r = cd.ctr("containers", "checkpoint", "--rw", "--task", "live1", "cocoon/live1:ck", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    gone_then_restored_live(cd, "live1", "cocoon/live1:ck")
    time.sleep(2)
    r = cd.ctr("tasks", "exec", "--exec-id", "all", "live1", "cat", "/tmp/count")
    numbers = [int(x) for x in r.stdout.split()]
    assert numbers == list(range(len(numbers))), "the counter restarted or skipped"
    assert len(numbers) > at_checkpoint + 5, "the counter did not carry on"
    cd.ctr("tasks", "kill", "-s", "KILL", "live1")
    wait_for(lambda: task_status(cd, "live1") == "STOPPED", timeout=60)
    cd.ctr("tasks", "delete", "live1")
    cd.ctr("containers", "delete", "live1")


def test_failed_checkpoint_shows_cocoon_error(cd, tmp_path):
    r = cd.ctr(*run_args("-d", IMAGE, "nock", "payload", "counter", "100"))
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: task_status(cd, "nock") == "RUNNING", timeout=60)
    cd.cocoon_config.write_text("[runtime]\nenable_checkpoint = false\n")
    try:
        r = cd.ctr("tasks", "checkpoint", "--image-path", str(tmp_path / "x"), "nock", timeout=300)
    finally:
        cd.cocoon_config.write_text("")
    assert r.returncode != 0
    assert "runtime.enable_checkpoint = false" in r.stderr, r.stderr
    assert task_status(cd, "nock") == "RUNNING"
    cd.ctr("tasks", "kill", "-s", "KILL", "nock")
    wait_for(lambda: task_status(cd, "nock") == "STOPPED", timeout=60)
    cd.ctr("tasks", "delete", "nock")
    cd.ctr("containers", "delete", "nock")


def test_bind_mounted_directory_and_memory_limit(cd, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "in").write_text("from the host\n")
    # ctr's default spec has no /sys/fs/cgroup; CRI adds one, so does this.
    r = cd.ctr(*run_args("-d", "--mount", f"type=bind,src={data},dst=/data,options=rbind:rw",
                         "--mount", "type=cgroup,src=cgroup,dst=/sys/fs/cgroup,options=ro",
                         "--memory-limit", str(64 << 20), IMAGE, "bm1", "sh", "-c",
                         "payload memhog 200; echo rc=$? > /data/rc; exec payload counter 100"))
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: task_status(cd, "bm1") == "RUNNING", timeout=60)
    # The hog is OOM-killed in its cgroup inside the guest (memory.max from
    # ctr's --memory-limit); the shell writes its status through the bind.
    assert wait_for(lambda: (data / "rc").exists() and (data / "rc").read_text() == "rc=137\n", timeout=120)
    r = cd.ctr("tasks", "exec", "--exec-id", "m1", "bm1", "cat", "/sys/fs/cgroup/bm1/memory.max",
               "/sys/fs/cgroup/bm1/memory.events", "/data/in")
    out = r.stdout.split("\n")
    assert out[0] == str(64 << 20) and "oom_kill 1" in out and "from the host" in out, r.stdout + r.stderr
    # The VM: the limit, the guest's 128 MiB and the limit again for a dump.
    vm = qemu_pids("/cocoon-e2e/bm1")
    assert len(vm) == 1, vm
    args = pathlib.Path(f"/proc/{vm[0]}/cmdline").read_bytes().decode().split("\0")
    assert args[args.index("-m") + 1] == "256", args
    r = cd.ctr("tasks", "exec", "--exec-id", "m2", "bm1", "sh", "-c", "echo from the guest > /data/out")
    assert r.returncode == 0, r.stderr
    assert (data / "out").read_text() == "from the guest\n"
    with open(data / "in", "a") as f:
        f.write("more\n")
    r = cd.ctr("tasks", "exec", "--exec-id", "m3", "bm1", "cat", "/data/in")
    assert r.stdout == "from the host\nmore\n", r.stdout + r.stderr
    cd.ctr("tasks", "kill", "-s", "KILL", "bm1")
    assert wait_for(lambda: task_status(cd, "bm1") == "STOPPED", timeout=60)
    cd.ctr("tasks", "delete", "bm1")
    cd.ctr("containers", "delete", "bm1")


def test_kubernetes_shaped_pod_is_one_vm(cd):
    """The specs CRI gives a pod, through containerd's runc shim: the
    sandbox and every container join the pod's CNI network namespace by its
    /run/netns path, the containers join IPC and UTS by /proc/<sandbox
    pid>/ns/..., all carry the CRI annotations. One VM; the pod IP and
    localhost reach a container's server (docs/pods.md)."""
    cri = "io.kubernetes.cri"
    net = Net("k8s")
    before = len(qemu_pids(str(cd.tmp)))
    try:
        r = cd.ctr(*run_args("-d", "--annotation", f"{cri}.container-type=sandbox",
                             "--annotation", f"{cri}.sandbox-id=pod1", "--with-ns", f"network:{net.path}",
                             IMAGE, "pod1", "payload", "sleep", "1000"))
        assert r.returncode == 0, r.stderr
        assert wait_for(lambda: task_status(cd, "pod1") == "RUNNING", timeout=60)
        pid = task_pid(cd, "pod1")
        member = ["--annotation", f"{cri}.container-type=container", "--annotation", f"{cri}.sandbox-id=pod1",
                  "--with-ns", f"network:{net.path}"]
        for t, f in (("ipc", "ipc"), ("uts", "uts")):
            member += ["--with-ns", f"{t}:/proc/{pid}/ns/{f}"]
        serve = ("mkdir -p /www && echo hello at the pod IP > /www/index.html && "
                 "busybox httpd -p 8080 -h /www && exec payload tcp 7000")
        r = cd.ctr(*run_args("-d", *member, IMAGE, "app1", "sh", "-c", serve))
        assert r.returncode == 0, r.stderr
        assert wait_for(lambda: task_status(cd, "app1") == "RUNNING", timeout=60)
        assert task_pid(cd, "app1") != pid, "each container has its own shim"
        # The pod IP, from the host: app1's web server, in the pod's VM.
        page = wait_for(lambda: _get_or_none(net.ip, 8080), timeout=30)
        assert page and "hello at the pod IP" in page, page
        r = cd.ctr(*run_args("--rm", *member, IMAGE, "app2", "sh", "-c",
                             "payload shm-put 7 pod-ipc && payload tcp-connect 7000"))
        assert r.returncode == 0, r.stdout + r.stderr
        assert "tcp-connect 42" in r.stdout
        r = cd.ctr("tasks", "exec", "--exec-id", "e1", "app1", "payload", "shm-get", "7")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "pod-ipc"
        assert len(qemu_pids(str(cd.tmp))) == before + 1, "one VM for the pod"
    finally:
        # CRI's order: the pod's containers, then its sandbox.
        for cid in ("app1", "pod1"):
            cd.ctr("tasks", "kill", "-s", "KILL", cid)
            wait_for(lambda: task_status(cd, cid) in ("STOPPED", None), timeout=60)
            cd.ctr("tasks", "delete", cid)
            cd.ctr("containers", "delete", cid)
        net.close()
    assert wait_for(lambda: len(qemu_pids(str(cd.tmp))) == before, timeout=30)


def test_kubernetes_sandbox_deleted_before_its_container(cd):
    """The pod's VM lives until its last container is deleted, in any order
    (docs/pods.md "Lifetimes"): a CRI-shaped sandbox killed and deleted
    through containerd's runc shim leaves its container running in the VM
    (its task, exec, the pod's IPC); deleting that container then takes the
    VM down, and no shim or keeper is left."""
    cri = "io.kubernetes.cri"
    sb, app = f"ksb{os.getpid()}", f"kapp{os.getpid()}"
    before = len(qemu_pids(str(cd.tmp)))
    try:
        r = cd.ctr(*run_args("-d", "--annotation", f"{cri}.container-type=sandbox",
                             "--annotation", f"{cri}.sandbox-id={sb}", IMAGE, sb,
                             "payload", "sleep", "1000"))
        assert r.returncode == 0, r.stderr
        assert wait_for(lambda: task_status(cd, sb) == "RUNNING", timeout=60)
        pid = task_pid(cd, sb)
        member = ["--annotation", f"{cri}.container-type=container",
                  "--annotation", f"{cri}.sandbox-id={sb}"]
        for t, f in (("ipc", "ipc"), ("uts", "uts")):
            member += ["--with-ns", f"{t}:/proc/{pid}/ns/{f}"]
        r = cd.ctr(*run_args("-d", *member, IMAGE, app, "sh", "-c",
                             "payload shm-put 9 made-before && exec payload sleep 1000"))
        assert r.returncode == 0, r.stderr
        assert wait_for(lambda: task_status(cd, app) == "RUNNING", timeout=60)
        assert len(qemu_pids(str(cd.tmp))) == before + 1

        # The sandbox first: kill, delete the task and the container.
        cd.ctr("tasks", "kill", "-s", "KILL", sb)
        assert wait_for(lambda: task_status(cd, sb) == "STOPPED", timeout=60)
        r = cd.ctr("tasks", "delete", sb)
        assert r.returncode == 0, r.stderr
        r = cd.ctr("containers", "delete", sb)
        assert r.returncode == 0, r.stderr
        assert task_status(cd, app) == "RUNNING"
        assert len(qemu_pids(str(cd.tmp))) == before + 1, "the VM went with the sandbox"
        r = cd.ctr("tasks", "exec", "--exec-id", "k1", app, "payload", "shm-get", "9")
        assert (r.returncode, r.stdout.strip()) == (0, "made-before"), r.stdout + r.stderr

        # The last container: its delete takes the VM down.
        cd.ctr("tasks", "kill", "-s", "KILL", app)
        assert wait_for(lambda: task_status(cd, app) == "STOPPED", timeout=60)
        r = cd.ctr("tasks", "delete", app)
        assert r.returncode == 0, r.stderr
        assert len(qemu_pids(str(cd.tmp))) == before, "the VM outlived the pod's last container"
        cd.ctr("containers", "delete", app)
        assert wait_for(lambda: not [p for p in pids_mentioning(sb) if _is_cocoon(p)], timeout=10), \
            "the sandbox's shim or keeper is left"
    finally:
        for cid in (app, sb):
            cd.ctr("tasks", "kill", "-s", "KILL", cid)
            wait_for(lambda: task_status(cd, cid) in ("STOPPED", None), timeout=60)
            cd.ctr("tasks", "delete", cid)
            cd.ctr("containers", "delete", cid)
    assert wait_for(lambda: len(qemu_pids(str(cd.tmp))) == before, timeout=30)


def _is_cocoon(pid):
    try:
        return os.readlink(f"/proc/{pid}/exe").endswith("/cocoon")
    except OSError:
        return False


def _get_or_none(ip, port):
    try:
        return http_get(ip, port, timeout=5)
    except OSError:
        return None


def test_task_metrics_show_the_container_not_the_vm(cd):
    r = cd.ctr(*run_args("-d", "--memory-limit", str(96 << 20), IMAGE, "mt1", "payload", "memhog", "40"))
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: task_status(cd, "mt1") == "RUNNING", timeout=60)

    def metrics():
        r = cd.ctr("tasks", "metrics", "--format", "json", "mt1")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)
    # The figures reach the host every second: the hog's 40 MiB show.
    assert wait_for(lambda: metrics()["memory"]["usage"]["usage"] >= 40 << 20, timeout=60), metrics()
    m = metrics()
    usage = m["memory"]["usage"]["usage"]
    assert 40 << 20 <= usage < 96 << 20, m["memory"]
    assert m["memory"]["usage"]["limit"] == 96 << 20, m["memory"]
    assert m["memory"]["total_rss"] >= 40 << 20, m["memory"]
    assert m["pids"]["current"] == 1 and m["cpu"]["usage"]["total"] > 0, m
    # Not QEMU's memory: the VM costs the host far more.
    vm = qemu_pids("/cocoon-e2e/mt1")
    assert len(vm) == 1, vm
    rss = [int(l.split()[1]) * 1024 for l in pathlib.Path(f"/proc/{vm[0]}/status").read_text().splitlines()
           if l.startswith("VmRSS:")][0]
    assert rss > usage + (64 << 20), (rss, usage)
    pid = task_pid(cd, "mt1")
    path = [l.split(":", 2)[2] for l in pathlib.Path(f"/proc/{pid}/cgroup").read_text().splitlines()
            if "memory" in l.split(":")[1].split(",")][0]
    assert path.endswith("/mt1"), path
    cd.ctr("tasks", "kill", "-s", "KILL", "mt1")
    assert wait_for(lambda: task_status(cd, "mt1") == "STOPPED", timeout=60)
    cd.ctr("tasks", "delete", "mt1")
    cd.ctr("containers", "delete", "mt1")
    assert not pathlib.Path(f"/sys/fs/cgroup/memory{path}").exists()


class TaskOomEvents:
    """`ctr events` while a with block runs (from a second before it to two
    after it, so that the last events reach ctr); then .out is all it printed
    and .oom its /tasks/oom lines."""

    def __init__(self, c):
        self.c = c

    def __enter__(self):
        self.proc = subprocess.Popen(["ctr", "--address", str(self.c.sock), "events"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(1)
        return self

    def __exit__(self, exc_type, *_):
        if exc_type is None:
            time.sleep(2)
        self.proc.terminate()
        self.out = self.proc.communicate(timeout=10)[0]
        self.oom = [l for l in self.out.splitlines() if "/tasks/oom" in l]
        return False

    def assert_only(self, cid):
        """/tasks/oom for CID, and for no other container."""
        assert any(f'"{cid}"' in l for l in self.oom), self.out
        assert not [l for l in self.oom if f'"{cid}"' not in l], self.oom


def run_limited_counter(c, cid):
    """CID runs a counter in 64 MiB, detached."""
    r = c.ctr(*run_args("-d", "--memory-limit", str(64 << 20), IMAGE, cid, "payload", "counter", "100"))
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: task_status(c, cid) == "RUNNING", timeout=60)


def oom_kill_and_host_kill(c, oom_id, kill_id):
    """OOM_ID asks for 200 MiB in 64 MiB: the guest's OOM killer ends it
    (exit 137); KILL_ID (running) is SIGKILLed from the host; both deleted."""
    r = c.ctr(*run_args("--memory-limit", str(64 << 20), IMAGE, oom_id, "payload", "memhog", "200"))
    assert r.returncode == 137, r.stdout + r.stderr
    c.ctr("tasks", "kill", "-s", "KILL", kill_id)
    assert wait_for(lambda: task_status(c, kill_id) == "STOPPED", timeout=60)
    for cid in (oom_id, kill_id):
        c.ctr("tasks", "delete", cid)
        c.ctr("containers", "delete", cid)


def test_oom_kill_in_the_guest_is_a_task_oom_event(cd):
    """containerd's runc shim learns of an OOM kill from the task's memory
    cgroup on the host (an eventfd on memory.oom_control on v1, inotify on
    memory.events on v2) and publishes /tasks/oom. A kill inside the guest
    reaches it through the shim's relay (cgroup-oom.h); a SIGKILL from the
    host makes no such event."""
    with TaskOomEvents(cd) as ev:
        run_limited_counter(cd, "kil1")
        oom_kill_and_host_kill(cd, "oom1", "kil1")
    ev.assert_only("oom1")
    for cid in ("oom1", "kil1"):
        assert not pathlib.Path(f"/sys/fs/cgroup/memory/cocoon-oom/{NS}/{cid}").exists()


def pod_member_oom_kill(cd, cri, before):
    """The pod test's containers: sandbox opod, member osv (counter) and
    member ohog (memhog), each member in 64 MiB; removed in CRI's order."""
    try:
        r = cd.ctr(*run_args("-d", "--annotation", f"{cri}.container-type=sandbox",
                             "--annotation", f"{cri}.sandbox-id=opod",
                             IMAGE, "opod", "payload", "sleep", "1000"))
        assert r.returncode == 0, r.stderr
        assert wait_for(lambda: task_status(cd, "opod") == "RUNNING", timeout=60)
        pid = task_pid(cd, "opod")
        member = ["--annotation", f"{cri}.container-type=container",
                  "--annotation", f"{cri}.sandbox-id=opod", "--memory-limit", str(64 << 20),
                  "--mount", "type=cgroup,src=cgroup,dst=/sys/fs/cgroup,options=ro"]
        for t, f in (("ipc", "ipc"), ("uts", "uts")):
            member += ["--with-ns", f"{t}:/proc/{pid}/ns/{f}"]
        r = cd.ctr(*run_args("-d", *member, IMAGE, "osv", "sh", "-c",
                             "payload counter 100 > /tmp/count"))
        assert r.returncode == 0, r.stderr
        assert wait_for(lambda: task_status(cd, "osv") == "RUNNING", timeout=60)
        r = cd.ctr(*run_args(*member, IMAGE, "ohog", "payload", "memhog", "200"))
        assert r.returncode == 137, r.stdout + r.stderr
        assert len(qemu_pids(str(cd.tmp))) == before + 1, "one VM for the pod"
        # The others live on in that VM: the counter still counts.
        assert task_status(cd, "opod") == "RUNNING" and task_status(cd, "osv") == "RUNNING"
        seen = counter_lines(cd, "osv")
        assert wait_for(lambda: counter_lines(cd, "osv") > seen + 3, timeout=30)
        r = cd.ctr("tasks", "exec", "--exec-id", "ev", "osv", "cat", "/sys/fs/cgroup/osv/memory.events")
        assert "oom_kill 0" in r.stdout.splitlines(), r.stdout + r.stderr
        # A member killed from the host is no OOM.
        cd.ctr("tasks", "kill", "-s", "KILL", "osv")
        assert wait_for(lambda: task_status(cd, "osv") == "STOPPED", timeout=60)
    finally:
        # CRI's order: the pod's containers, then its sandbox.
        for cid in ("ohog", "osv", "opod"):
            cd.ctr("tasks", "kill", "-s", "KILL", cid)
            wait_for(lambda: task_status(cd, cid) in ("STOPPED", None), timeout=60)
            cd.ctr("tasks", "delete", cid)
            cd.ctr("containers", "delete", cid)


def test_oom_kill_of_a_pod_member_is_that_members_task_oom_event(cd):
    """One member of a pod is OOM-killed inside the pod's VM (its own
    memory.max there): containerd publishes /tasks/oom for that member, and
    for no other container of the pod; the sandbox and the other member run
    on in the same VM (docs/pods.md, cgroup-oom.h)."""
    cri = "io.kubernetes.cri"
    before = len(qemu_pids(str(cd.tmp)))
    with TaskOomEvents(cd) as ev:
        pod_member_oom_kill(cd, cri, before)
    ev.assert_only("ohog")
    assert wait_for(lambda: len(qemu_pids(str(cd.tmp))) == before, timeout=30)
    for cid in ("ohog", "osv", "opod"):
        assert not pathlib.Path(f"/sys/fs/cgroup/memory/cocoon-oom/{NS}/{cid}").exists()


def in_ns(c, *cmd):
    """A command in containerd's mount namespace (its cgroup2 view)."""
    return subprocess.run([*c.prefix, *cmd], capture_output=True, text=True, timeout=30)


def test_oom_kill_on_cgroup_v2_is_a_task_oom_event(cd_v2):
    """The cgroup v2 path of the OOM relay, with containerd's own v2 code:
    this host is cgroup v1 (memory is bound to v1, so v2 cannot have it), but
    containerd and cocoon decide by /sys/fs/cgroup alone, and in a mount
    namespace where that is the cgroup2 hierarchy both take the v2 way:
    cocoon mirrors memory.events there and containerd's runc shim watches it
    with inotify (cgroup-oom.h). The guest's OOM kill must become /tasks/oom
    for that task only; a SIGKILL from the host must not."""
    c = cd_v2
    with TaskOomEvents(c) as ev:
        run_limited_counter(c, "kil2")
        # Both sides on v2: the shim (the task's pid) in the v2 cgroup, the
        # mirror's memory.events there, containerd's metrics of v2's kind.
        pid = task_pid(c, "kil2")
        assert f"0::/{c.ns}/kil2" in pathlib.Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        r = in_ns(c, "cat", f"/sys/fs/cgroup/{c.ns}/kil2/memory.events")
        assert "oom_kill 0" in r.stdout.splitlines(), r.stdout + r.stderr
        r = c.ctr("tasks", "metrics", "--format", "json", "kil2")
        assert r.returncode == 0, r.stderr
        m = json.loads(r.stdout)
        assert isinstance(m["memory"]["usage"], int), m  # v1's is {"usage": ..., "limit": ...}
        assert not pathlib.Path(f"/sys/fs/cgroup/memory/cocoon-oom/{c.ns}").exists(), "a v1 relay on v2"
        oom_kill_and_host_kill(c, "oom2", "kil2")
    ev.assert_only("oom2")
    for cid in ("oom2", "kil2"):
        r = in_ns(c, "test", "-e", f"/sys/fs/cgroup/{c.ns}/{cid}")
        assert r.returncode == 1, f"cgroup {cid} left behind"
    in_ns(c, "rmdir", f"/sys/fs/cgroup/{c.ns}")  # the parent, which delete leaves as runc does
