"""What users checkpoint must come back exactly (issue 17): read-only mounts,
deleted-open files, exec'd processes, and the settings users give CRIU. Each
case either comes back as it was, or is refused at checkpoint time with a
message that names the thing and what to do. Here through cocoon itself;
the same cases through podman and containerd are in
test_restore_exact_engines.py."""
import subprocess
import time

import pytest

from conftest import COCOON, qemu_pids, wait_for, write_bundle
from tty_util import restore_tty, tty_restore_needs_console_socket, tty_shell, tty_shell_carries_on


def lines(path):
    return path.read_text().splitlines() if path.exists() else []


def start(env, cid, args, extra=None, readonly=False, dirs=()):
    b = write_bundle(env.tmp / f"bundle-{cid}", args, extra=extra, readonly=readonly)
    for d in dirs:
        (b.rootfs / d).mkdir(exist_ok=True)
    rc, out, err = env.create(cid, b)
    assert rc == 0, err.read_text()
    env.run("start", cid, check=True)
    return b, out


def checkpoint(env, cid, path, *flags):
    return env.run("checkpoint", "--image-path", str(path), *flags, cid, timeout=600)


def restore(env, cid, path, bundle):
    return env.restore_detached(cid, path, bundle)[1]


def move_to_fresh_vm(env, cid, bundle, tag="ck"):
    """Checkpoint (the original ends), then restore into a new VM."""
    ck = env.tmp / tag
    r = checkpoint(env, cid, ck)
    assert r.returncode == 0, r.stdout + r.stderr
    env.run("delete", "--force", cid, check=True)
    assert qemu_pids(str(env.tmp)) == []
    return restore(env, cid, ck, bundle)


def sh(env, cid, script):
    return env.run("exec", cid, "sh", "-c", script)


def ro_mount(spec):
    spec["mounts"].append({"destination": "/ro-tmp", "type": "tmpfs", "source": "tmpfs",
                           "options": ["ro", "nosuid", "nodev"]})
    spec["mounts"].append({"destination": "/nx-tmp", "type": "tmpfs", "source": "tmpfs",
                           "options": ["noexec", "noatime", "nodiratime"]})
    spec["mounts"].append({"destination": "/sa-tmp", "type": "tmpfs", "source": "tmpfs",
                           "options": ["strictatime"]})


def mount_options(env, cid):
    """The per-mount options of each mount point's top mount in the init's
    mount namespace."""
    mounts = sh(env, cid, "cat /proc/1/mountinfo").stdout.splitlines()
    return {m.split()[4]: set(m.split()[5].split(",")) for m in mounts}


def assert_flag_mounts(env, cid):
    """/nx-tmp: noexec (a script there will not run), noatime and
    nodiratime; /sa-tmp: strictatime (neither relatime nor noatime).
    (nosymfollow: CRIU cannot dump it, test_restore_exact_kinds.py.)"""
    opts = mount_options(env, cid)
    assert {"noexec", "noatime", "nodiratime"} <= opts["/nx-tmp"], opts["/nx-tmp"]
    assert not {"relatime", "noatime"} & opts["/sa-tmp"], opts["/sa-tmp"]
    assert {"nosuid", "nodev", "ro"} <= opts["/ro-tmp"], opts["/ro-tmp"]
    r = sh(env, cid, "printf '#!/bin/sh\\necho ran\\n' >/nx-tmp/s; busybox chmod +x /nx-tmp/s; /nx-tmp/s")
    assert r.returncode != 0 and "ran" not in r.stdout and "Permission denied" in r.stderr, r.stdout + r.stderr


# ---- 1. read-only mounts --------------------------------------------------------


