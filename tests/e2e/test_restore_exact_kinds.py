"""Issue 17's kinds beyond its six cases, through cocoon: mounts stacked on
one mount point and mount options CRIU cannot dump; every kind of file on
the default 9p rootfs; deleted executables and mappings; processes in
sub-cgroups; a CRIU option that must act at restore too (file-locks),
which CRIU config file wins, and the user's CRIU log level; an attached exec still running at the
checkpoint. Each comes back as it was, or the checkpoint is refused before
anything is frozen, naming the thing and what to do."""
import subprocess

import pytest

from conftest import COCOON, privileged, wait_for
from test_restore_exact import (TICKER, checkpoint, ghost_script, lines, move_to_fresh_vm, scratch,
                                sh, start, ticker_state)


def top_mounts(env, cid, mp):
    """The per-mount options of every mount at mp, bottom first."""
    mounts = sh(env, cid, "cat /proc/1/mountinfo").stdout.splitlines()
    return [set(m.split()[5].split(",")) for m in mounts if m.split()[4] == mp]


def refused_and_untouched(env, cid, r, *needles):
    assert r.returncode != 0, r.stdout + r.stderr
    for needle in needles:
        assert needle in r.stderr, (needle, r.stderr)
    assert "Error (criu" not in r.stderr.split("CRIU said")[0], r.stderr
    assert env.state(cid)["status"] == "running"
    assert sh(env, cid, "echo alive").stdout == "alive\n"


# ---- mounts -----------------------------------------------------------------------


def test_stacked_mounts_keep_the_top_mounts_own_flags(env):
    """A ro tmpfs stacked on a rw tmpfs at one destination: after a restore
    into a fresh VM the top one, which every path reaches, is ro again; the
    lower mount's saved line must not decide it."""
    def stacked(spec):
        spec["mounts"].append({"destination": "/stk", "type": "tmpfs", "source": "tmpfs",
                               "options": ["size=1m"]})
        spec["mounts"].append({"destination": "/stk", "type": "tmpfs", "source": "tmpfs",
                               "options": ["ro", "nosuid", "size=1m"]})
    b, _ = start(env, "stk", ["sleep", "100000"], extra=stacked, dirs=["stk"])
    before = top_mounts(env, "stk", "/stk")
    assert len(before) == 2 and "ro" in before[-1] and "rw" in before[0], before
    r = sh(env, "stk", "touch /stk/x")
    assert r.returncode != 0 and "Read-only" in r.stderr, r.stderr
    move_to_fresh_vm(env, "stk", b)
    after = top_mounts(env, "stk", "/stk")
    assert after and {"ro", "nosuid"} <= after[-1], after
    r = sh(env, "stk", "touch /stk/x")
    assert r.returncode != 0 and "Read-only" in r.stderr, f"/stk became writable: {r.stderr}"
    env.run("delete", "--force", "stk", check=True)


def test_mount_option_criu_cannot_dump_is_refused_by_name(env):
    """nosymfollow (Linux 5.10) is a per-mount option CRIU 3.17 (and 4.1.1)
    does not know: its dump would stop with "Unknown option [nosymfollow]".
    The agent refuses first, naming the mount and the option."""
    def nosym(spec):
        spec["mounts"].append({"destination": "/nsf", "type": "tmpfs", "source": "tmpfs",
                               "options": ["nosymfollow"]})
    start(env, "nsf", ["sleep", "100000"], extra=nosym, dirs=["nsf"])
    assert "nosymfollow" in top_mounts(env, "nsf", "/nsf")[-1]
    r = checkpoint(env, "nsf", env.tmp / "ck")
    refused_and_untouched(env, "nsf", r, "mount at /nsf", "'nosymfollow'", "CRIU 3.17")
    assert not (env.tmp / "ck").exists() or not any((env.tmp / "ck").iterdir())
    env.run("delete", "--force", "nsf", check=True)


# ---- every kind of file on the default 9p rootfs --------------------------------


NINEP_REFUSALS = ["files: fifo: No such device or address",
                  "files: tmpfile: Operation not supported",
                  "files: unix listen: No such device or address"]


@pytest.mark.parametrize("held", ["cwd", "fd"])
def test_every_kind_of_file_on_the_9p_rootfs_is_absent_or_refused(env, held):
    """On the 9p rootfs (the default) a FIFO cannot be opened and a unix
    socket cannot be bound (ENXIO), and O_TMPFILE is refused (EOPNOTSUPP),
    as docs/checkpoint-exact.md says: nothing of those kinds can exist to be
    dumped. A removed directory held as the working directory, or as an
    open fd, is refused at checkpoint time by name."""
    if held == "cwd":
        args = ["payload", "files", "/data"]
    else:
        # The payload keeps its cwd; a removed directory stays open on fd 9.
        args = ["sh", "-c", "mkdir /data/d && exec 9</data/d && rmdir /data/d && "
                            "exec payload files /data keep-cwd"]
    b, out = start(env, "9k", args)
    assert wait_for(lambda: any(x.startswith("files: ready") for x in lines(out))), lines(out)
    assert lines(out) == NINEP_REFUSALS + ["files: ready (with the errors above)"], lines(out)
    r = checkpoint(env, "9k", env.tmp / "ck")
    what = "directory /data/gone" if held == "cwd" else "directory /data/d"
    how = "has its working directory in" if held == "cwd" else "holds open"
    refused_and_untouched(env, "9k", r, f"{how} the deleted {what}", "9p",
                          'rootfs_fs = "virtiofs"')
    env.run("delete", "--force", "9k", check=True)


