"""Terminals (issue 17): the size a terminal starts with (process.consoleSize,
or the engine's resize right after the start), a resize while the container
runs, the size after a checkpoint and a restore into a fresh VM, and exec on
a terminal: through cocoon itself, `ctr run -t` / `ctr tasks exec -t`, and
`podman run -it` / `podman exec -it`, each on a pty the test holds."""
import json
import os
import pathlib
import select
import subprocess
import time

import pytest

from conftest import COCOON, pids_mentioning, qemu_pids, wait_for, write_bundle
from podman_util import podman  # noqa: F401  (the fixture)
from tty_util import Console, Sizer, Term, get_size, read_until, restore_tty, set_size


def console_size(rows, cols):
    return lambda spec: spec["process"].update(consoleSize={"height": rows, "width": cols})


def test_console_size_at_start_resize_and_after_restore(env):
    """The container's pty starts at process.consoleSize; the engine's resize
    of its master reaches the shell; a checkpoint keeps the size the
    container had (not the spec's), and the restored pty resizes too."""
    b = write_bundle(env.tmp / "b", ["sh"], terminal=True, extra=console_size(33, 111))
    con1 = Console(env.tmp / "c1.sock")
    rc, _, err = env.create("t", b, "--console-socket", con1.path)
    assert rc == 0, err.read_text()
    env.run("start", "t", check=True)
    fd, seen, s = con1.master(), bytearray(), Sizer()
    assert s.size(fd, seen) == "33x111", seen
    set_size(fd, 44, 120)
    assert s.wait_size(fd, seen, "44x120") == "44x120", seen
    os.write(fd, b"X=kept-$$\n")

    ck = env.tmp / "ck"
    r = env.run("checkpoint", "--image-path", str(ck), "t", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    env.run("delete", "--force", "t", check=True)
    con1.close()
    assert qemu_pids(str(env.tmp)) == []
    descriptors = (ck / "cocoon-descriptors").read_text().splitlines()
    assert "winsize 44 120" in descriptors, descriptors

    con2 = Console(env.tmp / "c2.sock")
    r = restore_tty(env, "t", ck, b, "--console-socket", con2.path)
    assert r.returncode == 0, r.stderr
    fd, seen = con2.master(), bytearray()
    # The size it had, not the bundle's 33x111, in the container and on the
    # engine's new master; the same shell.
    assert get_size(fd) == (44, 120)
    assert s.size(fd, seen) == "44x120", seen
    os.write(fd, b"echo same-$X-$$\n")
    assert read_until(fd, seen, rb"same-kept-1-1", 30), seen
    set_size(fd, 50, 130)
    assert s.wait_size(fd, seen, "50x130") == "50x130", seen
    os.write(fd, b"exit 0\n")
    assert wait_for(lambda: env.state("t")["status"] == "stopped")
    con2.close()
    env.run("delete", "t", check=True)


def test_create_on_a_terminal_lets_go_of_its_stdio(env):
    """With a terminal the container's stdio is the pty: `cocoon create`'s
    own stdout and stderr end when it exits, as runc's do. containerd's runc
    shim reads create's output until EOF before it takes the master (go-runc
    Create with no IO); while the shim kept them, `ctr run -t` hung."""
    b = write_bundle(env.tmp / "b", ["sh"], terminal=True)
    con = Console(env.tmp / "c.sock")
    p = subprocess.Popen([str(COCOON), "--root", str(env.root), "--config", str(env.config),
                          "create", "--bundle", str(b.path), "--console-socket", con.path, "q"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        rc = p.wait(timeout=180)
        assert rc == 0, p.stderr.read().decode()
        for stream in (p.stdout, p.stderr):
            ready, _, _ = select.select([stream], [], [], 10)
            assert ready and stream.read() == b"", "create's output is still held open"
        fd = con.master()
        env.run("start", "q", check=True)
        seen = bytearray()
        os.write(fd, b"echo up-$((6*7))\n")
        assert read_until(fd, seen, rb"up-42", 60), seen
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
        env.run("delete", "--force", "q")
        con.close()


def test_exec_tty(env):
    """`cocoon exec --tty`: on the command's own terminal (its size at start,
    its resizes, the exit status), and with --console-socket as containerd's
    shim and conmon run it (the pty master goes there; --process's
    consoleSize is the start size)."""
    b = write_bundle(env.tmp / "b", ["sleep", "1000"])
    rc, _, err = env.create("e", b)
    assert rc == 0, err.read_text()
    env.run("start", "e", check=True)
    base = [str(COCOON), "--root", str(env.root), "--config", str(env.config), "exec"]

    t = Term(base + ["-t", "e", "sh"], 30, 100)
    try:
        assert t.probe() == "30x100", t.seen
        assert t.type_and_wait("test -t 0 && test -t 1 && echo T=$((6*7))\n", "T=42"), t.seen
        t.resize(40, 90)
        assert t.wait_for_size("40x90") == "40x90", t.seen
        os.write(t.master, b"exit 5\n")
        assert t.wait() == 5, t.seen
    finally:
        t.close()

    proc = env.tmp / "process.json"
    proc.write_text(json.dumps({"args": ["sh"], "cwd": "/", "env": ["PATH=/bin"], "terminal": True,
                                "consoleSize": {"height": 21, "width": 61}}))
    con = Console(env.tmp / "e.sock")
    r = env.run("exec", "--process", str(proc), "--console-socket", con.path, "--detach",
                "--pid-file", str(env.tmp / "e.pid"), "e")
    assert r.returncode == 0, r.stderr
    fd, seen, s = con.master(), bytearray(), Sizer()
    assert s.size(fd, seen) == "21x61", seen
    set_size(fd, 25, 77)
    assert s.wait_size(fd, seen, "25x77") == "25x77", seen
    pid = int((env.tmp / "e.pid").read_text())
    # Not checkpointed: its pty's host side would end with this VM. Refused
    # by name, and the container runs on.
    r = env.run("checkpoint", "--image-path", str(env.tmp / "ck"), "e", timeout=600)
    assert r.returncode != 0 and "exec --tty" in r.stderr, r.stdout + r.stderr
    assert env.state("e")["status"] == "running"
    assert s.size(fd, seen) == "25x77", seen
    os.write(fd, b"exit 0\n")
    assert wait_for(lambda: not os.path.exists(f"/proc/{pid}"), timeout=30)
    con.close()

    # Refused, with the reason: detached without a console socket, and no
    # terminal to run on.
    r = env.run("exec", "-t", "-d", "e", "sh")
    assert r.returncode != 0 and "--console-socket" in r.stderr, r.stderr
    r = env.run("exec", "-t", "e", "sh")
    assert r.returncode != 0 and "not a terminal" in r.stderr, r.stderr
    env.run("delete", "--force", "e", check=True)


# ---- containerd: ctr run -t, ctr tasks exec -t ------------------------------------

@pytest.fixture(scope="module")
def cd(tmp_path_factory):
    from containerd_util import IMAGE, Containerd, build_image
    tmp = tmp_path_factory.mktemp("containerd-tty")
    c = Containerd(tmp)
    try:
        archive = build_image(tmp)
        r = c.ctr("images", "import", "--snapshotter", "native", str(archive))
        assert r.returncode == 0, r.stderr
        c.image = IMAGE
        yield c
    finally:
        c.stop()


def ctr_argv(cd, *args):
    from containerd_util import NS
    return ["ctr", "--address", str(cd.sock), "--namespace", NS, *args]


def run_and_exec_on_terminals(run, exec_argv, env=None, why=None):
    """An engine's run -t (RUN, a Term of 30x100) and exec -t (EXEC_ARGV, on
    a Term of 27x90): each shell starts at its terminal's size and follows
    a resize; the exec's shell is on a terminal, and its exit status comes
    back; the run's terminal kept its own size, and its exit status comes
    back. WHY: what to print when the run's first size never came."""
    ex = None
    try:
        assert run.wait_for_size("30x100", timeout=120) == "30x100", why() if why else run.seen
        run.resize(35, 110)
        assert run.wait_for_size("35x110") == "35x110", run.seen

        ex = Term(exec_argv, 27, 90, env=env)
        assert ex.wait_for_size("27x90", timeout=60) == "27x90", ex.seen
        ex.resize(28, 95)
        assert ex.wait_for_size("28x95") == "28x95", ex.seen
        assert ex.type_and_wait("test -t 0 && echo T=$((6*7))\n", "T=42"), ex.seen
        os.write(ex.master, b"exit 3\n")
        assert ex.wait() == 3, ex.seen
        # The container's terminal kept its own size.
        assert run.probe() == "35x110", run.seen
        os.write(run.master, b"exit 4\n")
        assert run.wait() == 4, run.seen
    finally:
        for t in (run, ex):
            if t:
                t.close()


def test_ctr_run_t_and_exec_t(cd):
    """ctr gives containerd's shim its terminal's size and forwards its
    SIGWINCH as ResizePty; the shim resizes the master cocoon sent it. ctr
    sends the size only once the task or exec runs, so a shell's first look
    can be 0x0 (the probe then asks again). Before c35cca3 nothing came back
    at all: containerd's shim waited in create for EOF on create's output,
    which cocoon's shim held. The task's ID is this run's own: the shim's
    state root (/run/containerd/runc/NAMESPACE) outlives a killed run."""
    cid = f"tty-{os.getpid()}"
    run = Term(ctr_argv(cd, "run", "-t", "--snapshotter", "native", "--runc-binary", str(COCOON),
                        cd.image, cid, "sh"), 30, 100)
    try:
        run_and_exec_on_terminals(
            run, ctr_argv(cd, "tasks", "exec", "-t", "--exec-id", "x1", cid, "sh"),
            why=lambda: (run.seen, (cd.tmp / "containerd.log").read_text()[-3000:]))
    finally:
        cd.ctr("tasks", "delete", "-f", cid)
        cd.ctr("containers", "delete", cid)


def test_ctr_run_t_checkpoint(cd, tmp_path):
    """Issue 17 case 5 through containerd: a `ctr run -t` task is
    checkpointed (`ctr tasks checkpoint`, leaving it running), its images
    are there, and the shell on the terminal carries on, its variable
    kept, its exit status back. (ctr 1.6 cannot restore it, and the refusal
    is test_ctr_refused_terminal_restore_leaves_nothing_and_goes_at_once;
    ctr 1.7 restores it through this containerd 1.6,
    test_ctr_1_7_restores_a_terminal_task_onto_its_terminal.)"""
    cid = f"tck-{os.getpid()}"
    run = Term(ctr_argv(cd, "run", "-t", "--snapshotter", "native", "--runc-binary", str(COCOON),
                        cd.image, cid, "sh"), 30, 100)
    try:
        assert run.wait_for_size("30x100", timeout=120) == "30x100", run.seen
        assert run.type_and_wait("X=kept-$((6*7)); echo before-$X-$$\n", "before-kept-42-1"), run.seen
        ck = tmp_path / "ck"
        r = cd.ctr("tasks", "checkpoint", "--image-path", str(ck), cid, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        assert (ck / "pstree.img").exists() and (ck / "inventory.img").exists(), list(ck.iterdir())
        assert run.type_and_wait("echo after-$X-$$-$(test -t 0 && echo tty)\n", "after-kept-42-1-tty"), \
            run.seen
        os.write(run.master, b"exit 4\n")
        assert run.wait() == 4, run.seen
    finally:
        run.close()
        cd.ctr("tasks", "kill", "-s", "KILL", cid, timeout=60)
        cd.ctr("tasks", "delete", cid, timeout=60)
        cd.ctr("containers", "delete", cid, timeout=60)


def ctr_t_checkpointed(cd, cid):
    """A `ctr run -t` shell (X set, to find again) checkpointed into the
    content store with its rootfs changes (`ctr containers checkpoint --rw
    --task`), then its task and container deleted, as before a restore
    elsewhere. Returns the checkpoint's image name."""
    from containerd_util import remove_task
    ref = f"cocoon/{cid}:ck"
    run = Term(ctr_argv(cd, "run", "-t", "--snapshotter", "native", "--runc-binary", str(COCOON),
                        cd.image, cid, "sh"), 30, 100)
    try:
        assert run.wait_for_size("30x100", timeout=120) == "30x100", run.seen
        assert run.type_and_wait("X=kept-$((6*7)); echo before-$X-$$\n", "before-kept-42-1"), run.seen
        r = cd.ctr("containers", "checkpoint", "--rw", "--task", cid, ref, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        run.close()
        remove_task(cd, cid)
        r = cd.ctr("containers", "delete", cid, timeout=60)
    assert r.returncode == 0, (r.stderr, cd.ctr("tasks", "ls").stdout)
    return ref


def refused_restore_left_nothing(cd, cid):
    """ctr 1.6's `containers restore --live` of a terminal task: ctr gives
    the task its own plain stdio (cio.WithStdio, no terminal), so
    containerd's runc shim passes no --console-socket, and cocoon refuses
    before a VM starts, naming it. Nothing of cocoon's is left: no VM, no
    shim, no state directory. containerd keeps the task: CREATED with pid
    0, as the shim read no pid file."""
    from containerd_util import NS, task_pid, task_status
    t0 = time.monotonic()
    r = cd.ctr("containers", "restore", "--rw", "--live", cid, f"cocoon/{cid}:ck", timeout=120)
    assert r.returncode != 0 and "--console-socket" in r.stderr and "process.terminal" in r.stderr, \
        r.stdout + r.stderr
    assert time.monotonic() - t0 < 60, "the refusal came after a VM started"
    assert (task_status(cd, cid), task_pid(cd, cid)) == ("CREATED", 0)
    state = pathlib.Path("/run/containerd/runc") / NS / cid
    assert not state.exists(), list(state.iterdir())
    # QEMU, virtiofsd and cocoon's shim name the state or bundle directory.
    assert qemu_pids(f"/{NS}/{cid}") == [] and pids_mentioning(f"/{NS}/{cid}") == []


def test_ctr_refused_terminal_restore_leaves_nothing_and_goes_at_once(cd):
    """ctr 1.6.20 (Debian 12) cannot restore a `ctr run -t` task
    (docs/containerd.md): the restore is refused clearly and leaves nothing;
    the task containerd keeps is deleted at once, and so is the container.
    `ctr tasks delete -f` is not the way with ctr 1.6.20: it waits for the
    task to exit first, and one that never got a pid never does, so it
    hangs for ever (containerd issue 10441, fixed in ctr 1.6.35 and 1.7.21;
    the same with runc). Before remove_task deleted such a task without
    --force, the harness's own clean-up hung on it for its 300 s."""
    from containerd_util import remove_task, task_pid
    cid = f"trf-{os.getpid()}"
    ctr_t_checkpointed(cd, cid)
    try:
        refused_restore_left_nothing(cd, cid)
        t0 = time.monotonic()
        remove_task(cd, cid, timeout=30)
        assert task_pid(cd, cid) is None and time.monotonic() - t0 < 30
        r = cd.ctr("containers", "delete", cid, timeout=30)
        assert r.returncode == 0, r.stderr
        assert cid not in cd.ctr("containers", "ls", "-q").stdout.split()
    finally:
        remove_task(cd, cid)
        cd.ctr("containers", "delete", cid, timeout=60)
        cd.ctr("images", "rm", f"cocoon/{cid}:ck", timeout=60)


@pytest.fixture(scope="module")
def ctr17():
    """trixie's ctr 1.7 (scripts/fetch-ctr.sh), or a skip with the reason."""
    r = subprocess.run(["sh", str(pathlib.Path(__file__).resolve().parents[2] / "scripts" / "fetch-ctr.sh")],
                       capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        pytest.skip(f"ctr 1.7 could not be fetched: {r.stderr.strip()}")
    return r.stdout.strip()


def test_ctr_1_7_restores_a_terminal_task_onto_its_terminal(cd, ctr17):
    """containerd 1.6's runc shim does pass a new --console-socket to a
    restore, when the task is created with a terminal
    (pkg/process/init_state.go, createdCheckpointState.Start); ctr 1.7's
    `containers restore` creates it so (commit 5d0457df9). With trixie's
    ctr 1.7.24 against this containerd 1.6.20 daemon and shim: after ctr
    1.6's refused restore, `tasks delete -f` returns at once (1.7.21's fix),
    and `containers restore --live` brings the shell back on ctr's
    terminal: its variable, pid 1, stdin a terminal, resizes followed, and
    its exit status is ctr's."""
    from containerd_util import NS, remove_task, task_pid
    cid = f"t17-{os.getpid()}"
    ctr_t_checkpointed(cd, cid)
    new = [ctr17, "--address", str(cd.sock), "--namespace", NS]
    rs = None
    try:
        refused_restore_left_nothing(cd, cid)
        r = subprocess.run([*new, "tasks", "delete", "-f", cid], capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 0 and task_pid(cd, cid) is None, r.stdout + r.stderr
        assert cd.ctr("containers", "delete", cid, timeout=30).returncode == 0

        rs = Term([*new, "containers", "restore", "--rw", "--live", cid, f"cocoon/{cid}:ck"], 33, 90)
        assert rs.type_and_wait("echo after-$X-$$-$(test -t 0 && echo tty)\n", "after-kept-42-1-tty",
                                timeout=300), rs.seen
        assert rs.wait_for_size("33x90") == "33x90", rs.seen
        rs.resize(40, 100)
        assert rs.wait_for_size("40x100") == "40x100", rs.seen
        os.write(rs.master, b"exit 6\n")
        assert rs.wait() == 6, rs.seen
        assert task_pid(cd, cid) is None
    finally:
        if rs:
            rs.close()
        remove_task(cd, cid)
        cd.ctr("containers", "delete", cid, timeout=60)
        cd.ctr("images", "rm", f"cocoon/{cid}:ck", timeout=60)


# ---- podman: run -it, exec -it ----------------------------------------------------

def test_podman_run_t_and_exec_t(podman):
    """podman sizes its terminal with a resize of the master once the
    process runs, and again on SIGWINCH (podman run -it, podman exec -it);
    an exec's process.json has no consoleSize (podman 4.3). So a shell's
    first `stty size` can find 0x0 (the run's did in 4 of 11 runs on
    2026-11-30), which busybox reports as "stty: standard input:
    Inappropriate ioctl for device" (a stale errno, not a missing terminal).
    The probe tells the two apart and asks again."""
    image = podman.image
    run = Term(podman.argv("run", "-it", "--name", "pt", image, "sh"), 30, 100, env=podman.env)
    run_and_exec_on_terminals(run, podman.argv("exec", "-it", "pt", "sh"), env=podman.env)