def test_readonly_root_and_mounts_stay_readonly_after_restore(env):
    """CRIU 3.17 restores the root mount without its read-only flag (fixed in
    CRIU 4.2); cocoon puts every mount's flags back before the tasks run."""
    b, _ = start(env, "ro", ["sleep", "1000"], extra=ro_mount, readonly=True,
                 dirs=["ro-tmp", "nx-tmp", "sa-tmp"])
    for path in ("/x", "/ro-tmp/x"):
        r = sh(env, "ro", f"touch {path}")
        assert r.returncode != 0 and "Read-only" in r.stderr, (path, r.stderr)
    assert_flag_mounts(env, "ro")
    move_to_fresh_vm(env, "ro", b)
    for path in ("/x", "/ro-tmp/x"):
        r = sh(env, "ro", f"touch {path}")
        assert r.returncode != 0 and "Read-only" in r.stderr, f"{path} became writable: {r.stderr}"
    assert_flag_mounts(env, "ro")
    env.run("delete", "--force", "ro", check=True)


# ---- 2. deleted-open files ---------------------------------------------------------


def scratch(spec):
    spec["mounts"].append({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                           "options": ["size=100m"]})


def ghost_script(path, kib):
    return (f"busybox dd if=/dev/urandom of={path} bs=1024 count={kib} 2>/dev/null; "
            f"busybox md5sum {path} > /tmp/md5-{kib}; exec 3<{path}; rm {path}; "
            "echo ready; while :; do sleep 1; done")


@pytest.mark.parametrize("kib", [4, 2048, 65536])
def test_deleted_open_file_on_tmpfs_travels_as_a_ghost(env, kib):
    conf = env.tmp / "criu.conf"
    conf.write_text("# cocoon's CRIU settings\nghost-limit 80M\n")
    env.write_config(f'[runtime]\ncriu_config = "{conf}"\n')
    b, out = start(env, "g", ["sh", "-c", ghost_script("/scratch/g", kib)], extra=scratch)
    assert wait_for(lambda: "ready" in lines(out))
    want = sh(env, "g", f"cat /tmp/md5-{kib}").stdout.split()[0]
    move_to_fresh_vm(env, "g", b)
    r = sh(env, "g", "busybox md5sum /proc/1/fd/3; busybox readlink /proc/1/fd/3")
    got, link = r.stdout.split()[0], r.stdout.splitlines()[-1]
    assert got == want, r.stdout + r.stderr
    assert link.endswith("(deleted)"), link
    env.run("delete", "--force", "g", check=True)


def rootfs_fstype(env, cid):
    mounts = sh(env, cid, "cat /proc/1/mountinfo").stdout.splitlines()
    root = [m.split(" - ")[1].split()[0] for m in mounts if m.split()[4] == "/"]
    return root[-1] if root else None


@pytest.mark.parametrize("kib", [4, 2048, 65536])
def test_deleted_open_file_on_the_virtiofs_rootfs_travels_as_a_ghost(env, kib):
    """rootfs_fs = "virtiofs": virtiofsd answers fstatfs() and the reopen by
    inode, so CRIU dumps the deleted rootfs file as a ghost file and the
    restore in a fresh VM gives the fd the same bytes, still (deleted)."""
    conf = env.tmp / "criu.conf"
    conf.write_text("ghost-limit 80M\n")
    env.write_config(f'[runtime]\ncriu_config = "{conf}"\n', vm='rootfs_fs = "virtiofs"\n')
    b, out = start(env, "gv", ["sh", "-c", ghost_script("/data/g", kib)])
    # 64 MiB from /dev/urandom and its md5sum take a while under TCG.
    assert wait_for(lambda: "ready" in lines(out), timeout=300), lines(out)
    assert rootfs_fstype(env, "gv") == "virtiofs"
    want = sh(env, "gv", f"cat /tmp/md5-{kib}").stdout.split()[0]
    move_to_fresh_vm(env, "gv", b)
    r = sh(env, "gv", "busybox md5sum /proc/1/fd/3; busybox readlink /proc/1/fd/3")
    got, link = r.stdout.split()[0], r.stdout.splitlines()[-1]
    assert got == want, r.stdout + r.stderr
    assert link == "/data/g (deleted)", link
    # CRIU's restore made the file again and unlinked it: nothing is left
    # in the rootfs on the host.
    assert [p.name for p in (b.rootfs / "data").iterdir()] == [], list((b.rootfs / "data").iterdir())
    env.run("delete", "--force", "gv", check=True)


