"""What users checkpoint must come back exactly (issue 17), through the
engines as their users drive them: podman and containerd. The same cases
through cocoon itself, and the helpers these share, are in
test_restore_exact.py."""
import os
import subprocess
import time

import pytest

from conftest import wait_for
from podman_util import podman  # noqa: F401  (the fixture)
from containerd_util import IMAGE as CTR_IMAGE, gone_then_restored_live, run_args, start_containerd, task_status
from test_restore_exact import ghost_script
from tty_util import Term


# ---- the cases through the engines, as their users drive them -----------------------


def test_podman_deleted_open_file_on_the_virtiofs_rootfs(podman):
    """The same through podman (its rootfs is an overlay mount on the host),
    with rootfs_fs in the cocoon config podman's runtime reads."""
    conf = podman.tmp / "criu.conf"
    conf.write_text("ghost-limit 8M\n")
    podman.cocoon_config.write_text(f'[runtime]\ncriu_config = "{conf}"\n[vm]\nrootfs_fs = "virtiofs"\n')
    podman.check("run", "-d", "--name", "gp", podman.image, "sh", "-c", ghost_script("/data/g", 2048))
    assert wait_for(lambda: "ready" in podman.run("logs", "gp").stdout, timeout=120)
    want = podman.check("exec", "gp", "cat", "/tmp/md5-2048").stdout.split()[0]
    podman.check("container", "checkpoint", "gp", timeout=600)
    podman.check("container", "restore", "gp", timeout=600)
    r = podman.check("exec", "gp", "sh", "-c", "busybox md5sum /proc/1/fd/3; busybox readlink /proc/1/fd/3")
    got, link = r.stdout.split()[0], r.stdout.splitlines()[-1]
    assert got == want, r.stdout + r.stderr
    assert link == "/data/g (deleted)", link
    podman.check("rm", "--force", "--time", "0", "gp")


GHOST_KIB = (4, 2048, 65536)


def ghosts_script():
    """pid 1 of the ghost-size test: for each size in GHOST_KIB, a file of
    random bytes on /scratch (a tmpfs) and one on /data (the rootfs share),
    each held open (fds 3 to 8) and removed; "FD PATH MD5" of each in
    /tmp/md5s. 64 MiB from /dev/urandom is made once (slow under TCG)."""
    steps = ["busybox dd if=/dev/urandom of=/scratch/r bs=1M count=64 2>/dev/null"]
    fd = 3
    for kib in GHOST_KIB:
        for d in ("/scratch", "/data"):
            f = f"{d}/g{kib}"
            steps += [f"busybox head -c {kib * 1024} /scratch/r >{f}",
                      f"echo {fd} {f} $(busybox md5sum <{f} | busybox cut -d' ' -f1) >>/tmp/md5s",
                      f"exec {fd}<{f}", f"busybox rm {f}"]
            fd += 1
    return "; ".join(steps + ["busybox rm /scratch/r", "echo ready", "while :; do sleep 1; done"])


# Each held file: "FD PATH WANT GOT LINK", GOT and LINK read through /proc/1/fd.
GHOST_FACTS = ("while read fd p m; do echo $fd $p $m $(busybox md5sum </proc/1/fd/$fd | busybox cut -d' ' -f1) "
               "$(busybox readlink /proc/1/fd/$fd); done </tmp/md5s")


def ghosts_kept(text):
    """The facts of GHOST_FACTS: six files, each reading its own bytes and
    still (deleted) at its path."""
    rows = [line.split(" ", 4) for line in text.splitlines()]
    assert len(rows) == 2 * len(GHOST_KIB), text
    for fd, path, want, got, link in rows:
        assert got == want and len(want) == 32, (fd, path, want, got)
        assert link == f"{path} (deleted)", (fd, path, link)


