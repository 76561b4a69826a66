"""Hostile-guest cases (test_hostile.py): checkpoint (what the guest's dump,
reply and logs can do to the host) and the guards on what it writes
(console, VMM log, shared directory)."""
import json
import os
import stat
import subprocess
import time

from hostile_env import Env, alive, case, refused_checkpoint


@case
def reply_names_a_symlink_out_of_the_share():
    with Env("reply-symlink") as env:
        return refused_checkpoint(env, "names images at", "--leave-running")


@case
def checkpoints_dir_is_a_symlink_to_the_canary():
    with Env("checkpoints-symlink") as env:
        return refused_checkpoint(env, "checkpoints", "--leave-running")


@case
def empty_reply_is_an_error_and_thaws():
    with Env("reply-empty") as env:
        detail = refused_checkpoint(env, "names images at")
        assert "pause resume=1" in env.log_text(), "the container was not thawed"
        return detail


@case
def setuid_and_foreign_owner_do_not_reach_the_image_path():
    with Env("setuid") as env:
        env.create()
        out = os.path.join(env.tmp, "out")
        rc, err, _ = env.cocoon("checkpoint", "--image-path", out, "--leave-running", "c1")
        assert rc == 0, err
        assert stat.S_IMODE(os.stat(out).st_mode) == 0o700
        for name in os.listdir(out):
            st = os.lstat(os.path.join(out, name))
            assert stat.S_ISREG(st.st_mode), f"{name} is not a regular file"
            assert stat.S_IMODE(st.st_mode) == 0o600, f"{name} has mode {oct(st.st_mode)}"
            assert st.st_uid == os.geteuid() and st.st_nlink == 1, f"{name}: uid {st.st_uid}"


@case
def hard_link_to_the_canary_is_refused():
    with Env("hardlink") as env:
        return refused_checkpoint(env, "links", "--leave-running")


@case
def a_dump_file_named_as_the_hosts_manifest_is_refused():
    """A file the guest names cocoon.json: the host listed it as an image
    with the guest's hash, then wrote its manifest over it, and published
    the checkpoint as good; its restore failed ("cocoon.json is 646 bytes,
    expected 14 (truncated?)"). Without --leave-running the container is
    thawed, not killed, since nothing usable was published."""
    with Env("name-manifest") as env:
        return refused_checkpoint(env, "cocoon.json is a name of the host's")


@case
def sparse_giant_is_refused_by_its_size():
    with Env("sparse") as env:
        return refused_checkpoint(env, "limits.checkpoint_max_bytes", "--leave-running", bound=10)


@case
def device_node_is_refused():
    if os.geteuid() != 0:
        return "skip: needs root for mknod"
    with Env("device") as env:
        return refused_checkpoint(env, "not a regular file", "--leave-running")


@case
def dump_log_symlink_is_not_copied():
    with Env("dump-log-symlink") as env:
        work = os.path.join(env.tmp, "work")
        refused_checkpoint(env, "boom", "--leave-running", "--work-path", work)
        env.assert_secret_not_copied()


@case
def dump_log_fifo_does_not_hang():
    with Env("dump-log-fifo") as env:
        return refused_checkpoint(env, "boom", "--leave-running", "--work-path", os.path.join(env.tmp, "w"))


@case
def failed_dumps_keep_one_log_per_container():
    """rev hostile5 L4: after a failed dump the host keeps CRIU's whole log
    in host_checkpoint_dir, and named it after the checkpoint ID, a new one
    per attempt: a guest that failed its dumps on purpose, each with a log
    at the 64 MiB cap, took that much more of the host's disk per
    `checkpoint`, without end. Now there is one log per container, the
    newest."""
    with Env("dump-log-fails") as env:
        env.create()
        for i in range(1, 5):
            out = os.path.join(env.tmp, f"out{i}")
            rc, err, took = env.cocoon("checkpoint", "--image-path", out, "--leave-running", "c1", timeout=60)
            assert rc not in (0, None) and b"boom" in err, f"attempt {i}: rc {rc} {err!r}"
            assert b"(CRIU's whole log: " in err, f"attempt {i}: the log is not named: {err!r}"
        ckpts = os.path.join(env.tmp, "ckpts")
        logs = sorted(n for n in os.listdir(ckpts) if n.endswith("dump.log"))
        assert logs == ["failed-c1-dump.log"], f"kept after 4 failed dumps: {logs}"
        with open(os.path.join(ckpts, logs[0]), "rb") as f:
            head = f.read(16)
        assert head.startswith(b"attempt 4\n"), f"the kept log is not the newest: {head!r}"
        assert env.canary_intact()
        return f"{logs[0]}: the 4th attempt's"