def fd_facts(env, cid):
    """What the restore must keep of the payload's files: each fd's target,
    the offsets and content hashes of the memfd and the O_TMPFILE, the cwd."""
    r = sh(env, cid, "for n in 3 4 5 6 7 8; do echo fd$n $(busybox readlink /proc/1/fd/$n); done; "
                     "for n in 4 5; do echo pos$n $(busybox awk '/^pos/ {print $2}' /proc/1/fdinfo/$n); "
                     "echo md5_$n $(busybox md5sum </proc/1/fd/$n | busybox cut -d' ' -f1); done; "
                     "echo cwd $(busybox readlink /proc/1/cwd)")
    facts = {}
    for line in r.stdout.splitlines():
        key, _, value = line.partition(" ")
        facts[key] = value
    return facts


def test_every_kind_of_file_on_tmpfs_comes_back(env):
    """Issue 17 case 2's kind: a FIFO with data in it, a memfd, an O_TMPFILE,
    a listening unix socket bound in the container and a connected pair
    with data in flight, and a removed working directory, all on a tmpfs
    of the container, restored into a fresh VM and checked there."""
    b, out = start(env, "f", ["payload", "files", "/scratch"], extra=scratch)
    assert wait_for(lambda: "files: ready" in lines(out)), lines(out)
    assert lines(out) == ["files: ready"], lines(out)
    before = fd_facts(env, "f")
    assert before["fd3"] == "/scratch/fifo" and before["fd4"].startswith("/memfd:cocoon-memfd")
    assert before["pos4"] == before["pos5"] == "1234"
    assert before["cwd"] == "/scratch/gone (deleted)", before
    assert sh(env, "f", "payload unix-connect /scratch/sock").stdout == "pong\n"
    restored_out = move_to_fresh_vm(env, "f", b)
    after = fd_facts(env, "f")
    for key in ("fd3", "fd4", "pos4", "pos5", "md5_4", "md5_5", "cwd"):
        assert after.get(key) == before.get(key), (key, before, after)
    assert after["fd5"].startswith("/scratch/") and after["fd5"].endswith("(deleted)"), after
    assert all(after[f"fd{n}"].startswith("socket:") for n in (6, 7, 8)), after
    # The FIFO's data, the listener (bound at the same path) and the pair.
    r = sh(env, "f", "busybox head -c 10 /proc/1/fd/3")
    assert r.stdout == "fifo-data\n", r.stdout + r.stderr
    assert sh(env, "f", "payload unix-connect /scratch/sock").stdout == "pong\n"
    sh(env, "f", "touch /scratch/check")
    assert wait_for(lambda: "pair: ok" in lines(restored_out)), lines(restored_out)
    env.run("delete", "--force", "f", check=True)


@pytest.mark.parametrize("limit,named", [(None, "(1048576 bytes, CRIU's default of 1 MiB)"),
                                         ("1500K", "(1536000 bytes, the 'ghost-limit 1500K' of the CRIU config)")])
def test_ghost_file_over_the_limit_is_refused_naming_file_size_limit_and_setting(env, limit, named):
    """The refusal names the limit in force: CRIU's default, or the user's."""
    if limit:
        conf = env.tmp / "criu.conf"
        conf.write_text(f"ghost-limit {limit}\n")
        env.write_config(f'[runtime]\ncriu_config = "{conf}"\n')
    b, out = start(env, "big", ["sh", "-c", ghost_script("/scratch/big", 2048)], extra=scratch)
    assert wait_for(lambda: "ready" in lines(out))
    r = checkpoint(env, "big", env.tmp / "ck")
    assert r.returncode != 0
    for needle in ("/scratch/big", "2097152", named, "ghost-limit", "criu.conf", "org.criu.config"):
        assert needle in r.stderr, (needle, r.stderr)
    # Nothing was lost: the container runs on.
    assert env.state("big")["status"] == "running"
    assert sh(env, "big", "echo alive").stdout == "alive\n"
    env.run("delete", "--force", "big", check=True)