def test_podman_deleted_open_files_of_every_size_on_tmpfs_and_the_rootfs_share(podman):
    """Issue 17 case 2 through podman, each size the issue names (4 KiB,
    2 MiB, 64 MiB), on a tmpfs (`podman run --tmpfs`) and on the rootfs
    share (rootfs_fs = "virtiofs"), all in one container: after podman's
    checkpoint and restore (a fresh VM) every fd reads the same bytes and
    is still (deleted), and no ghost's temporary name is left in /data.
    The 64 MiB ones pass CRIU's 1 MiB ghost limit only through the
    ghost-limit of cocoon's CRIU configuration file (case 6)."""
    conf = podman.tmp / "criu.conf"
    conf.write_text("ghost-limit 80M\n")
    podman.cocoon_config.write_text(f'[runtime]\ncriu_config = "{conf}"\n[vm]\nrootfs_fs = "virtiofs"\n')
    podman.check("run", "-d", "--tmpfs", "/scratch", "--name", "gs", podman.image, "sh", "-c", ghosts_script())
    assert wait_for(lambda: "ready" in podman.run("logs", "gs").stdout, timeout=300), podman.run("logs", "gs")
    ghosts_kept(podman.check("exec", "gs", "sh", "-c", GHOST_FACTS).stdout)
    podman.check("container", "checkpoint", "gs", timeout=600)
    podman.check("container", "restore", "gs", timeout=600)
    ghosts_kept(podman.check("exec", "gs", "sh", "-c", GHOST_FACTS).stdout)
    assert podman.check("exec", "gs", "busybox", "ls", "-A", "/data").stdout == ""
    podman.check("rm", "--force", "--time", "0", "gs")


def ticker(name):
    """A process to start with `podman exec -d`: counts in /tmp/NAME.x, its
    pid in /tmp/NAME.pid, its output to /dev/null (the exec session that
    would read it ends with the old VM)."""
    return (f"exec </dev/null >/dev/null 2>&1; echo $$ >/tmp/{name}.pid; i=0; "
            f"while :; do i=$((i+1)); echo $i >/tmp/{name}.x; sleep 1; done")


NONE = ("", "", -1, "")  # a ticker not (yet) seen


def tickers(podman, cid, names):
    """{name: (pid, ppid, count, time namespace)} of the tickers, and the
    time namespaces of this exec and of the init, in one exec."""
    script = "; ".join(
        [f"p=$(cat /tmp/{n}.pid); echo {n} $p $(busybox awk '/^PPid/ {{print $2}}' /proc/$p/status) "
         f"$(cat /tmp/{n}.x) $(busybox readlink /proc/$p/ns/time)" for n in names]
        + ["echo self 0 0 0 $(busybox readlink /proc/self/ns/time)",
           "echo init 1 0 0 $(busybox readlink /proc/1/ns/time)"])
    out = {}
    for line in podman.run("exec", cid, "sh", "-c", script).stdout.splitlines():
        parts = line.split()
        if len(parts) == 5:
            out[parts[0]] = (parts[1], parts[2], int(parts[3]) if parts[3].isdigit() else -1, parts[4])
    return out


def test_podman_exec_across_two_cycles_stays_in_the_init_time_namespace(podman):
    """Issue 17 cases 3 and 4 through podman, as the issue's test asks: a
    ticker started with `podman exec -d`, a checkpoint and restore, a
    second ticker exec'd between the cycles, a second checkpoint and
    restore. Both tickers keep their pids and parent (the init) and count
    on; every exec, both tickers and the init share one time namespace
    after each cycle (CRIU restores the tasks into a new one)."""
    podman.check("run", "-d", "--name", "tc", podman.image, "sh", "-c", "while :; do sleep 1; done")
    podman.check("exec", "-d", "tc", "sh", "-c", ticker("a"))
    assert wait_for(lambda: tickers(podman, "tc", ["a"]).get("a", NONE)[2] > 0), tickers(podman, "tc", ["a"])
    first = tickers(podman, "tc", ["a"])
    for cycle, names in ((1, ["a"]), (2, ["a", "b"])):
        podman.check("container", "checkpoint", "tc", timeout=600)
        podman.check("container", "restore", "tc", timeout=600)
        now = tickers(podman, "tc", names)
        assert set(names) <= set(now), (cycle, now)
        assert len({now[n][3] for n in [*names, "self", "init"]}) == 1, (cycle, now)
        for n in names:
            assert now[n][:2] == (first[n][0], "1"), (cycle, n, first, now)
            assert wait_for(lambda n=n: tickers(podman, "tc", [n]).get(n, NONE)[2] > now[n][2] + 1), \
                (cycle, n, "stopped counting")
        if cycle == 1:
            podman.check("exec", "-d", "tc", "sh", "-c", ticker("b"))
            assert wait_for(lambda: tickers(podman, "tc", ["b"]).get("b", NONE)[2] > 0)
            first.update(tickers(podman, "tc", ["b"]))
    podman.check("rm", "--force", "--time", "0", "tc")