@case
def dump_swapped_for_a_symlink_while_it_is_published():
    with Env("swap-race") as env:
        env.create()
        published = 0
        for i in range(6):
            out = os.path.join(env.tmp, f"out{i}")
            rc, err, took = env.cocoon("checkpoint", "--image-path", out, "--leave-running", "c1", timeout=60)
            assert rc is not None and took < 20, f"round {i} took {took:.1f} s"
            assert env.canary_intact(), f"round {i}: the canary was touched: {err!r}"
            if rc == 0:
                published += 1
                st = os.lstat(out)
                assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700, f"round {i}: {out}"
                for name in os.listdir(out):
                    fst = os.lstat(os.path.join(out, name))
                    assert stat.S_ISREG(fst.st_mode) and stat.S_IMODE(fst.st_mode) == 0o600, name
            else:
                assert not os.path.exists(out), f"round {i}: something was left at --image-path"
            time.sleep(2.2)  # the swapper of this round is done
        return f"{published} of 6 rounds published a whole dump, the others were refused"


@case
def guest_text_is_stripped_and_logged_escaped():
    with Env("bad-text") as env:
        env.create()
        log = os.path.join(env.tmp, "cocoon.log")
        rc, err, _ = env.cocoon("--log", log, "checkpoint", "--leave-running", "c1")
        assert rc != 0
        for bad in (b"\x1b", b"\x07", b"\x7f", b"\xc2\x9b"):
            assert bad not in err, f"{bad!r} reached the terminal: {err!r}"
        with open(log, "rb") as f:
            lines = f.read().splitlines()
        assert len(lines) == 1, f"the log has {len(lines)} lines: {lines!r}"
        assert b'\\"quoted\\"' in lines[0], lines[0]


@case
def file_names_in_a_dump_reach_no_terminal_as_controls():
    """A file in the dump named with terminal controls (OSC, ESC [2J, C1
    CSI, DEL): the host refused it and printed its name as it was."""
    with Env("name-controls") as env:
        detail = refused_checkpoint(env, "unexpected file name", "--leave-running")
        _, err, _ = env.cocoon("checkpoint", "--leave-running", "c1")
        for bad in (b"\x1b", b"\x07", b"\x7f", b"\xc2\x9b"):
            assert bad not in err, f"{bad!r} reached the terminal: {err!r}"
        return detail


@case
def checkpoint_stats_strip_the_guests_route_name():
    """checkpoint --print-stats prints the route the agent names: its
    controls (ESC, BEL, DEL, C1 as UTF-8 and raw) reached the terminal,
    since JSON escapes only C0."""
    with Env("bad-route") as env:
        env.create()
        out_path = os.path.join(env.tmp, "stats.txt")
        with open(out_path, "wb") as out:
            rc, err, _ = env.cocoon("checkpoint", "--print-stats", "--leave-running", "--image-path",
                                    os.path.join(env.tmp, "out"), "c1", stdout=out)
        assert rc == 0, err
        with open(out_path, "rb") as f:
            text = f.read()
        assert b'"route":"tmpfs' in text, text
        for bad in (b"\x1b", b"\x07", b"\x7f", b"\xc2\x9b", b"\x9b"):
            assert bad not in text + err, f"{bad!r} reached the terminal: {text!r}"