def test_deleted_file_on_the_9p_rootfs_is_refused_clearly(env):
    b, out = start(env, "r", ["sh", "-c", ghost_script("/data/g", 64)])
    assert wait_for(lambda: "ready" in lines(out))
    r = checkpoint(env, "r", env.tmp / "ck")
    assert r.returncode != 0
    for needle in ("/data/g", "65536", "9p", "tmpfs", 'rootfs_fs = "virtiofs"'):
        assert needle in r.stderr, (needle, r.stderr)
    assert "statfs fd" not in r.stderr.split("CRIU")[0]
    assert env.state("r")["status"] == "running"
    env.run("delete", "--force", "r", check=True)


def volume_at_data(env):
    """A host directory bind-mounted on /data (`-v DIR:/data`)."""
    d = env.tmp / "vol"
    d.mkdir()

    def extra(spec):
        spec["mounts"].append({"destination": "/data", "type": "bind", "source": str(d),
                               "options": ["rbind"]})
    return d, extra


def test_deleted_file_on_a_9p_volume_is_refused_naming_file_volume_and_setting(env):
    """Issue 17 case 2 on a volume: QEMU's 9p answers fstatfs() and the
    reopen of a deleted file by its path, so CRIU would stop with its raw
    "Can't statfs fd N"; the agent finds it first and names the file, its
    size, the volume and the setting that moves volumes to virtiofs."""
    d, extra = volume_at_data(env)
    b, out = start(env, "rv", ["sh", "-c", ghost_script("/data/g", 64)], extra=extra)
    assert wait_for(lambda: "ready" in lines(out))
    r = checkpoint(env, "rv", env.tmp / "ck")
    assert r.returncode != 0
    for needle in ("deleted file /data/g", "65536 bytes", "volume mounted at /data", "9p",
                   'shared_fs = "virtiofs"', "tmpfs"):
        assert needle in r.stderr, (needle, r.stderr)
    assert "rootfs_fs" not in r.stderr and "statfs fd" not in r.stderr, r.stderr
    # Nothing was harmed: the container runs on and still holds the file.
    assert env.state("rv")["status"] == "running"
    r = sh(env, "rv", "busybox readlink /proc/1/fd/3")
    assert r.stdout.strip() == "/data/g (deleted)", r.stdout + r.stderr
    env.run("delete", "--force", "rv", check=True)


@pytest.mark.parametrize("kib", [4, 2048])
def test_deleted_open_file_on_a_virtiofs_volume_travels_as_a_ghost(env, kib):
    """shared_fs = "virtiofs" serves volumes by inode: the deleted file on
    the volume goes into the images as a ghost file and comes back in a
    fresh VM, same bytes, still (deleted), nothing left in the host dir."""
    conf = env.tmp / "criu.conf"
    conf.write_text("ghost-limit 8M\n")
    env.write_config(f'[runtime]\ncriu_config = "{conf}"\n', vm='shared_fs = "virtiofs"\n')
    d, extra = volume_at_data(env)
    b, out = start(env, "vv", ["sh", "-c", ghost_script("/data/g", kib)], extra=extra)
    assert wait_for(lambda: "ready" in lines(out), timeout=120), lines(out)
    mounts = sh(env, "vv", "cat /proc/1/mountinfo").stdout.splitlines()
    assert [m.split(" - ")[1].split()[0] for m in mounts if m.split()[4] == "/data"] == ["virtiofs"], mounts
    want = sh(env, "vv", f"cat /tmp/md5-{kib}").stdout.split()[0]
    assert list(d.iterdir()) == []
    move_to_fresh_vm(env, "vv", b)
    r = sh(env, "vv", "busybox md5sum /proc/1/fd/3; busybox readlink /proc/1/fd/3")
    got, link = r.stdout.split()[0], r.stdout.splitlines()[-1]
    assert got == want, r.stdout + r.stderr
    assert link == "/data/g (deleted)", link
    assert list(d.iterdir()) == [], list(d.iterdir())
    env.run("delete", "--force", "vv", check=True)