def test_deleted_mapping_on_9p_is_refused_by_name(env):
    """A deleted file of the 9p rootfs that a process has mapped (and no
    fd left) is refused by name, not with CRIU's raw "Can't statfs"."""
    script = ("(payload mmapfile /data/m >/tmp/m.out &) && "
              "while ! busybox grep -q mmap /tmp/m.out 2>/dev/null; do busybox sleep 0.2; done && "
              "busybox rm /data/m && echo ready && exec busybox sleep 100000")
    b, out = start(env, "dm", ["sh", "-c", script])
    assert wait_for(lambda: "ready" in lines(out), timeout=60), lines(out)
    r = checkpoint(env, "dm", env.tmp / "ck")
    refused_and_untouched(env, "dm", r, "has mapped in memory the deleted file /data/m", "4096 bytes",
                          "root filesystem", "9p", 'rootfs_fs = "virtiofs"')
    assert "Can't statfs" not in r.stderr, r.stderr
    env.run("delete", "--force", "dm", check=True)


def test_deleted_executable_on_9p_is_refused_by_name(env):
    """A process running a binary of the 9p rootfs that was removed since
    (busybox copied to /data/sleep runs its sleep applet) is refused by
    name, not with CRIU's raw error."""
    script = ("busybox cp /bin/busybox /data/sleep && (/data/sleep 100000 &) && "
              "busybox sleep 1 && busybox rm /data/sleep && echo ready && exec busybox sleep 100000")
    b, out = start(env, "dx", ["sh", "-c", script])
    assert wait_for(lambda: "ready" in lines(out), timeout=60), lines(out)
    find = "for p in /proc/[0-9]*; do busybox readlink $p/exe | busybox grep -q /data/sleep && echo ${p#/proc/}; done"
    assert len(sh(env, "dx", find).stdout.split()) == 1
    r = checkpoint(env, "dx", env.tmp / "ck")
    refused_and_untouched(env, "dx", r, "runs the deleted executable /data/sleep", "root filesystem",
                          "9p", 'rootfs_fs = "virtiofs"')
    env.run("delete", "--force", "dx", check=True)


def test_process_in_a_sub_cgroup_is_checked_too(env):
    """A (privileged) container makes a sub-cgroup of its own and moves a
    process holding a deleted 9p file into it: the precheck lists the
    sub-cgroups' processes too and refuses by name."""
    script = ("busybox mkdir -p /tmp/cg && busybox mount -t cgroup2 none /tmp/cg && "
              "busybox mkdir /tmp/cg/sub && "
              "(echo $$ >/tmp/cg/sub/cgroup.procs 2>/dev/null || true; "
              f"{ghost_script('/data/s', 8)}) & "
              "while :; do busybox sleep 1; done")
    b, out = start(env, "sc", ["sh", "-c", script], extra=privileged)
    assert wait_for(lambda: "ready" in lines(out), timeout=60), lines(out)
    r = sh(env, "sc", "cat /tmp/cg/sub/cgroup.procs")
    assert r.stdout.split(), f"nothing moved into the sub-cgroup: {r.stdout}{r.stderr}"
    r = checkpoint(env, "sc", env.tmp / "ck")
    refused_and_untouched(env, "sc", r, "holds open the deleted file /data/s", "8192 bytes")
    env.run("delete", "--force", "sc", check=True)


# ---- the settings users give CRIU: at restore too, and which file wins -------------


def test_file_locks_option_acts_at_restore_in_a_fresh_vm(env):
    """file-locks in cocoon's criu.conf: CRIU needs it at the dump (else it
    refuses a held lock) and at the restore (else the lock is not taken
    again). After a restore into a fresh VM the lock is still held by the
    same process."""
    conf = env.tmp / "criu.conf"
    conf.write_text("file-locks\n")
    env.write_config(f'[runtime]\ncriu_config = "{conf}"\n')
    b, out = start(env, "fl", ["payload", "lock", "/scratch/l"], extra=scratch)
    assert wait_for(lambda: "lock: held" in lines(out)), lines(out)
    assert sh(env, "fl", "payload trylock /scratch/l").stdout == "trylock: busy\n"
    move_to_fresh_vm(env, "fl", b)
    locks = sh(env, "fl", "cat /proc/locks").stdout
    assert "FLOCK" in locks and " 1 " in locks, locks
    assert sh(env, "fl", "payload trylock /scratch/l").stdout == "trylock: busy\n"
    env.run("delete", "--force", "fl", check=True)