def test_podman_attached_exec_running_at_checkpoint(podman):
    """`podman exec` attached (no -d), still running when podman checkpoints
    the container: the checkpoint does not hang on it; the exec session
    ends with the old VM (podman exec returns), and the process comes back
    with the container: same pid, parent the init, counting on."""
    podman.check("run", "-d", "--name", "ax", podman.image, "sh", "-c", "while :; do sleep 1; done")
    client = subprocess.Popen(podman.argv("exec", "ax", "sh", "-c", ticker("x")), env=podman.env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: tickers(podman, "ax", ["x"]).get("x", NONE)[2] > 0)
        before = tickers(podman, "ax", ["x"])["x"]
        podman.check("container", "checkpoint", "ax", timeout=600)
        client.communicate(timeout=120)
        podman.check("container", "restore", "ax", timeout=600)
        now = tickers(podman, "ax", ["x"]).get("x", NONE)
        assert now[:2] == (before[0], "1"), (before, now)
        assert wait_for(lambda: tickers(podman, "ax", ["x"]).get("x", NONE)[2] > now[2] + 1)
    finally:
        if client.poll() is None:
            client.kill()
            client.communicate()
    podman.check("rm", "--force", "--time", "0", "ax")


def test_podman_run_it_checkpoint_and_restore(podman):
    """Issue 17 case 5 as the issue names it: `podman run -it`, attached on
    the user's terminal. The checkpoint ends the container, and so the
    attached podman; `podman container restore` gives the shell a new
    terminal, and `podman attach` finds the same shell (its variable, pid
    1) on it."""
    run = Term(podman.argv("run", "-it", "--name", "ti", podman.image, "sh"), 30, 100, env=podman.env)
    try:
        assert run.type_and_wait("X=kept-$((6*7)); echo before-$X-$$-$(test -t 0 && echo tty)\n",
                                 "before-kept-42-1-tty", timeout=180), run.seen
        podman.check("container", "checkpoint", "ti", timeout=600)
        run.wait(timeout=60)
        assert podman.check("ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout.startswith("ti Exited")
        podman.check("container", "restore", "ti", timeout=600)
        seen = attach_and_type(podman, "ti", "echo after-$X-$$-$(test -t 0 && echo tty)\n", "after-kept-42-1-tty")
        assert b"after-kept-42-1-tty" in seen, seen
    finally:
        run.close()
    podman.check("rm", "--force", "--time", "0", "ti")


def attach_and_type(podman, name, text, want, timeout=60):
    """`podman attach` on a terminal of our own (it wants one for a -t
    container): types text, reads until want shows, detaches with ^P^Q."""
    import pty
    import select
    master, slave = pty.openpty()
    p = subprocess.Popen(podman.argv("attach", name), stdin=slave, stdout=slave, stderr=slave,
                         env=podman.env, close_fds=True)
    os.close(slave)
    seen = b""
    try:
        time.sleep(1)
        os.write(master, text.encode())
        deadline = time.time() + timeout
        while want.encode() not in seen and time.time() < deadline:
            ready, _, _ = select.select([master], [], [], 1)
            if ready:
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    break
        os.write(master, b"\x10\x11")
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    return seen


def test_podman_terminal_container_checkpoint_and_restore(podman):
    """`podman run -dt`: conmon gets the pty master on the console socket; at
    restore it gets the new one. The shell keeps its state and pid, and
    what is typed through `podman attach` reaches it, before and after."""
    r = podman.run("run", "-dt", "--name", "t1", podman.image, "sh")
    assert r.returncode == 0, r.stderr
    seen = attach_and_type(podman, "t1", "X=kept-$((6*7)); echo before-$X-$$\n", "before-kept-42-1")
    assert b"before-kept-42-1" in seen, seen
    podman.check("container", "checkpoint", "t1", timeout=600)
    assert podman.check("ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout.startswith("t1 Exited")
    podman.check("container", "restore", "t1", timeout=600)
    seen = attach_and_type(podman, "t1", "echo after-$X-$$-$(test -t 0 && echo tty)\n", "after-kept-42-1-tty")
    assert b"after-kept-42-1-tty" in seen, seen
    assert "after-kept-42-1-tty" in podman.check("logs", "t1").stdout
    podman.check("rm", "--force", "--time", "0", "t1")


def tmpfs_scripts(tmp):
    """The three scripts of the engine tests, on the tmpfs tmp of the
    container: busybox applets by name (ctr's image has few links).
    - the ghost (pid 1): 2 MiB deleted and held open on fd 3, over CRIU's
      1 MiB ghost limit unless the annotation's CRIU config (case 6) reaches
      the guest's CRIU;
    - the ticker (case 3), its output to /dev/null: the engine's exec
      session that would read it ends with the old VM;
    - the facts: what must be the same after the restore, one "key value"
      a line."""
    ghost = (f"busybox dd if=/dev/urandom of={tmp}/g bs=1024 count=2048 2>/dev/null; "
             f"busybox md5sum {tmp}/g | busybox cut -d' ' -f1 >{tmp}/md5; exec 3<{tmp}/g; "
             f"busybox rm {tmp}/g; echo ready; while :; do sleep 1; done")
    ticker = (f"exec </dev/null >/dev/null 2>&1; echo $$ >{tmp}/pid; i=0; "
              f"while :; do i=$((i+1)); echo $i >{tmp}/x; sleep 1; done")
    facts = ("echo md5 $(busybox md5sum </proc/1/fd/3 | busybox cut -d' ' -f1); "
             "echo link $(busybox readlink /proc/1/fd/3); "
             f"echo want $(cat {tmp}/md5); p=$(cat {tmp}/pid); echo pid $p; "
             "echo ppid $(busybox awk '/^PPid/ {print $2}' /proc/$p/status); "
             f"echo count $(cat {tmp}/x); "
             "echo timens $(busybox readlink /proc/self/ns/time) $(busybox readlink /proc/1/ns/time) "
             "$(busybox readlink /proc/$p/ns/time); "
             "echo touch $(busybox touch /rootfs-is-writable 2>&1 && echo written); "
             "echo rotouch $(busybox touch /ro/x 2>&1 && echo written)")
    return ghost, ticker, facts


def tmpfs_facts(text):
    f = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        f[key] = value
    f["count"] = int(f["count"]) if f.get("count", "").isdigit() else -1
    return f


def assert_tmpfs_facts_kept(tmp, before, after):
    """The deleted file reads the same and is still (deleted); the exec'd
    ticker has its pid and parent (the init); an exec joins the init's time
    namespace (case 4), as does the ticker; the root and the read-only
    volume at /ro are still read-only (case 1)."""
    assert after["md5"] == after["want"] == before["want"], (before, after)
    assert after["link"] == f"{tmp}/g (deleted)", after
    assert (after["pid"], after["ppid"]) == (before["pid"], "1"), (before, after)
    assert len(set(after["timens"].split())) == 1, after
    assert "Read-only file system" in after["touch"], after
    assert "Read-only file system" in after["rotouch"], after


def test_podman_read_only_root_exec_ghost_and_annotation(podman):
    """Cases 1, 2, 3 and 6 as a podman user meets them: `podman run
    --read-only --annotation org.criu.config=F`, a 2 MiB deleted file held
    open on /tmp (podman's tmpfs of a read-only container; its /dev/shm is a
    host directory, a volume), a ticker started with `podman exec -d`;
    checkpoint and restore (a fresh VM). The root stays read-only, the
    ticker keeps its pid and counts on, the deleted file reads the same:
    only F's ghost-limit lets a 2 MiB ghost through."""
    conf = podman.tmp / "criu-annotation.conf"
    conf.write_text("ghost-limit 8M\n")
    ghost, ticker, facts = tmpfs_scripts("/tmp")
    ro = podman.tmp / "ro"
    ro.mkdir()
    podman.check("run", "-d", "--read-only", "-v", f"{ro}:/ro:ro", "--annotation", f"org.criu.config={conf}",
                 "--name", "px", podman.image, "sh", "-c", ghost)
    assert wait_for(lambda: "ready" in podman.run("logs", "px").stdout, timeout=120)
    podman.check("exec", "-d", "px", "sh", "-c", ticker)

    def now():
        return tmpfs_facts(podman.run("exec", "px", "sh", "-c", facts).stdout)
    assert wait_for(lambda: now()["count"] > 0)
    before = now()
    assert before["md5"] == before["want"] != "" and before["ppid"] == "1", before
    assert "Read-only" in before["touch"] and "Read-only" in before["rotouch"], before
    podman.check("container", "checkpoint", "px", timeout=600)
    podman.check("container", "restore", "px", timeout=600)
    after = now()
    assert_tmpfs_facts_kept("/tmp", before, after)
    assert wait_for(lambda: now()["count"] > max(after["count"], before["count"]) + 1), \
            "the exec'd ticker stopped"
    podman.check("rm", "--force", "--time", "0", "px")


def test_podman_deleted_file_on_a_9p_volume_is_refused_clearly(podman, tmp_path):
    """`podman run -v DIR:/data` with a deleted file held open there: the
    refusal reaches the podman user and names the file, the volume and the
    setting; the container runs on."""
    d = tmp_path / "vol"
    d.mkdir()
    podman.check("run", "-d", "-v", f"{d}:/data", "--name", "pv", podman.image, "sh", "-c",
                 ghost_script("/data/g", 64))
    assert wait_for(lambda: "ready" in podman.run("logs", "pv").stdout, timeout=120)
    r = podman.run("container", "checkpoint", "pv", timeout=600)
    assert r.returncode != 0
    # podman quotes the runtime's message (its quotes escaped).
    for needle in ("deleted file /data/g", "volume mounted at /data", "shared_fs = ", "virtiofs"):
        assert needle in r.stderr, (needle, r.stderr)
    assert podman.check("exec", "pv", "echo", "alive").stdout == "alive\n"
    podman.check("rm", "--force", "--time", "0", "pv")


@pytest.fixture(scope="module")
def cd(tmp_path_factory):
    """A private containerd with the test image (containerd_util)."""
    yield from start_containerd(tmp_path_factory.mktemp("containerd"))


def test_ctr_read_only_root_exec_ghost_and_annotation(cd, tmp_path):
    """The same cases through containerd: `ctr run --read-only --annotation
    org.criu.config=F`, the ghost on /dev/shm (containerd's tmpfs), `ctr
    tasks exec -d`, `ctr containers checkpoint --task`, then `ctr containers
    restore --live` into a fresh VM."""
    cid = f"rx-{os.getpid()}"
    conf = tmp_path / "criu-annotation.conf"
    conf.write_text("ghost-limit 8M\n")
    ghost, ticker, facts = tmpfs_scripts("/dev/shm")
    ro = tmp_path / "ro"
    ro.mkdir()
    r = cd.ctr(*run_args("-d", "--read-only", "--mount", f"type=bind,src={ro},dst=/ro,options=rbind:ro",
                         "--annotation", f"org.criu.config={conf}", CTR_IMAGE, cid, "sh", "-c", ghost))
    assert r.returncode == 0, r.stderr

    def now():
        r = cd.ctr("tasks", "exec", "--exec-id", f"f{time.time_ns()}", cid, "sh", "-c", facts)
        return tmpfs_facts(r.stdout)
    try:
        assert wait_for(lambda: task_status(cd, cid) == "RUNNING", timeout=60)
        assert wait_for(lambda: now().get("want", "") != "", timeout=60), now()
        r = cd.ctr("tasks", "exec", "-d", "--exec-id", "ticker", cid, "sh", "-c", ticker)
        assert r.returncode == 0, r.stderr
        assert wait_for(lambda: now()["count"] > 0, timeout=60), now()
        before = now()
        assert before["md5"] == before["want"] != "" and before["ppid"] == "1", before
        assert "Read-only" in before["touch"] and "Read-only" in before["rotouch"], before
        r = cd.ctr("containers", "checkpoint", "--rw", "--task", cid, f"cocoon/{cid}:ck", timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        gone_then_restored_live(cd, cid, f"cocoon/{cid}:ck")
        after = now()
        assert_tmpfs_facts_kept("/dev/shm", before, after)
        assert wait_for(lambda: now()["count"] > max(after["count"], before["count"]) + 1), \
            "the exec'd ticker stopped"
    finally:
        cd.ctr("tasks", "kill", "-s", "KILL", cid)
        wait_for(lambda: task_status(cd, cid) in ("STOPPED", None), timeout=60)
        cd.ctr("tasks", "delete", "-f", cid)
        cd.ctr("containers", "delete", cid)
        cd.ctr("images", "rm", f"cocoon/{cid}:ck")