def test_every_kind_of_file_on_the_virtiofs_rootfs_comes_back(env):
    """The payload's files in /data of a rootfs served by virtiofs: a FIFO
    with data in it, a listening unix socket bound there and a connected
    pair with data in flight, a memfd, and a removed working directory,
    restored into a fresh VM and checked there. O_TMPFILE is refused by the
    guest kernel on virtiofs (EOPNOTSUPP: the FUSE of the guest's Linux 6.1
    has no tmpfile operation), so there is no such file to checkpoint."""
    env.write_config("", vm='rootfs_fs = "virtiofs"\n')
    b, out = start(env, "fv", ["payload", "files", "/data"])
    assert wait_for(lambda: any(x.startswith("files: ready") for x in lines(out))), lines(out)
    assert lines(out) == ["files: tmpfile: Operation not supported",
                          "files: ready (with the errors above)"], lines(out)
    assert rootfs_fstype(env, "fv") == "virtiofs"
    before = fd_facts(env, "fv")
    assert before["fd3"] == "/data/fifo" and before["fd4"].startswith("/memfd:cocoon-memfd")
    assert before["fd5"] == "" and before["pos4"] == "1234", before
    assert before["cwd"] == "/data/gone (deleted)", before
    assert sh(env, "fv", "payload unix-connect /data/sock").stdout == "pong\n"
    restored_out = move_to_fresh_vm(env, "fv", b)
    after = fd_facts(env, "fv")
    for key in ("fd3", "fd4", "fd5", "pos4", "md5_4", "cwd"):
        assert after.get(key) == before.get(key), (key, before, after)
    assert all(after[f"fd{n}"].startswith("socket:") for n in (6, 7, 8)), after
    r = sh(env, "fv", "busybox head -c 10 /proc/1/fd/3")
    assert r.stdout == "fifo-data\n", r.stdout + r.stderr
    assert sh(env, "fv", "payload unix-connect /data/sock").stdout == "pong\n"
    sh(env, "fv", "touch /data/check")
    assert wait_for(lambda: "pair: ok" in lines(restored_out)), lines(restored_out)
    # CRIU's restore made the removed directory again and removed it: the
    # host's rootfs has the FIFO, the socket and the check file, no more.
    assert sorted(p.name for p in (b.rootfs / "data").iterdir()) == ["check", "fifo", "sock"]
    env.run("delete", "--force", "fv", check=True)


def test_annotation_names_the_criu_config(env):
    """org.criu.config names the file, as with runc; it wins over cocoon's
    criu.conf."""
    conf = env.tmp / "from-annotation.conf"
    conf.write_text("ghost-limit 8388608\n")
    env.write_config(f'[runtime]\ncriu_config = "{env.tmp / "missing.conf"}"\n')

    def spec(s):
        scratch(s)
        s["annotations"] = {"org.criu.config": str(conf)}
    b, out = start(env, "a", ["sh", "-c", ghost_script("/scratch/g", 2048)], extra=spec)
    assert wait_for(lambda: "ready" in lines(out))
    r = checkpoint(env, "a", env.tmp / "ck", "--leave-running")
    assert r.returncode == 0, r.stderr
    env.run("delete", "--force", "a", check=True)


# ---- 3. exec'd processes -------------------------------------------------------------