@case
def event_in_the_same_read_as_a_reply_is_not_held_back():
    with Env("event-same-read") as env:
        out = open(os.path.join(env.tmp, "stdout.txt"), "wb")
        rc, err, _ = env.cocoon("create", "--bundle", env.bundle, "c1", stdout=out)
        assert rc == 0, err
        rc, err, _ = env.cocoon("start", "c1")
        assert rc == 0, err
        deadline = time.time() + 3
        while time.time() < deadline:
            with open(os.path.join(env.tmp, "stdout.txt"), "rb") as f:
                if b"first line" in f.read():
                    return
            time.sleep(0.05)
        raise AssertionError("the container's first line did not appear within 3 s")


@case
def qemu_inherits_no_leaked_descriptor():
    with Env("good") as env:
        r, w = os.pipe()  # not close-on-exec once passed: a leak from our caller
        env.create(pass_fds=(r, w))
        leaked = [line for line in env.log_text().splitlines() if line.startswith("inherited fd")]
        assert not leaked, f"the VMM inherited: {leaked}"
        os.close(r)
        os.close(w)


def largest_while_flooding(path, size_of, seconds=12):
    """The largest size_of(path) seen while the guest floods it for
    `seconds`, polled every 50 ms (the file may not exist yet)."""
    biggest = 0
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            biggest = max(biggest, size_of(path))
        except OSError:
            pass
        time.sleep(0.05)
    return biggest


@case
def console_log_is_capped():
    with Env("console-flood", limits="console_log_max_bytes = 1048576") as env:
        env.create()
        console = os.path.join(env.root, "c1", "console.log")
        biggest = largest_while_flooding(console, os.path.getsize)
        size = os.path.getsize(console)
        assert size <= 1048576, f"console.log is {size} bytes after the flood, cap 1 MiB"
        assert os.path.getsize(console + ".1") <= 524288
        return f"largest seen {biggest} bytes (cap 1048576, checked every 100 ms)"


@case
def vmm_log_is_capped():
    """QEMU prints an error for each bad control message a guest that owns
    its kernel sends (virtio-serial's "Unexpected port id"); its stderr,
    qemu.log in the state directory (tmpfs under the engines), grew without
    a bound. It is capped like the console log."""
    with Env("vmm-log-flood", limits="console_log_max_bytes = 1048576") as env:
        env.create()
        log = os.path.join(env.root, "c1", "qemu.log")
        biggest = largest_while_flooding(log, lambda p: os.stat(p).st_blocks * 512)
        used = os.stat(log).st_blocks * 512
        assert used <= 2 * 1048576, f"qemu.log stores {used} bytes after the flood, cap 1 MiB"
        assert biggest <= 4 * 1048576, f"qemu.log stored {biggest} bytes at its largest, cap 1 MiB"
        return f"largest seen {biggest} bytes (cap 1048576, checked every 100 ms)"