def test_annotation_file_replaces_cocoon_criu_conf(env):
    """Both files present: cocoon's criu.conf raises the ghost limit, the
    annotation's file does not. The annotation's file wins whole (as
    runc's does over runc.conf): a 2 MiB ghost is refused at CRIU's 1 MiB
    default; with the limit in the annotation's file it is taken."""
    conf = env.tmp / "criu.conf"
    conf.write_text("ghost-limit 8M\n")
    ann = env.tmp / "from-annotation.conf"
    ann.write_text("tcp-close\n")
    env.write_config(f'[runtime]\ncriu_config = "{conf}"\n')

    def spec(s):
        scratch(s)
        s["annotations"] = {"org.criu.config": str(ann)}
    b, out = start(env, "pr", ["sh", "-c", ghost_script("/scratch/g", 2048)], extra=spec)
    assert wait_for(lambda: "ready" in lines(out))
    r = checkpoint(env, "pr", env.tmp / "ck", "--leave-running")
    assert r.returncode != 0 and "1048576 bytes, CRIU's default of 1 MiB" in r.stderr, r.stderr
    ann.write_text("tcp-close\nghost-limit 3M\n")
    r = checkpoint(env, "pr", env.tmp / "ck2", "--leave-running")
    assert r.returncode == 0, r.stderr
    env.run("delete", "--force", "pr", check=True)


def test_verbosity_in_the_criu_config_sets_criu_log_level(env):
    """'verbosity 4' in cocoon's criu.conf: CRIU logs at level 4 (its info
    and debug lines), though cocoon gives CRIU -v2 on the command line,
    which CRIU reads after its config file. Without the line, no info line."""
    conf = env.tmp / "criu.conf"
    start(env, "vb", ["sleep", "100000"])
    found = {}
    for i, text in enumerate(["", "verbosity 4\n"]):
        conf.write_text(text)
        env.write_config(f'[runtime]\ncriu_config = "{conf}"\n')
        w = env.tmp / f"w{i}"
        w.mkdir()
        r = checkpoint(env, "vb", env.tmp / f"ck{i}", "--leave-running", "--work-path", str(w))
        assert r.returncode == 0, r.stderr
        found[text] = "Dumping finished successfully" in (w / "dump.log").read_text()
    assert found == {"": False, "verbosity 4\n": True}, found
    env.run("delete", "--force", "vb", check=True)


# ---- an attached exec still running at the checkpoint ------------------------------


@pytest.mark.parametrize("leave_running", [True, False])
def test_attached_exec_running_at_checkpoint(env, leave_running):
    """`cocoon exec` without --detach, still running when the container is
    checkpointed. It never hangs the checkpoint. With --leave-running the
    client stays attached and the process runs on; otherwise the client
    returns once the container has gone (its session ends with the VM, as
    an engine's exec session does), and the process comes back with the
    container in a fresh VM: same pid, counting on."""
    b, _ = start(env, "ae", ["sh", "-c", "while :; do sleep 1; done"])
    client = subprocess.Popen([str(COCOON), "--root", str(env.root), "--config", str(env.config),
                               "exec", "ae", "sh", "-c", TICKER],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: sh(env, "ae", "cat /tmp/x").stdout.strip().isdigit())
        pid, ppid, cmdline, before = ticker_state(env, "ae")
        assert "tick" in cmdline, cmdline
        ck = env.tmp / "ck"
        r = checkpoint(env, "ae", ck, *(["--leave-running"] if leave_running else []))
        assert r.returncode == 0, r.stdout + r.stderr
        if leave_running:
            assert client.poll() is None, client.communicate()
            assert wait_for(lambda: ticker_state(env, "ae")[3] > before + 2)
            env.run("delete", "--force", "ae", check=True)
            client.communicate(timeout=60)
            return
        out, err = client.communicate(timeout=120)
        assert "tick" in out, (client.returncode, out, err)
        env.run("delete", "--force", "ae", check=True)
        restored_out = env.restore_detached("ae", ck, b)[1]
        pid2, ppid2, cmdline2, after = ticker_state(env, "ae")
        assert (pid2, cmdline2) == (pid, cmdline), (pid, pid2, cmdline, cmdline2)
        assert wait_for(lambda: ticker_state(env, "ae")[3] > after + 1)
        assert wait_for(lambda: any(x.startswith("tick ") for x in lines(restored_out)))
        env.run("delete", "--force", "ae", check=True)
    finally:
        if client.poll() is None:
            client.kill()
            client.communicate()