def exec_detached(env, cid, *args):
    """`cocoon exec --detach`: its host side lives as long as the process."""
    r = subprocess.run([str(COCOON), "--root", str(env.root), "--config", str(env.config), "exec",
                        "--detach", cid, *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)
    assert r.returncode == 0


# Counts in /tmp/x (the rootfs) and on its stdout; $$ in /tmp/pid.


TICKER = "echo $$ >/tmp/pid; i=0; while :; do i=$((i+1)); echo $i >/tmp/x; echo tick $i; sleep 1; done"


def ticker_state(env, cid):
    """The ticker's pid (in the container), its parent, and its count."""
    r = sh(env, cid, "p=$(cat /tmp/pid); busybox awk '/^PPid/ {print $2}' /proc/$p/status; "
                     "busybox tr '\\0' ' ' </proc/$p/cmdline; echo; cat /tmp/x")
    ppid, cmdline, count = (r.stdout.splitlines() + ["", "", ""])[:3]
    # /tmp/x is rewritten every second: it may be caught empty.
    return (int(sh(env, cid, "cat /tmp/pid").stdout), int(ppid or -1), cmdline,
            int(count) if count.isdigit() else -1)


def test_exec_process_is_checkpointed_and_restored_with_the_container(env):
    """Issue 17 case 3: a process started with `exec` belongs to the
    container's tree (a child of its init), so the dump takes it, and it
    goes on in a fresh VM: same pid, its count carries on, its output goes
    to the container's stdout."""
    b, out = start(env, "e", ["sh", "-c", "while :; do sleep 1; done"])
    exec_detached(env, "e", "sh", "-c", TICKER)
    assert wait_for(lambda: sh(env, "e", "cat /tmp/x").stdout.strip().isdigit())
    pid, ppid, cmdline, before = ticker_state(env, "e")
    assert ppid == 1 and "tick" in cmdline, (pid, ppid, cmdline)
    restored_out = move_to_fresh_vm(env, "e", b)
    pid2, ppid2, cmdline2, after = ticker_state(env, "e")
    assert (pid2, ppid2, cmdline2) == (pid, 1, cmdline)
    # Counting on from where it was, not from 1 (a new process would).
    assert wait_for(lambda: ticker_state(env, "e")[3] > after + 1)
    assert after >= before
    # stdin: EOF; stdout: the container's own.
    assert wait_for(lambda: any(line.startswith("tick ") and int(line.split()[1]) > before
                                for line in lines(restored_out))), lines(restored_out)
    env.run("delete", "--force", "e", check=True)


def test_exec_status_when_the_init_never_reaps_and_its_zombie_is_checkpointed(env):
    """The exec'd process is the init's child; `sleep` never reaps it. Its
    status still reaches `exec` (the kernel's exit event), and its zombie
    never holds up a checkpoint."""
    b, _ = start(env, "z", ["sleep", "100000"])
    r = env.run("exec", "z", "sh", "-c", "echo $$ >/tmp/zpid; exit 7")
    assert r.returncode == 7, r.stdout + r.stderr
    zpid = sh(env, "z", "cat /tmp/zpid").stdout.strip()
    state = sh(env, "z", f"busybox awk '/^State/ {{print $2}}' /proc/{zpid}/status").stdout.strip()
    assert state == "Z", state
    # A killed one: its signal comes through.
    r = env.run("exec", "z", "sh", "-c", "kill -TERM $$")
    assert r.returncode == 128 + 15, r.stdout + r.stderr
    t0 = time.monotonic()
    move_to_fresh_vm(env, "z", b)
    assert time.monotonic() - t0 < 300
    state = sh(env, "z", f"busybox awk '/^State/ {{print $2}}' /proc/{zpid}/status").stdout.strip()
    assert state == "Z", state
    env.run("delete", "--force", "z", check=True)


# ---- 6. the settings users give CRIU --------------------------------------------------


@pytest.mark.parametrize("line,why", [("page-server", "network"), ("external tty[1:2]", "host paths"),
                                      ("exec-cmd /bin/true", "host command"), ("no-such-option 1", "not supported"),
                                      # a second word would reach CRIU as an option of its own
                                      ("tcp-established --page-server", "takes no value"),
                                      ("ghost-limit 1M --skip-file-rwx-check", "takes one value")])


def test_criu_options_that_cannot_work_in_the_vm_are_refused(env, line, why):
    conf = env.tmp / "criu.conf"
    conf.write_text(f"ghost-limit 1M\n{line}\n")
    env.write_config(f'[runtime]\ncriu_config = "{conf}"\n')
    b, out = start(env, "o", ["sleep", "1000"])
    r = checkpoint(env, "o", env.tmp / "ck")
    assert r.returncode != 0
    assert f"{conf}:2" in r.stderr and line.split()[0] in r.stderr and why in r.stderr, r.stderr
    assert env.state("o")["status"] == "running"
    env.run("delete", "--force", "o", check=True)


# ---- 4. exec joins every namespace of the init ------------------------------------------


def test_exec_after_restore_joins_the_restored_time_namespace(env):
    """CRIU restores the tasks into a new time namespace; an exec must land in
    it, or it sees another clock and cannot be checkpointed with the rest."""
    b, _ = start(env, "t", ["sleep", "1000"])
    move_to_fresh_vm(env, "t", b)
    r = sh(env, "t", "busybox readlink /proc/self/ns/time; busybox readlink /proc/1/ns/time")
    mine, init = r.stdout.split()
    assert mine == init, r.stdout
    # A background process exec'd between two cycles is still there after
    # the second, in the init's time namespace, and still counting.
    exec_detached(env, "t", "sh", "-c", TICKER)
    assert wait_for(lambda: sh(env, "t", "cat /tmp/x").stdout.strip().isdigit())
    pid, _, _, before = ticker_state(env, "t")
    move_to_fresh_vm(env, "t", b, tag="ck2")
    assert sh(env, "t", "echo again").stdout == "again\n"
    pid2, ppid2, cmdline, _ = ticker_state(env, "t")
    assert (pid2, ppid2) == (pid, 1) and "tick" in cmdline
    assert wait_for(lambda: ticker_state(env, "t")[3] > before + 1)
    r = sh(env, "t", f"busybox readlink /proc/{pid}/ns/time; busybox readlink /proc/1/ns/time")
    assert len(set(r.stdout.split())) == 1, r.stdout
    env.run("delete", "--force", "t", check=True)


# ---- 5. terminals ---------------------------------------------------------------------


def test_terminal_checkpoint_restores_with_a_new_console_socket(env):
    """As with runc: the pty slave is external to the dump, and the restore
    hands in a new one whose master goes to the new --console-socket. The
    shell keeps its pid and its memory, and the new pty works both ways."""
    b = write_bundle(env.tmp / "b", ["sh"], terminal=True)
    con1 = tty_shell(env, b)
    ck = env.tmp / "ck"
    r = checkpoint(env, "tty", ck)
    assert r.returncode == 0, r.stdout + r.stderr
    env.run("delete", "--force", "tty", check=True)
    con1.close()

    tty_restore_needs_console_socket(env, ck, b)
    # A bundle without a terminal: the guest names the mismatch, and the VM goes.
    plain = write_bundle(env.tmp / "plain", ["sh"], terminal=False)
    r = restore_tty(env, "tty", ck, plain)
    assert r.returncode != 0 and "taken with a terminal" in r.stderr, r.stderr
    assert not (env.root / "tty").exists() and qemu_pids(str(env.tmp)) == []
    assert "tty" not in env.run("list").stdout

    con2 = tty_shell_carries_on(env, ck, b, lambda: sh(env, "tty", "busybox ps -o args"))
    con2.close()
    env.run("delete", "tty", check=True)
    assert qemu_pids(str(env.tmp)) == []