def xattr_bytes(path):
    """What the extended attributes of PATH (not followed) hold: names and
    values."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
        return sum(len(n) + 1 + len(os.getxattr(path, n, follow_symlinks=False)) for n in names)
    except OSError:
        return 0


class TmpfsRoot:
    """The state root on a tmpfs of its own, as under the engines (/run):
    what the guest stores there is host memory."""

    def __init__(self, env):
        self.root = env.root
        os.makedirs(self.root)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m,mode=0700", "tmpfs", self.root],
                       check=True)

    def umount(self):
        subprocess.run(["umount", "-l", self.root], check=False)


def shared_fill_is_stopped(mode, tmpfs=False):
    """The guard stops a VM whose guest fills its shared directory past
    limits.shared_max_bytes. Its bound is counted from the moment the guest
    has stored twice the cap (it notes "filled"), not from its start: how
    fast the guest fills is the guest's pace, which load slows (2048 empty
    files took longer than the whole 10 s wait at a load of 16)."""
    with Env(mode, limits="shared_max_bytes = 8388608") as env:
        mounted = TmpfsRoot(env) if tmpfs else None
        try:
            return shared_fill_check(env, mode)
        finally:
            if mounted:
                env.close()
                mounted.umount()


def shared_fill_check(env, mode):
    env.create()
    vmm = env.vmm_pids()
    assert vmm, "no VM started"
    deadline = time.time() + 120
    while alive(vmm[0]) and "filled " not in env.log_text() and time.time() < deadline:
        time.sleep(0.05)
    assert not alive(vmm[0]) or "filled " in env.log_text(), \
        "the guest did not fill its shared directory within 120 s (this host is too slow)"
    deadline = time.time() + 10
    while alive(vmm[0]) and time.time() < deadline:
        time.sleep(0.05)
    assert not alive(vmm[0]), "the VM still runs 10 s after it filled its shared directory twice over"
    # What the guest stored, seen from the host (the path it noted is
    # its own view: QEMU's share is /proc/self/fd/N).
    stored = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(env.root, "c1", "shared"))
              for f in fs]
    xattrs = sum(xattr_bytes(p) for p in stored)
    size, files = sum(os.lstat(p).st_size for p in stored) + xattrs, len(stored)
    # Stopped for passing the cap, not for something else (the deep
    # mode is stopped by its depth, whatever it stored): what the guard
    # counts, blocks or an inode's 4 KiB each, is past the cap.
    counted = sum(max(os.lstat(p).st_blocks * 512, 4096) for p in stored) + xattrs
    # (An unlinked file held open is no entry: its size is what the
    # guest noted.)
    assert mode in ("fill-shared-deep", "fill-shared-unlinked") or counted > 8 << 20, \
        f"the guest stored {counted} bytes (as the guard counts) in {files} files, within the cap: nothing to stop"
    assert size < 32 << 20, f"the guest stored {size} bytes before it was stopped (cap 8 MiB)"
    deadline = time.time() + 10
    status = None
    while time.time() < deadline:
        out = open(os.path.join(env.tmp, "state.json"), "wb")
        rc, _, _ = env.cocoon("state", "c1", stdout=out)
        with open(os.path.join(env.tmp, "state.json")) as f:
            status = json.load(f)["status"] if rc == 0 else None
        if status == "stopped":
            break
        time.sleep(0.1)
    assert status == "stopped", f"the container is {status!r}"
    return f"stopped at {size} bytes, {files} files (cap 8388608, checked every 500 ms)"


@case
def shared_directory_is_capped_while_the_guest_writes():
    return shared_fill_is_stopped("fill-shared")


@case
def shared_directory_cap_holds_below_the_walk_depth():
    """The same flood 20 directories down: the guard walked 16 levels and
    counted nothing below (the guest filled the host's tmpfs unseen)."""
    return shared_fill_is_stopped("fill-shared-deep")


@case
def shared_directory_cap_counts_empty_files():
    """Empty files store no block but cost tmpfs an inode each: the guard
    counted 0 bytes for any number of them."""
    return shared_fill_is_stopped("fill-shared-inodes")


@case
def shared_directory_cap_counts_extended_attributes():
    """9p's passthrough model sets the guest's user.* extended attributes
    on the host's files, and tmpfs (the state root under the engines)
    keeps them in kernel memory, up to its inode space (about 1 KiB per
    inode it may hold: gigabytes), while the file stores no block: the
    guard counted 4 KiB for an empty file holding 64 MiB of them."""
    if os.geteuid() != 0:
        return "skip: needs root to mount a tmpfs state root, where extended attributes take host memory"
    return shared_fill_is_stopped("fill-shared-xattr", tmpfs=True)


@case
def shared_directory_cap_counts_files_removed_but_held_open():
    """A file of the shared directory that the guest opened and then
    removed is no entry of it, but QEMU's 9p server keeps the guest's
    handle, so the inode stays on the state root's filesystem (host
    memory on tmpfs) while the guest writes into it: the guard walked the
    directory only, and the guest stored 64 MiB against a cap of 8."""
    return shared_fill_is_stopped("fill-shared-unlinked")
