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
    if r.returncode != 0 and "joining an existing network namespace is not supported" in r.stderr:
        pytest.skip("podman's network namespace is not joined yet (issue 14)")
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
