#!/usr/bin/python3
"""The hostile-guest tier: the real cocoon binary against a guest that owns
its agent (tests/helpers/hostile-vmm.c, run as vm.qemu). Each case plants an
attack, runs a cocoon command, and checks that the canary outside the state
root is untouched, that nothing hangs past a bound, and that the error is
clear. Prints TAP.

    test_hostile.py COCOON HOSTILE_VMM [CASE...]
"""
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time

COCOON, VMM = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
ONLY = sys.argv[3:]
SECRET = b"the host's secret\n"
results = []


def vmsnap_fakes(d):
    """[vm] lines for a host that passes the whole-VM capability check
    (vmsnap_require), which a restore makes before it reads the state: a
    QEMU that says 9.2.0 and offers mapped-ram, a virtiofsd with
    --migration-mode; run as anything else, the QEMU is the hostile VMM."""
    os.makedirs(d)
    qemu, vfsd = os.path.join(d, "qemu"), os.path.join(d, "virtiofsd")
    with open(qemu, "w") as f:
        f.write(f"""#!/bin/sh
case "$1" in --version) echo "QEMU emulator version 9.2.0"; exit 0;; esac
case " $* " in *" -M none "*) echo '{{"return": [{{"capability": "mapped-ram", "state": false}}]}}'; exit 0;; esac
exec {VMM} "$@"
""")
    with open(vfsd, "w") as f:
        f.write('#!/bin/sh\ncase "$1" in --version) echo "virtiofsd backend 1.13.2";; '
                '*) echo "  --migration-mode <MIGRATION_MODE>";; esac\n')
    for p in (qemu, vfsd):
        os.chmod(p, 0o755)
    return f'snapshot_qemu = "{qemu}"\nsnapshot_virtiofsd = "{vfsd}"\n'


class Env:
    def __init__(self, mode, limits="", vm="", whole_vm=False):
        self.mode = mode
        self.tmp = tempfile.mkdtemp(prefix="cocoon-hostile-")
        if whole_vm:
            vm += "\n" + vmsnap_fakes(os.path.join(self.tmp, "vmsnap-bin"))
        self.root = os.path.join(self.tmp, "root")
        self.canary = os.path.join(self.tmp, "canary", "victim")
        os.makedirs(self.canary)
        self.secret = os.path.join(self.canary, "secret")
        with open(self.secret, "wb") as f:
            f.write(SECRET)
        os.chmod(self.secret, 0o644)
        self.log = os.path.join(self.tmp, "vmm.log")
        self.config = os.path.join(self.tmp, "config.toml")
        with open(self.config, "w") as f:
            f.write(f"""[runtime]
host_checkpoint_dir = "{self.tmp}/ckpts"
[vm]
kernel = "/dev/null"
initrd = "/dev/null"
qemu = "{VMM}"
accel = "tcg"
boot_timeout_ms = 10000
{vm}
{"[limits]" if limits else ""}
{limits}
""")
        self.bundle = os.path.join(self.tmp, "bundle")
        os.makedirs(os.path.join(self.bundle, "rootfs"))
        with open(os.path.join(self.bundle, "config.json"), "w") as f:
            json.dump({"ociVersion": "1.0.2", "root": {"path": "rootfs"},
                       "process": {"terminal": False, "args": ["sh"], "cwd": "/",
                                   "env": ["PATH=/bin"]},
                       "linux": {"namespaces": [{"type": "network"}, {"type": "pid"}, {"type": "mount"}]}}, f)

    def env(self, mode=None):
        e = dict(os.environ)
        e.update(COCOON_CONFIG=self.config, HOSTILE_MODE=mode or self.mode,
                 HOSTILE_CANARY=self.canary, HOSTILE_LOG=self.log)
        return e

    def cocoon(self, *args, timeout=30, mode=None, stdout=None, pass_fds=()):
        """Runs cocoon; stdio goes to files, since a shim keeps what it inherits."""
        out = stdout or open(os.path.join(self.tmp, "out.txt"), "wb")
        err_path = os.path.join(self.tmp, "err.txt")
        with open(err_path, "wb") as err:
            t0 = time.time()
            try:
                p = subprocess.run([COCOON, "--root", self.root, *args], stdout=out, stderr=err,
                                   env=self.env(mode), timeout=timeout, pass_fds=pass_fds)
                rc = p.returncode
            except subprocess.TimeoutExpired:
                rc = None
        with open(err_path, "rb") as f:
            return rc, f.read(), time.time() - t0

    def create(self, cid="c1", **kw):
        rc, err, _ = self.cocoon("create", "--bundle", self.bundle, cid, **kw)
        if rc != 0:
            raise RuntimeError(f"create failed: {err!r}")
        rc, err, _ = self.cocoon("start", cid)
        if rc != 0:
            raise RuntimeError(f"start failed: {err!r}")

    def vmm_pids(self):
        try:
            with open(self.log) as f:
                return [int(line.split()[2]) for line in f if line.startswith("vmm pid ")]
        except FileNotFoundError:
            return []

    def log_text(self):
        try:
            with open(self.log) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def canary_intact(self):
        try:
            st = os.stat(self.secret)
            with open(self.secret, "rb") as f:
                return f.read() == SECRET and stat.S_IMODE(st.st_mode) == 0o644 and st.st_uid == os.geteuid()
        except OSError:
            return False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for cid in os.listdir(self.root) if os.path.isdir(self.root) else []:
            self.cocoon("delete", "--force", cid, timeout=20)
        for pid in self.vmm_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def case(fn):
    name = fn.__name__
    if ONLY and name not in ONLY:
        return fn
    env = None
    try:
        env = fn.__defaults__[0] if fn.__defaults__ else None
        detail = fn()
        results.append((True, name, detail or ""))
    except AssertionError as e:
        results.append((False, name, str(e)))
    except Exception as e:  # noqa: BLE001 - any failure is a failed case
        results.append((False, name, f"{type(e).__name__}: {e}"))
    return fn


def refused_checkpoint(env, needle, *extra, bound=20):
    env.create()
    out = os.path.join(env.tmp, "out")
    rc, err, took = env.cocoon("checkpoint", "--image-path", out, *extra, "c1", timeout=60)
    assert rc is not None, f"checkpoint hung (> 60 s)"
    assert rc != 0, "a hostile dump was published"
    assert needle.encode() in err, f"error does not name '{needle}': {err!r}"
    assert took < bound, f"took {took:.1f} s, bound {bound} s"
    assert env.canary_intact(), "the canary outside the state root was touched"
    assert not os.path.exists(out), "something was left at --image-path"
    state_out = open(os.path.join(env.tmp, "state.json"), "wb")
    rc, serr, _ = env.cocoon("state", "c1", stdout=state_out)
    with open(os.path.join(env.tmp, "state.json")) as f:
        status = json.load(f)["status"] if rc == 0 else serr
    assert status == "running", f"the container is {status!r} after the refusal"
    return err.decode(errors="replace").strip()


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
        for dirpath, _, files in os.walk(env.tmp):
            for n in files:
                p = os.path.join(dirpath, n)
                if p != env.secret and not os.path.islink(p) and os.path.isfile(p):
                    with open(p, "rb") as f:
                        assert SECRET not in f.read(), f"the canary was copied to {p}"


@case
def dump_log_fifo_does_not_hang():
    with Env("dump-log-fifo") as env:
        return refused_checkpoint(env, "boom", "--leave-running", "--work-path", os.path.join(env.tmp, "w"))


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


def shared_fill_is_stopped(mode):
    with Env(mode, limits="shared_max_bytes = 8388608") as env:
        env.create()
        vmm = env.vmm_pids()
        deadline = time.time() + 10
        while vmm and alive(vmm[0]) and time.time() < deadline:
            time.sleep(0.05)
        assert vmm and not alive(vmm[0]), "the VM still runs after filling its shared directory"
        junk = [line.split(" ", 1)[1] for line in env.log_text().splitlines() if line.startswith("junk ")]
        size = os.path.getsize(junk[0]) if junk and os.path.exists(junk[0]) else 0
        assert size < 32 << 20, f"the guest stored {size} bytes before it was stopped (cap 8 MiB)"
        files = sum(len(f) for _, _, f in os.walk(os.path.join(env.root, "c1", "shared")))
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


def good_images(env):
    env.create("src")
    out = os.path.join(env.tmp, "good")
    rc, err, _ = env.cocoon("checkpoint", "--image-path", out, "--leave-running", "src", mode="good")
    assert rc == 0, err
    return out


@case
def restore_that_hangs_is_killed_by_delete_force():
    with Env("good") as env:
        images = good_images(env)
        before = set(env.vmm_pids())
        with open(os.path.join(env.tmp, "restore.err"), "wb") as err:
            p = subprocess.Popen([COCOON, "--root", env.root, "restore", "--image-path", images, "--bundle",
                                  env.bundle, "-d", "r1"], stdout=err, stderr=err, env=env.env("restore-hang"))
        deadline = time.time() + 15
        while "restore: hanging" not in env.log_text() and time.time() < deadline:
            time.sleep(0.05)
        if "restore: hanging" not in env.log_text():
            with open(os.path.join(env.tmp, "restore.err"), "rb") as f:
                raise AssertionError(f"the restore never reached the guest: {f.read()!r}")
        vmm = [pid for pid in env.vmm_pids() if pid not in before]
        rc, err, took = env.cocoon("delete", "--force", "r1", timeout=20)
        assert rc == 0, err
        assert took < 10, f"delete --force took {took:.1f} s"
        time.sleep(0.5)
        assert vmm and not any(alive(pid) for pid in vmm), f"the VMM {vmm} still runs"
        assert p.wait(timeout=10) != 0, "the restore reported success"
        assert not os.path.exists(os.path.join(env.root, "r1")), "the state directory is left"


@case
def restore_logs_planted_by_the_guest_are_not_followed():
    """CRIU's restore log and stats, which the shim copies from the shared
    directory to --work-path: a symlink to the canary's secret is not
    copied, a FIFO does not hang the restore."""
    with Env("good") as env:
        images = good_images(env)
        work = os.path.join(env.tmp, "work")
        rc, err, took = env.cocoon("restore", "--image-path", images, "--bundle", env.bundle, "--work-path", work,
                                   "-d", "r8", mode="restore-logs", timeout=60)
        assert "restore: logs planted for r8" in env.log_text(), "the restore never reached the guest"
        assert rc not in (0, None), f"rc {rc} {err!r}"
        assert took < 20, f"took {took:.1f} s"
        for dirpath, _, files in os.walk(env.tmp):
            for n in files:
                p = os.path.join(dirpath, n)
                if p != env.secret and not os.path.islink(p) and os.path.isfile(p):
                    with open(p, "rb") as f:
                        assert SECRET not in f.read(), f"the canary was copied to {p}"
        assert env.canary_intact(), "the canary was touched"


@case
def hostile_restore_directories_start_no_vm():
    with Env("good") as env:
        images = good_images(env)
        started = len(env.vmm_pids())
        meta = os.path.join(images, "cocoon.json")
        with open(meta) as f:
            good = json.load(f)
        bad = []
        for field, value in (("version", None), ("format", "1"), ("files", []), ("files", {"x.img": None})):
            doc = dict(good)
            doc[field] = value
            bad.append((f"{field}={json.dumps(value)}", json.dumps(doc).encode()))
        bad.append(("not json", b"\x00\xff{"))
        for what, text in bad:
            os.unlink(meta)
            with open(meta, "wb") as f:
                f.write(text)
            rc, err, took = env.cocoon("restore", "--image-path", images, "--bundle", env.bundle, "-d", "r2")
            assert rc not in (0, None), f"{what}: rc {rc}"
            assert took < 10 and b"cocoon.json" in err, f"{what}: {err!r}"
        os.unlink(meta)
        os.mkfifo(meta)
        rc, err, took = env.cocoon("restore", "--image-path", images, "--bundle", env.bundle, "-d", "r2")
        assert rc not in (0, None) and b"FIFO" in err, f"FIFO: rc {rc} {err!r}"
        assert len(env.vmm_pids()) == started, "a VM was started for a hostile restore directory"


@case
def pagemaps_do_not_stall_a_restore_past_its_deadline():
    """A restore directory of many 64 MiB pagemaps (sparse: they cost the
    attacker nothing), each listed in cocoon.json with its size: their
    page counts were read and parsed before the verify deadline was first
    looked at, so the restore stalled for as long as the attacker liked
    (here 48 of them). They are read within limits.verify_timeout_ms."""
    with Env("good", limits="verify_timeout_ms = 100") as env:
        images = good_images(env)
        started = len(env.vmm_pids())
        meta = os.path.join(images, "cocoon.json")
        with open(meta) as f:
            doc = json.load(f)
        for i in range(100, 148):
            name = f"pagemap-{i}.img"
            with open(os.path.join(images, name), "wb") as f:
                f.truncate(64 << 20)
            doc["files"][name] = {"size": 64 << 20, "xxh3": "0000000000000000"}
        os.unlink(meta)
        with open(meta, "w") as f:
            json.dump(doc, f)
        rc, err, took = env.cocoon("restore", "--image-path", images, "--bundle", env.bundle, "-d", "r9",
                                   timeout=120)
        assert rc not in (0, None), f"rc {rc} {err!r}"
        assert b"limits.verify_timeout_ms" in err and b"pagemap-" in err, err
        assert took < 5, f"took {took:.1f} s past a 100 ms verify deadline"
        assert len(env.vmm_pids()) == started, "a VM was started for a hostile restore directory"
        assert not os.path.exists(os.path.join(env.root, "r9")), "a state directory is left"
        return f"{took:.2f} s: " + err.decode(errors="replace").strip()


def df_used(path):
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def zstd_rle_bomb(path, size, said, byte):
    """A zstd frame as a hostile checkpoint carries it: RLE blocks of
    128 KiB of one byte, 4 bytes each, so a few KiB say gigabytes. A 1 MiB
    window, no checksum; the content size in the header when said."""
    head = b"\x28\xb5\x2f\xfd" + (b"\xc0\x50" + said.to_bytes(8, "little") if said else b"\x00\x50")
    with open(path, "wb") as f:
        f.write(head)
        left, chunk = size, bytearray()
        while left:
            n = min(left, 128 << 10)
            left -= n
            chunk += ((0 if left else 1) | (1 << 1) | (n << 3)).to_bytes(3, "little") + bytes([byte])
            if len(chunk) >= 1 << 20 or not left:
                f.write(chunk)
                chunk = bytearray()


@case
def whole_vm_state_bombs_stop_at_the_vms_memory_and_leave_nothing():
    """A whole-VM checkpoint from elsewhere: vm.state.zst was decompressed
    into the state root (tmpfs under the engines) up to
    checkpoint_max_bytes (64 GiB), with no deadline. Now the bound is the
    memory of the VM the bundle gets here (which vm.json's key must claim
    too) and its device state, the frame's stated size must be vm.json's,
    the decompression has verify_timeout_ms, and the file is unnamed
    beside the image directory: each bomb fails fast, naming the file and
    the limit, no VM, nothing left anywhere."""
    cases = (
        # (what, VM memory in the key and the host's, vm.json's raw_size, frame: blocks' bytes (the
        # rest of a bomb refused by its header need not be there), stated size, byte; needle)
        ("1 TiB for a 128 MiB VM", 128, 1 << 40, (1 << 30, 1 << 40, 0x41), b"the VM's 128 MiB of memory"),
        ("8 GiB for a 128 MiB VM", 128, 8 << 30, (1 << 30, 8 << 30, 0x41), b"the VM's 128 MiB of memory"),
        ("the frame says more than vm.json", 128, 64 << 20, (1 << 30, 1 << 40, 0x41), b"its zstd frame says"),
        # 60000 MiB of zeros (holes: no disk, all CPU, about 5 s here): past a
        # 100 ms verify_timeout_ms.
        ("zeros past the deadline", 60000, 60000 << 20, (60000 << 20, 60000 << 20, 0),
         b"limits.verify_timeout_ms"),
    )
    details = []
    for what, mib, raw, (size, said, byte), needle in cases:
        with Env("good", limits="verify_timeout_ms = 100", vm=f"max_memory_mib = 61440\nmemory_mib = {mib}",
                 whole_vm=True) as env:
            parent = os.path.join(env.tmp, "images")
            ck = os.path.join(parent, "ck")
            os.makedirs(ck)
            zst = os.path.join(ck, "vm.state.zst")
            zstd_rle_bomb(zst, size, said, byte)
            key = (f"cocoon-vm-snapshot 1\nqemu-command-line=QEMU -M microvm -m {mib} -smp 1\n"
                   "qemu=9.2.0 mapped-ram=yes\n")
            with open(os.path.join(ck, "vm.json"), "w") as f:
                json.dump({"format": "cocoon-vm-snapshot 1", "container_id": "v1", "key": key,
                           "state": "vm.state.zst", "raw_size": raw, "state_bytes": os.path.getsize(zst)}, f)
            before = df_used(parent)
            rc, err, took = env.cocoon("restore", "--image-path", ck, "--bundle", env.bundle, "-d", "v1", timeout=120)
            assert rc not in (0, None), f"{what}: rc {rc} {err!r}"
            assert b"vm.state.zst" in err and needle in err, f"{what}: rc {rc} after {took:.2f} s: {err!r}"
            assert took < 10, f"{what}: took {took:.1f} s"
            assert sorted(os.listdir(parent)) == ["ck"], f"{what}: left beside: {os.listdir(parent)}"
            assert sorted(os.listdir(ck)) == ["vm.json", "vm.state.zst"], f"{what}: left: {os.listdir(ck)}"
            left = os.listdir(env.root) if os.path.isdir(env.root) else []
            assert left == [], f"{what}: left in the state root: {left}"
            assert df_used(parent) - before < 256 << 20, f"{what}: the disk holds what was decompressed"
            assert env.vmm_pids() == [], f"{what}: a VM was started for a hostile whole-VM checkpoint"
            assert env.canary_intact(), "the canary was touched"
            details.append(f"{what}: {took:.2f} s")
    # vm.state itself, a sparse 1 TiB for a 128 MiB VM (its checksum
    # need not even match): refused by its size before it is read.
    with Env("good", vm="memory_mib = 128", whole_vm=True) as env:
        ck = os.path.join(env.tmp, "images", "ck")
        os.makedirs(ck)
        with open(os.path.join(ck, "vm.state"), "wb") as f:
            f.truncate(1 << 40)
        with open(os.path.join(ck, "vm.json"), "w") as f:
            json.dump({"format": "cocoon-vm-snapshot 1", "container_id": "v1",
                       "key": "cocoon-vm-snapshot 1\nqemu-command-line=QEMU -M microvm -m 128 -smp 1\n",
                       "state": "vm.state", "state_size": 1 << 40, "xxh3": "0123456789abcdef",
                       "state_bytes": 0}, f)
        rc, err, took = env.cocoon("restore", "--image-path", ck, "--bundle", env.bundle, "-d", "v1", timeout=120)
        assert rc not in (0, None) and b"vm.state is 1099511627776 bytes" in err and \
            b"the VM's 128 MiB of memory" in err, f"sparse vm.state: {err!r}"
        assert took < 10, f"sparse vm.state: took {took:.1f} s"
        assert env.vmm_pids() == [], "a VM was started for a hostile whole-VM checkpoint"
    return "; ".join(details) + "\n" + err.decode(errors="replace").strip()


@case
def a_whole_vm_checkpoints_key_does_not_choose_its_bound():
    """rev11b F4: vm.state.zst was bounded by the memory vm.json's key
    claims, and decompressed before the shim compared that key with the
    host's own: a key claiming 2048 MiB (or the host's max_memory_mib) for
    a bundle whose VM has 512 MiB got 1.5 GiB decompressed (on disk beside
    the image directory; in the state root, tmpfs, when that is read-only)
    before the refusal. So did a host that cannot start whole-VM
    checkpoints at all. Now both are refused before a byte is read, naming
    the two sizes, or what the host lacks."""
    details = []
    for what, whole_vm, needle in (
            ("a key of 2048 MiB for a VM of 512", True,
             b"vm.json's key says the saved VM has 2048 MiB of memory, and the VM this bundle gets here has 512 MiB"),
            ("a host without whole-VM support", False, b"whole-VM checkpoints (checkpoint_mode \"vm\") need a QEMU")):
        with Env("good", whole_vm=whole_vm) as env:
            parent = os.path.join(env.tmp, "images")
            ck = os.path.join(parent, "ck")
            os.makedirs(ck)
            zst = os.path.join(ck, "vm.state.zst")
            raw = 1536 << 20
            zstd_rle_bomb(zst, raw, raw, 0x41)
            key = ("cocoon-vm-snapshot 1\nqemu-command-line=QEMU -M microvm -m 2048 -smp 1\n"
                   "qemu=9.2.0 mapped-ram=yes\n")
            with open(os.path.join(ck, "vm.json"), "w") as f:
                json.dump({"format": "cocoon-vm-snapshot 1", "container_id": "v1", "key": key,
                           "state": "vm.state.zst", "raw_size": raw, "state_bytes": os.path.getsize(zst)}, f)
            before = df_used(parent)
            peak = [0]
            done = threading.Event()

            def watch():
                while not done.is_set():
                    peak[0] = max(peak[0], df_used(parent) - before)
                    time.sleep(0.02)
            t = threading.Thread(target=watch, daemon=True)
            t.start()
            rc, err, took = env.cocoon("restore", "--image-path", ck, "--bundle", env.bundle, "-d", "v1",
                                       timeout=120)
            done.set()
            t.join()
            assert rc not in (0, None), f"{what}: rc {rc} {err!r}"
            assert peak[0] < 64 << 20, (f"{what}: {peak[0] >> 20} MiB decompressed for a bundle whose VM has "
                                        f"512 MiB before the refusal ({took:.1f} s): {err!r}")
            assert needle in err, f"{what}: rc {rc} after {took:.2f} s: {err!r}"
            assert took < 5, f"{what}: took {took:.1f} s"
            # (Without the fakes the capability probe runs the hostile VMM
            # with --version: no VM, but it logs its pid.)
            assert not whole_vm or env.vmm_pids() == [], f"{what}: a VM was started"
            left = os.listdir(env.root) if os.path.isdir(env.root) else []
            assert left == [], f"{what}: left in the state root: {left}"
            assert sorted(os.listdir(parent)) == ["ck"], f"{what}: left beside: {os.listdir(parent)}"
            details.append(f"{what}: {took:.2f} s, {peak[0] >> 20} MiB written")
    return "; ".join(details)


@case
def a_restore_killed_while_it_decompresses_leaves_nothing():
    """The decompressed VM state has no name (O_TMPFILE, or unlinked at
    once): a restore killed halfway, as an engine's timeout would, leaves
    no file beside the image directory or in the state root (it used to
    leave .ID.vm.state.XXXXXX in the state root, tmpfs under the engines)."""
    with Env("good", vm="max_memory_mib = 61440\nmemory_mib = 60000", whole_vm=True) as env:
        parent = os.path.join(env.tmp, "images")
        ck = os.path.join(parent, "ck")
        os.makedirs(ck)
        zst = os.path.join(ck, "vm.state.zst")
        zstd_rle_bomb(zst, 60000 << 20, 60000 << 20, 0)
        key = "cocoon-vm-snapshot 1\nqemu-command-line=QEMU -M microvm -m 60000 -smp 1\n"
        with open(os.path.join(ck, "vm.json"), "w") as f:
            json.dump({"format": "cocoon-vm-snapshot 1", "container_id": "v1", "key": key,
                       "state": "vm.state.zst", "raw_size": 60000 << 20, "state_bytes": os.path.getsize(zst)}, f)
        with open(os.path.join(env.tmp, "restore.err"), "wb") as err:
            p = subprocess.Popen([COCOON, "--root", env.root, "restore", "--image-path", ck, "--bundle", env.bundle,
                                  "-d", "v1"], stdout=err, stderr=err, env=env.env())
        # Until it has an output file open (its fds name it), then kill it.
        seen, deadline = None, time.time() + 10
        while seen is None and time.time() < deadline and p.poll() is None:
            try:
                for fd in os.listdir(f"/proc/{p.pid}/fd"):
                    target = os.readlink(f"/proc/{p.pid}/fd/{fd}")
                    beside = target.startswith(parent + "/") and not target.startswith(ck + "/") and target != ck
                    if beside or (target.startswith(env.root + "/") and "vm.state" in target):
                        seen = target
            except OSError:
                pass
            time.sleep(0.01)
        p.kill()
        p.wait()
        assert seen, "the restore was not caught decompressing"
        assert sorted(os.listdir(parent)) == ["ck"], f"left beside: {os.listdir(parent)}"
        left = os.listdir(env.root) if os.path.isdir(env.root) else []
        assert left == [], f"left in the state root: {left}"
        return f"killed while writing {seen}"


@case
def a_read_only_checkpoint_is_decompressed_in_the_state_root_and_leaves_nothing():
    """With nothing writable beside the image directory (here a read-only
    bind, in a mount namespace of the test's own), vm.state.zst goes to the
    state root instead, with a warning naming why, still unnamed: the
    restore goes on to start the VM and nothing is left behind."""
    if os.geteuid() != 0 or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        return "skip: needs root and unshare -m for a read-only bind in a mount namespace of its own"
    with Env("good", vm="memory_mib = 128", whole_vm=True) as env:
        parent = os.path.join(env.tmp, "images")
        ck = os.path.join(parent, "ck")
        os.makedirs(ck)
        zst = os.path.join(ck, "vm.state.zst")
        zstd_rle_bomb(zst, 64 << 20, 64 << 20, 0)
        key = "cocoon-vm-snapshot 1\nqemu-command-line=QEMU -M microvm -m 128 -smp 1\n"
        with open(os.path.join(ck, "vm.json"), "w") as f:
            json.dump({"format": "cocoon-vm-snapshot 1", "container_id": "v1", "key": key,
                       "state": "vm.state.zst", "raw_size": 64 << 20, "state_bytes": os.path.getsize(zst)}, f)
        os.makedirs(env.root)
        script = (f"mount --bind {parent} {parent} && mount -o remount,bind,ro {parent} && "
                  f"exec {COCOON} --root {env.root} restore --image-path {ck} --bundle {env.bundle} -d v1")
        p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                           capture_output=True, env=env.env(), timeout=60)
        assert p.returncode != 0, p.stderr
        assert b"is not writable" in p.stderr and b"decompressing into the state root" in p.stderr, p.stderr
        # It got as far as starting the VM: the shim refuses its hand-made key.
        assert b"boot VM" in p.stderr or b"QEMU" in p.stderr, p.stderr
        assert os.listdir(env.root) == [], f"left in the state root: {os.listdir(env.root)}"
        assert sorted(os.listdir(parent)) == ["ck"], f"left beside: {os.listdir(parent)}"
        return p.stderr.decode(errors="replace").strip().splitlines()[0]


@case
def a_checkpoint_from_elsewhere_does_not_raise_the_bundles_limits():
    """cocoon.json's "resources" (the limits update set) were laid over the
    bundle's at restore as they were: a checkpoint from another host raised
    its container's limits, and its VM, up to the host's maxima. Now only
    this host's own checkpoint (its note in host_checkpoint_dir) raises
    them; any other, or one whose limits were edited, only lowers, and what
    it could not raise is not kept for the next checkpoint either."""
    with Env("good") as env:
        with open(os.path.join(env.bundle, "config.json")) as f:
            spec = json.load(f)
        spec["linux"]["resources"] = {"memory": {"limit": 64 << 20}, "pids": {"limit": 10}}
        with open(os.path.join(env.bundle, "config.json"), "w") as f:
            json.dump(spec, f)
        env.create("src")
        rc, err, _ = env.cocoon("update", "--memory", "100m", "--pids-limit", "-1", "src")
        assert rc == 0, f"update: {err!r}"
        ck = os.path.join(env.tmp, "ck")
        rc, err, _ = env.cocoon("checkpoint", "--image-path", ck, "--leave-running", "src")
        assert rc == 0, f"checkpoint: {err!r}"
        with open(os.path.join(ck, "cocoon.json")) as f:
            assert json.load(f)["resources"] == {"memory": {"limit": 100 << 20}, "pids": {"limit": -1}}

        def restore(images, cid):
            mark = len(env.log_text())
            rc, err, _ = env.cocoon("restore", "--image-path", images, "--bundle", env.bundle, "-d", cid,
                                    mode="restore-ok")
            assert rc == 0, f"restore {cid}: {err!r}"
            log = env.log_text()[mark:]
            mem = [x.split()[2] for x in log.splitlines() if x.startswith("vmm memory ")]
            lim = [x.split(" ", 2)[2] for x in log.splitlines() if x.startswith("restore limits ")]
            kept = os.path.join(env.root, cid, "resources.json")
            with open(kept) as f:
                return mem, lim, json.load(f), err

        # This host's own: taken (100 + 128 + 100 MiB of VM).
        mem, lim, kept, err = restore(ck, "r1")
        assert mem == ["328"] and lim == [f"{100 << 20} 0"], (mem, lim, err)
        assert kept == {"memory": {"limit": 100 << 20}, "pids": {"limit": -1}}, kept
        # The same directory moved (another host's, as far as this one
        # knows): the bundle's 64 MiB and 10 pids hold.
        moved = os.path.join(env.tmp, "moved")
        shutil.copytree(ck, moved, symlinks=True)
        mem, lim, kept, err = restore(moved, "r2")
        assert mem == ["256"] and lim == [f"{64 << 20} 10"], (mem, lim, err)
        assert b"memory.limit, pids.limit" in err and b"not taken" in err, err
        assert kept == {}, f"the raise is kept for the next checkpoint: {kept}"
        # Checkpointed again on this host: the raise is not laundered.
        ck2 = os.path.join(env.tmp, "ck2")
        rc, err, _ = env.cocoon("checkpoint", "--image-path", ck2, "--leave-running", "r2")
        assert rc == 0, f"checkpoint r2: {err!r}"
        mem, lim, kept, err = restore(ck2, "r3")
        assert mem == ["256"] and lim == [f"{64 << 20} 10"], (mem, lim, err)
        # This host's directory with its limits edited: only lowers.
        meta = os.path.join(ck, "cocoon.json")
        with open(meta) as f:
            doc = json.load(f)
        doc["resources"] = {"memory": {"limit": 2 << 30}, "pids": {"limit": 5}}
        os.unlink(meta)
        with open(meta, "w") as f:
            json.dump(doc, f)
        mem, lim, kept, err = restore(ck, "r4")
        assert mem == ["256"] and lim == [f"{64 << 20} 5"], (mem, lim, err)
        assert kept == {"pids": {"limit": 5}}, kept
        assert env.canary_intact(), "the canary was touched"
        return err.decode(errors="replace").strip()


@case
def a_checkpoint_from_elsewhere_does_not_grow_the_vm_of_a_bundle_without_limits():
    """rev11b F1: a bundle without limits (podman run with no -m/--cpus)
    gets vm.memory_mib and vm.vcpus. A checkpoint from elsewhere whose
    cocoon.json carries a 12 GiB memory limit and a quota of 8 CPUs "lowers"
    its cgroup (a limit where there was none), but the VM is sized from the
    limits: it grew to the host's maxima. It must get no more than the
    bundle alone gives; a limit that fits in that VM is still taken."""
    with Env("good", vm="max_memory_mib = 32768\nmax_vcpus = 8") as env:
        env.create("src")
        ck = os.path.join(env.tmp, "ck")
        rc, err, _ = env.cocoon("checkpoint", "--image-path", ck, "--leave-running", "src")
        assert rc == 0, f"checkpoint: {err!r}"
        meta = os.path.join(ck, "cocoon.json")

        def restore(resources, cid):
            with open(meta) as f:
                doc = json.load(f)
            doc["resources"] = resources
            os.unlink(meta)
            with open(meta, "w") as f:
                json.dump(doc, f)
            mark = len(env.log_text())
            rc, err, _ = env.cocoon("restore", "--image-path", ck, "--bundle", env.bundle, "-d", cid,
                                    mode="restore-ok")
            assert rc == 0, f"restore {cid}: {err!r}"
            log = env.log_text()[mark:]
            mem = [x.split()[2] for x in log.splitlines() if x.startswith("vmm memory ")]
            smp = [x.split()[2] for x in log.splitlines() if x.startswith("vmm smp ")]
            with open(os.path.join(env.root, cid, "resources.json")) as f:
                return mem, smp, json.load(f), err

        mem, smp, kept, err = restore({"memory": {"limit": 12 << 30},
                                       "cpu": {"quota": 800000, "period": 100000}}, "r1")
        assert mem == ["512"] and smp == ["1"], (
            f"the bundle alone gives 512 MiB and 1 vCPU; the checkpoint's limits made {mem} MiB {smp}: {err!r}")
        assert kept == {}, f"kept for the next checkpoint: {kept}"
        assert b"memory.limit (it would size the VM past the bundle's 512 MiB)" in err, err
        assert b"cpu.quota/cpu.period (8 vCPUs, past the bundle's 1)" in err, err
        # One that fits in the VM the bundle gives: taken, and the VM sized
        # from it (100 + 128 + 100 MiB), smaller.
        mem, smp, kept, err = restore({"memory": {"limit": 100 << 20}}, "r2")
        assert mem == ["328"] and smp == ["1"], (mem, smp, err)
        assert kept == {"memory": {"limit": 100 << 20}}, kept
        assert env.canary_intact(), "the canary was touched"
        return f"VM {mem[0]} MiB, {smp[0]} vCPU"


@case
def restore_directories_reach_no_other_checkpoint():
    """A restore directory from another host names its pre-dump by CRIU's
    ../NAME link, and a pod's names each container's directory: a symlink
    there to another container's checkpoint on this host passed every check
    (that checkpoint is genuine) and was shared into the restored VM, its
    memory pages with it. Refused, naming the symlink, before any VM."""
    with Env("good") as env:
        images = good_images(env)
        victim = os.path.join(os.path.dirname(env.canary), "victim-ck")
        rc, err, _ = env.cocoon("checkpoint", "--image-path", victim, "--leave-running", "src")
        assert rc == 0, err
        started = len(env.vmm_pids())
        att = os.path.join(env.tmp, "att")
        os.makedirs(att)
        shutil.copytree(images, os.path.join(att, "ck"))
        os.symlink("../pre", os.path.join(att, "ck", "parent"))
        os.symlink(victim, os.path.join(att, "pre"))
        rc, err, took = env.cocoon("restore", "--image-path", os.path.join(att, "ck"), "--bundle", env.bundle,
                                   "-d", "r4")
        assert rc not in (0, None) and b"pre is a symlink" in err, f"pre-dump symlink: rc {rc} {err!r}"
        assert took < 10, f"took {took:.1f} s"
        pod = os.path.join(env.tmp, "podck")
        os.makedirs(pod)
        os.symlink(victim, os.path.join(pod, "r5"))
        with open(os.path.join(pod, "pod.json"), "w") as f:
            json.dump({"sandbox": "r5", "members": [], "bundles": {"r5": env.bundle}}, f)
        rc, err, took = env.cocoon("restore", "--pod", "--image-path", pod, "--bundle", env.bundle, "r5")
        assert rc not in (0, None) and b"r5 is a symlink" in err, f"pod directory symlink: rc {rc} {err!r}"
        assert len(env.vmm_pids()) == started, "a VM was started with another container's checkpoint"
        assert env.canary_intact(), "the canary was touched"


@case
def restore_directory_fifos_do_not_hang():
    """Every file a restore reads from its directory is looked at before it
    is opened: a FIFO named vm.json (read by every restore, to tell a
    whole-VM checkpoint), vm.state or pod.json hung `restore` for ever (an
    open for reading waits for a writer); a device there would have been
    opened, with whatever its driver does on open. A clear error, within
    seconds, no VM."""
    with Env("good") as env:
        images = good_images(env)
        started = len(env.vmm_pids())
        cases = []
        d = os.path.join(env.tmp, "r-vmjson")
        shutil.copytree(images, d)
        os.mkfifo(os.path.join(d, "vm.json"))
        cases.append(("vm.json", ["--image-path", d, "--bundle", env.bundle, "-d", "r6"], "vm.json is a FIFO"))
        d = os.path.join(env.tmp, "r-vmstate")
        os.makedirs(d)
        with open(os.path.join(d, "vm.json"), "w") as f:
            json.dump({"format": "cocoon-vm-snapshot 1", "container_id": "r6", "key": "k", "state": "vm.state"}, f)
        os.mkfifo(os.path.join(d, "vm.state"))
        cases.append(("vm.state", ["--image-path", d, "--bundle", env.bundle, "-d", "r6"], "vm.state is a FIFO"))
        d = os.path.join(env.tmp, "r-pod")
        os.makedirs(d)
        os.mkfifo(os.path.join(d, "pod.json"))
        cases.append(("pod.json", ["--pod", "--image-path", d, "r6"], "pod.json is a FIFO"))
        for what, args, needle in cases:
            rc, err, took = env.cocoon("restore", *args, timeout=15)
            assert rc is not None, f"{what} a FIFO: restore hung (> 15 s)"
            assert rc != 0 and needle.encode() in err, f"{what}: rc {rc} {err!r}"
            assert took < 10, f"{what}: took {took:.1f} s"
        assert len(env.vmm_pids()) == started, "a VM was started for a hostile restore directory"


@case
def pod_restore_takes_no_bundle_path_from_the_directory():
    """pod.json names each container's bundle, but a restore directory may
    come from another host: its paths chose which host bundle (rootfs,
    volumes, namespaces) the checkpoint's images ran with. restore --pod
    takes the bundles this host recorded at checkpoint --pod only."""
    with Env("good") as env:
        env.create("sb")
        podck = os.path.join(env.tmp, "podck")
        rc, err, _ = env.cocoon("checkpoint", "--pod", "--image-path", podck, "sb")
        assert rc == 0, err
        rc, err, _ = env.cocoon("delete", "--force", "sb")
        assert rc == 0, err
        foreign = os.path.join(env.tmp, "foreign")
        shutil.copytree(podck, foreign)
        started = len(env.vmm_pids())
        rc, err, took = env.cocoon("restore", "--pod", "--image-path", foreign, "sb")
        assert rc not in (0, None) and b"recorded no bundle" in err, f"foreign pod.json: rc {rc} {err!r}"
        assert took < 10 and len(env.vmm_pids()) == started, "a VM was started with pod.json's bundle"
        # The host's own checkpoint: its record is used, whatever pod.json
        # says now (the hostile guest then fails the restore itself).
        meta = os.path.join(podck, "pod.json")
        with open(meta) as f:
            doc = json.load(f)
        doc["bundles"]["sb"] = os.path.join(env.tmp, "elsewhere-bundle")
        with open(meta, "w") as f:
            json.dump(doc, f)
        rc, err, _ = env.cocoon("restore", "--pod", "--image-path", podck, "sb")
        assert rc != 0 and b"not supported by the hostile guest" in err, f"recorded bundle: {err!r}"
        assert b"elsewhere-bundle" not in err, err


@case
def check_report_strips_guest_controls():
    """`cocoon check` prints what the agent says about itself (its version,
    the kernel release, CRIU's version, path and check lines, module
    failures, and with debug criu check's output): an owned agent fills
    them with terminal controls, none reaches the terminal."""
    env = Env("check-text")
    try:
        with open(env.config) as f:
            cfg = f.read().replace("[runtime]\n", "[runtime]\nenable_debug = true\n", 1)
        with open(env.config, "w") as f:
            f.write(cfg)
        out_path = os.path.join(env.tmp, "check.txt")
        with open(out_path, "wb") as out:
            rc, err, _ = env.cocoon("check", stdout=out)
        with open(out_path, "rb") as f:
            text = f.read()
        assert b"6.1" in text and b"3.17" in text and b"mod:" in text and b"line 2" in text, text
        for bad in (b"\x1b", b"\xc2\x9b", b"\x07", b"\r"):
            assert bad not in text + err, f"{bad!r} reached the terminal: {text!r}"
    finally:
        env.close()


@case
def volumes_share_holds_only_what_the_spec_gave():
    """The guest attacks the volumes share (src/host/lib/volumes.c) as QEMU's 9p
    server could for it: nothing beside the mount points, no write into a
    read-only volume, and what it leaves in a writable one (a symlink to the
    canary, a FIFO) is neither followed nor removed by `delete`. The binds
    never reach the host's mount table."""
    env = Env("volumes")
    try:
        rw, ro = os.path.join(env.tmp, "vol-rw"), os.path.join(env.tmp, "vol-ro")
        for d in (rw, ro):
            os.makedirs(d)
            with open(os.path.join(d, "data"), "wb") as f:
                f.write(SECRET)
        with open(os.path.join(env.bundle, "config.json")) as f:
            spec = json.load(f)
        spec["mounts"] = [
            {"destination": "/rw", "type": "bind", "source": rw, "options": ["rbind", "rw"]},
            {"destination": "/ro", "type": "bind", "source": ro, "options": ["rbind", "ro"]},
        ]
        with open(os.path.join(env.bundle, "config.json"), "w") as f:
            json.dump(spec, f)
        env.create()
        log = env.log_text()
        for what in ("mkdir in the share", "symlink in the share", "rename a mount point"):
            line = [x for x in log.splitlines() if x.startswith(f"volumes {what}: ")]
            assert line and not line[0].endswith(": OK"), f"{what}: {line or 'not tried'}"
        writes = [x.rsplit(": ", 1)[1] for x in log.splitlines() if x.startswith("volumes write ")]
        assert sorted(writes) == ["EROFS", "OK"], f"writes into the volumes: {writes}"
        assert os.listdir(ro) == ["data"], f"the read-only volume changed: {os.listdir(ro)}"
        assert os.path.islink(os.path.join(rw, "escape")), "the writable volume did not get the guest's symlink"
        with open("/proc/self/mountinfo") as f:
            assert env.tmp not in f.read(), "a volume bind reached the host's mount table"
        rc, err, _ = env.cocoon("delete", "--force", "c1")
        assert rc == 0, f"delete: {err!r}"
        assert env.canary_intact(), "the canary outside the state root was touched"
        for d in (rw, ro):
            with open(os.path.join(d, "data"), "rb") as f:
                assert f.read() == SECRET, f"{d}/data changed"
        assert sorted(os.listdir(rw)) == ["data", "escape", "fifo", "hostile"], os.listdir(rw)
        assert not os.path.exists(os.path.join(env.root, "c1")), "the state directory is still there"
    finally:
        env.close()



@case
def delete_survives_bad_ids_and_any_depth():
    """`delete` of an invalid ID is a named error, never a crash (it
    segfaulted on '../x'); a shared directory nested deeper than the host's
    walk bound (a guest can make any depth) is removed entirely; and
    `delete --force` of a directory without its state.json removes it rather
    than reporting success while it stays."""
    env = Env("reply-empty")
    try:
        os.makedirs(env.root, exist_ok=True)
        for bad in ("../x", "", "a/b", ".x"):
            for force in ((), ("--force",)):
                rc, err, _ = env.cocoon("delete", *force, bad)
                assert rc == 1 and b"container ID" in err, f"delete {force} {bad!r}: rc={rc} {err!r}"
        deep = os.path.join(env.root, "deep")
        os.makedirs(os.path.join(deep, "shared", *(["d"] * 40)))
        os.symlink(env.canary, os.path.join(deep, "shared", *(["d"] * 40), "link"))
        with open(os.path.join(deep, "state.json"), "w") as f:
            json.dump({"id": "deep", "status": "stopped"}, f)
        rc, err, _ = env.cocoon("delete", "deep")
        assert rc == 0, f"delete of a 40-deep shared dir: rc={rc} {err!r}"
        assert not os.path.exists(deep), "the deep state directory is still there"
        orphan = os.path.join(env.root, "orphan")
        os.makedirs(os.path.join(orphan, "shared"))
        rc, err, _ = env.cocoon("delete", "--force", "orphan")
        assert rc == 0 and not os.path.exists(orphan), f"delete --force left {orphan}: rc={rc} {err!r}"
        assert env.canary_intact(), "the canary outside the state root was touched"
    finally:
        env.close()


@case
def restore_directory_with_unlisted_entries_starts_no_vm():
    """A restore directory holds what cocoon.json lists: an extra image
    (CRIU would read a stray pages-9.img or core-99.img unchecked), a
    symlink, a FIFO or a hard link is refused by name before any VM
    starts."""
    with Env("good") as env:
        images = good_images(env)
        started = len(env.vmm_pids())
        extra = os.path.join(images, "core-99.img")
        listed = os.path.join(images, sorted(f for f in os.listdir(images) if f.endswith(".img"))[0])
        elsewhere = os.path.join(env.tmp, "elsewhere.img")

        def plant_file():
            with open(extra, "wb") as f:
                f.write(b"x")

        for what, plant, undo, needle in (
                ("an extra file", plant_file, lambda: os.unlink(extra), "core-99.img is not listed"),
                ("a symlink", lambda: os.symlink(env.secret, extra), lambda: os.unlink(extra),
                 "core-99.img is not a regular file"),
                ("a FIFO", lambda: os.mkfifo(extra), lambda: os.unlink(extra), "core-99.img is not a regular file"),
                ("a hard link", lambda: os.link(listed, elsewhere), lambda: os.unlink(elsewhere),
                 f"{os.path.basename(listed)} has 2 links")):
            plant()
            rc, err, took = env.cocoon("restore", "--image-path", images, "--bundle", env.bundle, "-d", "r3")
            undo()
            assert rc not in (0, None) and needle.encode() in err, f"{what}: rc {rc} {err!r}"
            assert took < 10, f"{what}: took {took:.1f} s"
        assert len(env.vmm_pids()) == started, "a VM was started for a restore directory with extra entries"
        assert env.canary_intact(), "the canary was touched"


@case
def bad_state_root_corrupt_state_and_unwritable_log_are_named():
    """`--root` naming a file fails naming the root (it listed nothing and
    exited 0); a corrupt state.json is a warning naming the container, not a
    silent skip; a --log that cannot be written fails the command."""
    env = Env("good")
    try:
        rc, err, _ = env.cocoon("list", "--format", "json")  # before the root exists: empty, fine
        assert rc == 0, f"list of a missing root: rc={rc} {err!r}"
        for args in (("--root", env.secret, "list"), ("--root", env.secret, "state", "c1"),
                     ("--root", env.secret + "/x", "list")):
            p = subprocess.run([COCOON, *args], capture_output=True, env=env.env(), timeout=10)
            assert p.returncode == 1 and env.secret.encode() in p.stderr, f"{args}: {p.returncode} {p.stderr!r}"
        os.makedirs(os.path.join(env.root, "bad1"))
        with open(os.path.join(env.root, "bad1", "state.json"), "w") as f:
            f.write("{")
        os.makedirs(os.path.join(env.root, "creating"))  # no state.json yet: not named
        out = open(os.path.join(env.tmp, "list.txt"), "wb")
        rc, err, _ = env.cocoon("list", stdout=out)
        assert rc == 0 and b"warning" in err and b"bad1" in err, f"list: rc={rc} {err!r}"
        assert b"creating" not in err, f"list named a directory without state.json: {err!r}"
        log = os.path.join(env.tmp, "nonexistent", "dir", "log")
        p = subprocess.run([COCOON, "--root", env.root, "--log", log, "list"], capture_output=True,
                           env=env.env(), timeout=10)
        assert p.returncode == 1 and log.encode() in p.stderr, f"--log {log}: {p.returncode} {p.stderr!r}"
    finally:
        env.close()


def member_bundle(env, name, sandbox_pid):
    """A bundle whose spec joins the pod of shim SANDBOX_PID by its
    /proc/<pid>/ns paths, as podman's app containers do."""
    b = os.path.join(env.tmp, name)
    os.makedirs(os.path.join(b, "rootfs"))
    with open(os.path.join(env.bundle, "config.json")) as f:
        spec = json.load(f)
    spec["linux"]["namespaces"] = [{"type": "network", "path": f"/proc/{sandbox_pid}/ns/net"},
                                   {"type": "ipc", "path": f"/proc/{sandbox_pid}/ns/ipc"},
                                   {"type": "pid"}, {"type": "mount"}]
    with open(os.path.join(b, "config.json"), "w") as f:
        json.dump(spec, f)
    return b


def shim_pid(env, cid):
    out = os.path.join(env.tmp, f"state-{cid}.json")
    with open(out, "wb") as f:
        rc, err, _ = env.cocoon("state", cid, stdout=f)
    assert rc == 0, f"state {cid}: {err!r}"
    with open(out) as f:
        return json.load(f)["pid"]


@case
def a_full_pod_still_answers_for_its_sandbox():
    """Each member's shim holds a connection to the sandbox's shim for its
    lifetime. With 16 members the sandbox's shim had no room left: `kill`
    and `pause` of the sandbox failed ("write to agent channel: Broken
    pipe"), so the pod could not be stopped or checkpointed, and a 17th
    member got the same riddle. Now a pod takes 32 members (checkpoint
    --pod's bound), the sandbox still answers, and the 33rd is refused by
    name."""
    with Env("good") as env:
        env.create("sb")
        pid = shim_pid(env, "sb")
        for i in range(32):
            rc, err, _ = env.cocoon("create", "--bundle", member_bundle(env, f"b{i}", pid), f"m{i}")
            assert rc == 0, f"member m{i}: {err!r}"
        for verb in ("pause", "resume"):
            rc, err, _ = env.cocoon(verb, "sb")
            assert rc == 0, f"{verb} of the sandbox of a full pod: {err!r}"
        rc, err, _ = env.cocoon("create", "--bundle", member_bundle(env, "b32", pid), "m32")
        assert rc == 1 and b"m32: pod sb is full: it has 32 containers besides its sandbox" in err, \
            f"33rd member: rc={rc} {err!r}"
        assert not os.path.exists(os.path.join(env.root, "m32")), "the refused member left its state"
        rc, err, _ = env.cocoon("kill", "sb", "KILL")
        assert rc == 0, f"kill of the sandbox of a full pod: {err!r}"


def state_status(env, cid):
    """The status `state` reports, or None when the container does not exist."""
    out = os.path.join(env.tmp, f"state-{cid}.json")
    with open(out, "wb") as f:
        rc, _, _ = env.cocoon("state", cid, stdout=f)
    if rc != 0:
        return None
    with open(out) as f:
        return json.load(f)["status"]


def cocoon_pids_of(root):
    """cocoon processes (shims, keepers) whose command line names root."""
    pids = []
    for p in os.listdir("/proc"):
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read()
            if root.encode() in cmd and os.readlink(f"/proc/{p}/exe") == COCOON and alive(int(p)):
                pids.append(int(p))
        except OSError:
            pass
    return pids


@case
def pod_vm_lives_until_its_last_container_is_deleted():
    """The pod's VM belongs to its keeper, not to the sandbox's shim (docs/
    pods.md "Lifetimes"): the sandbox deleted first leaves the members
    running in the VM, and `state`/`list` say the sandbox is gone; the VM
    ends when the last member is deleted, before that delete returns, with
    no shim, keeper or directory left. Before the keeper, deleting the
    sandbox ended the VM and every member with it."""
    with Env("good") as env:
        env.create("sb")
        pid = shim_pid(env, "sb")
        vmm = env.vmm_pids()
        assert len(vmm) == 1, vmm
        for m in ("m1", "m2"):
            rc, err, _ = env.cocoon("create", "--bundle", member_bundle(env, f"b{m}", pid), m)
            assert rc == 0, f"member {m}: {err!r}"
        rc, err, _ = env.cocoon("delete", "--force", "sb")
        assert rc == 0, f"delete --force sb: {err!r}"
        assert not alive(pid), "the sandbox's shim outlived its delete"
        assert alive(vmm[0]), "the VM went with the sandbox: its members died"
        assert state_status(env, "sb") is None, "state still shows a deleted sandbox"
        assert [state_status(env, m) for m in ("m1", "m2")] == ["created", "created"]
        rc, err, _ = env.cocoon("start", "m1")
        assert rc == 0, f"start of a member after its sandbox went: {err!r}"
        rc, err, _ = env.cocoon("delete", "--force", "m1")
        assert rc == 0 and alive(vmm[0]), f"the VM went before the last member: {err!r}"
        rc, err, _ = env.cocoon("delete", "--force", "m2")
        assert rc == 0, f"delete --force m2: {err!r}"
        assert not alive(vmm[0]), "the VM outlived the pod's last container"
        assert cocoon_pids_of(env.root) == [], "a shim or keeper of the pod is left"
        assert os.listdir(env.root) == [], f"left in the state root: {os.listdir(env.root)}"


@case
def pod_keeper_killed_takes_the_vm_and_leaves_the_truth():
    """SIGKILL of the keeper: QEMU goes with it (PDEATHSIG), every shim of
    the pod sees its channel close and records its container stopped; the
    deletes leave nothing."""
    with Env("good") as env:
        env.create("sb")
        pid = shim_pid(env, "sb")
        rc, err, _ = env.cocoon("create", "--bundle", member_bundle(env, "bm", pid), "m1")
        assert rc == 0, f"member: {err!r}"
        with open(os.path.join(env.root, "sb", "keeper")) as f:
            keeper = int(f.read().split()[0])
        vmm = env.vmm_pids()
        os.kill(keeper, signal.SIGKILL)
        deadline = time.time() + 10
        while time.time() < deadline and (alive(vmm[0]) or alive(pid) or
                                          state_status(env, "m1") != "stopped"):
            time.sleep(0.05)
        assert not alive(vmm[0]), "QEMU outlived its keeper"
        assert not alive(pid), "the sandbox's shim outlived its keeper"
        assert [state_status(env, c) for c in ("sb", "m1")] == ["stopped", "stopped"]
        for c in ("m1", "sb"):
            rc, err, _ = env.cocoon("delete", c)
            assert rc == 0, f"delete {c}: {err!r}"
        assert cocoon_pids_of(env.root) == [] and os.listdir(env.root) == []


@case
def member_killed_mid_create_leaves_no_container():
    """A member's shim killed while its create is still being set up in the
    guest: the keeper's kill at once finds no container yet (ESRCH, the
    agent's answer), and the create then completes with nobody to own it.
    The keeper kills it when that reply comes (before, it stayed in the VM
    under that id)."""
    with Env("member-create-late") as env:
        env.create("sb")
        pid = shim_pid(env, "sb")
        b = member_bundle(env, "bm", pid)
        with open(os.path.join(env.tmp, "m1.err"), "wb") as err:
            p = subprocess.Popen([COCOON, "--root", env.root, "create", "--bundle", b, "m1"],
                                 stdout=subprocess.DEVNULL, stderr=err, env=env.env())
        deadline = time.time() + 10
        while time.time() < deadline and "create deferred m1" not in env.log_text():
            time.sleep(0.02)
        assert "create deferred m1" in env.log_text(), env.log_text()
        with open(os.path.join(env.root, "m1", "state.json")) as f:
            os.kill(json.load(f)["shim_pid"], signal.SIGKILL)
        p.wait(timeout=20)
        deadline = time.time() + 10
        while time.time() < deadline and "signal m1" not in env.log_text().partition("create done m1")[2]:
            time.sleep(0.05)
        log = env.log_text()
        assert "create done m1" in log, log
        assert "signal m1" in log.partition("create done m1")[2], \
            f"the member created after its shim died was not killed: {log[log.find('create deferred'):]!r}"


def keeper_of(env, cid):
    with open(os.path.join(env.root, cid, "keeper")) as f:
        return int(f.read().split()[0])


@case
def member_shim_leaves_within_its_bound_when_the_keeper_hangs():
    """A member's shim that leaves waits for the pod's keeper to close its
    connection (so that the delete of the last container returns with the
    VM gone), for at most 15 s. The wait read a blocking socket after its
    poll timed out, so a keeper that did not answer (here: stopped) held
    the member's shim, and the engine waiting on it, for ever (rev16b M2)."""
    with Env("good") as env:
        env.create("sb")
        rc, err, _ = env.cocoon("create", "--bundle", member_bundle(env, "bm", shim_pid(env, "sb")), "m1")
        assert rc == 0, err
        mpid, k = shim_pid(env, "m1"), keeper_of(env, "sb")
        os.kill(k, signal.SIGSTOP)
        try:
            # delete sends m1's shim SHUTDOWN; cut off before its own 10 s kill
            env.cocoon("delete", "--force", "m1", timeout=2)
            t0 = time.time()
            while alive(mpid) and time.time() - t0 < 25:
                time.sleep(0.1)
            took = time.time() - t0 + 2
        finally:
            os.kill(k, signal.SIGCONT)
        assert not alive(mpid), f"m1's shim still alive {took:.0f} s after SHUTDOWN (bound 15 s)"
        return f"m1's shim gone {took:.1f} s after SHUTDOWN"


@case
def keeper_holds_none_of_the_fds_create_was_given():
    """An fd the engine passed create (not close-on-exec: conmon's and
    containerd's pipes) stays with the container's shim, as long as its
    container; the pod's keeper, which outlives a deleted sandbox while
    members run, must not hold it (rev16b M3: it did, until the pod's last
    container went)."""
    with Env("good") as env:
        r, w = os.pipe()
        env.create("sb", pass_fds=(w,))
        os.close(w)
        rc, err, _ = env.cocoon("create", "--bundle", member_bundle(env, "bm", shim_pid(env, "sb")), "m1")
        assert rc == 0, err
        k = keeper_of(env, "sb")
        ino = os.fstat(r).st_ino

        def holders():
            found = []
            for p in cocoon_pids_of(env.root):
                for fd in os.listdir(f"/proc/{p}/fd"):
                    try:
                        if os.readlink(f"/proc/{p}/fd/{fd}") == f"pipe:[{ino}]":
                            found.append("keeper" if p == k else p)
                    except OSError:
                        pass
            return found
        assert holders() == [shim_pid(env, "sb")], f"the pipe's holders while sb runs: {holders()}"
        rc, err, _ = env.cocoon("delete", "--force", "sb")
        assert rc == 0, err
        assert alive(k), "the keeper went with the sandbox while a member runs"
        assert holders() == [], f"the engine's pipe is held after the sandbox's delete by {holders()}"
        os.set_blocking(r, False)
        assert os.read(r, 16) == b"", "the pipe has a writer left"
        os.close(r)


@case
def deleted_sandbox_id_is_free_while_its_vm_serves_members():
    """A pod sandbox deleted while members run leaves its VM to them, and
    its directory (the pod share, the VM's shared directory) to its keeper.
    The id stayed taken until the last member went, and create of it said
    "No such file or directory" (rev16b M1), so `podman pod start` after
    `podman stop <infra>` could not create the infra container again. The
    directory moves out of the id's way (.pod-<keeper pid>-<id>): the id is
    free at once, a new sandbox of that id gets a VM of its own, the old
    members run on in theirs (and are checkpointed from there), and each VM
    ends with its last container."""
    with Env("good") as env:
        env.create("sb")
        rc, err, _ = env.cocoon("create", "--bundle", member_bundle(env, "bm", shim_pid(env, "sb")), "m1")
        assert rc == 0, err
        rc, err, _ = env.cocoon("start", "m1")
        assert rc == 0, err
        old_vm, k = env.vmm_pids(), keeper_of(env, "sb")
        rc, err, _ = env.cocoon("delete", "--force", "sb")
        assert rc == 0, err
        assert state_status(env, "sb") is None and alive(old_vm[0]) and alive(k)
        assert sorted(os.listdir(env.root)) == [f".pod-{k}-sb", "m1"], os.listdir(env.root)
        rc, err, _ = env.cocoon("create", "--bundle", env.bundle, "sb")
        assert rc == 0, f"create of the deleted sandbox's id: rc={rc} {err!r}"
        rc, err, _ = env.cocoon("start", "sb")
        assert rc == 0, err
        new_vm = [v for v in env.vmm_pids() if v not in old_vm]
        assert len(new_vm) == 1 and alive(new_vm[0]) and alive(old_vm[0]), (old_vm, new_vm)
        assert state_status(env, "sb") == "running" and state_status(env, "m1") == "running"
        out = os.path.join(env.tmp, "m1-ckpt")
        rc, err, _ = env.cocoon("checkpoint", "--leave-running", "--image-path", out, "m1", timeout=60)
        assert rc == 0 and os.path.isdir(out), f"checkpoint of a member of the moved pod: {err!r}"
        rc, err, _ = env.cocoon("delete", "--force", "m1")
        assert rc == 0, err
        assert not alive(old_vm[0]) and not alive(k), "the old VM outlived its pod's last container"
        assert alive(new_vm[0]), "the new sandbox's VM went with the old pod"
        assert sorted(os.listdir(env.root)) == ["sb"], os.listdir(env.root)
        assert state_status(env, "sb") == "running"
        rc, err, _ = env.cocoon("delete", "--force", "sb")
        assert rc == 0, err
        assert not alive(new_vm[0]) and cocoon_pids_of(env.root) == [] and os.listdir(env.root) == []


@case
def pod_share_holds_only_the_members_rootfs():
    """The guest attacks the pod share (src/host/lib/pod.c) as QEMU's 9p
    server could for it when a member is created: nothing beside the
    members' directories, no renaming of a member's directory or of its
    rootfs mount point; what it leaves in the member's rootfs (its own to
    write) is neither followed nor removed when the member goes, no bind
    reaches the host's mount table, and the sandbox's shim cleans pod-rw."""
    env = Env("pod")
    try:
        env.create("sb")
        b = member_bundle(env, "mb", shim_pid(env, "sb"))
        rc, err, _ = env.cocoon("create", "--bundle", b, "m1")
        assert rc == 0, f"member: {err!r}"
        log = env.log_text()
        got = {x.split(": ")[0][4:]: x.rsplit(": ", 1)[1] for x in log.splitlines() if x.startswith("pod ")}
        for what in ("mkdir in the share", "symlink in a member's directory",
                     "rename a member's directory", "rename a rootfs mount point"):
            assert got.get(what, "not tried") not in ("OK", "not tried"), f"{what}: {got.get(what, 'not tried')}"
        assert got.get("write in the rootfs") == "OK", f"the member's rootfs is not the guest's: {got}"
        with open("/proc/self/mountinfo") as f:
            assert env.tmp not in f.read(), "a bind of the pod reached the host's mount table"
        rc, err, _ = env.cocoon("delete", "--force", "m1")
        assert rc == 0, f"delete m1: {err!r}"
        assert env.canary_intact(), "the canary outside the state root was touched"
        assert sorted(os.listdir(os.path.join(b, "rootfs"))) == ["escape", "hostile"], os.listdir(b)
        assert os.path.islink(os.path.join(b, "rootfs", "escape"))
        assert os.listdir(os.path.join(env.root, "sb", "pod-rw")) == [], "m1 is left in pod-rw"
        return "; ".join(f"{k}: {v}" for k, v in sorted(got.items()))
    finally:
        env.close()

@case
def a_deaf_agent_does_not_wedge_the_vms_owner():
    """rev11b F3: the guest's agent stops reading its channel once started
    (hostile-vmm "deaf"). The engine feeds the container's stdin; the VM's
    owner (the keeper) sent it on with a blocking send, which never
    returned once the socket's buffer was full: it served nothing more,
    `kill` waited out the CLI's 30 s and the container could not be stopped
    short of delete --force. Now every send to the guest has a deadline
    (limits.channel_send_timeout_ms, 1 s here): the stall is logged naming
    the container, later sends fail at once while the guest reads nothing,
    a request's error says why, and delete leaves nothing."""
    with Env("deaf", limits="channel_send_timeout_ms = 1000") as env:
        r, w = os.pipe()
        err_path = os.path.join(env.tmp, "create-err.txt")
        with open(os.path.join(env.tmp, "create-out.txt"), "wb") as out, open(err_path, "wb") as err_f:
            p = subprocess.run([COCOON, "--root", env.root, "create", "--bundle", env.bundle, "c1"],
                               stdin=r, stdout=out, stderr=err_f, env=env.env(), timeout=30)
        os.close(r)
        assert p.returncode == 0, "create failed"
        rc, err, _ = env.cocoon("start", "c1")
        assert rc == 0, err
        fed = [0]

        def feed():
            chunk = b"x" * 65536
            try:
                while True:
                    fed[0] += os.write(w, chunk)
            except OSError:
                pass  # the shim is gone: EPIPE
        threading.Thread(target=feed, daemon=True).start()
        deadline = time.time() + 10
        stalled = b"container c1: the agent has not read its channel for"
        while time.time() < deadline:
            with open(err_path, "rb") as f:
                logged = f.read()
            if stalled in logged:
                break
            time.sleep(0.1)
        assert stalled in logged, f"no stall logged after 10 s of a deaf agent (fed {fed[0]} bytes): {logged!r}"
        assert b"limits.channel_send_timeout_ms = 1000" in logged, logged
        # The owner still serves: kill is answered at once, with the cause.
        rc, err, took = env.cocoon("kill", "c1", "KILL", timeout=40)
        assert rc is not None, "cocoon kill hung (> 40 s)"
        assert took < 5, f"kill took {took:.1f} s: {err!r}"
        assert rc != 0 and stalled in err, f"kill: rc {rc} {err!r}"
        rc, derr, took = env.cocoon("delete", "--force", "c1", timeout=40)
        assert rc == 0 and took < 10, f"delete --force: rc {rc} in {took:.1f} s: {derr!r}"
        os.close(w)
        time.sleep(0.5)
        assert not [q for q in env.vmm_pids() if alive(q)], "the VMM outlived delete"
        assert cocoon_pids_of(env.root) == [], f"left running: {cocoon_pids_of(env.root)}"
        assert not os.path.exists(os.path.join(env.root, "c1")), "the state directory is left"
        return f"fed {fed[0] >> 10} KiB; {logged.decode(errors='replace').strip().splitlines()[-1][:200]}"


@case
def a_member_that_reads_nothing_does_not_stall_its_pod():
    """rev11b F5: the keeper sends a member's events to the member's shim
    over a socket that waits at most its send timeout. A member whose engine
    reads none of its output (its shim blocks on its stdout, and reads its
    connection no more) had a frame cut at the timeout, which desynchronised
    its stream, and every further event held the keeper, and so the whole
    pod, for the timeout again. Now the frame goes whole or the connection
    is closed: the keeper logs it, kills the member's container in the VM,
    and serves the pod on; the member's shim reads the end of its
    connection, never a cut frame, and records its container stopped."""
    with Env("member-flood", limits="channel_send_timeout_ms = 1000") as env:
        kerr, merr = os.path.join(env.tmp, "sb-err.txt"), os.path.join(env.tmp, "m1-err.txt")
        with open(os.path.join(env.tmp, "sb-out.txt"), "wb") as out, open(kerr, "wb") as err_f:
            p = subprocess.run([COCOON, "--root", env.root, "create", "--bundle", env.bundle, "sb"],
                               stdin=subprocess.DEVNULL, stdout=out, stderr=err_f, env=env.env(), timeout=30)
        assert p.returncode == 0, "create sb failed"
        rc, err, _ = env.cocoon("start", "sb")
        assert rc == 0, err
        pid = shim_pid(env, "sb")
        r, w = os.pipe()  # the member's stdout, which its "engine" does not read
        with open(merr, "wb") as err_f:
            p = subprocess.run([COCOON, "--root", env.root, "create", "--bundle", member_bundle(env, "bm", pid), "m1"],
                               stdin=subprocess.DEVNULL, stdout=w, stderr=err_f, env=env.env(), timeout=30)
        os.close(w)
        assert p.returncode == 0, "create m1 failed"
        t0 = time.time()
        rc, err, _ = env.cocoon("start", "m1")
        assert rc == 0, err
        # The guest's 8 MiB for m1 are taken within moments of the timeout.
        while time.time() - t0 < 15 and "flooded m1" not in env.log_text():
            time.sleep(0.1)
        flooded = time.time() - t0
        assert "flooded m1" in env.log_text(), "the keeper took the member's output at its shim's pace: the pod stalled"
        rc, err, took = env.cocoon("kill", "sb", "USR1", timeout=40)
        assert rc == 0 and took < 5, f"the pod's sandbox is not served: kill took {took:.1f} s, rc {rc} {err!r}"
        with open(kerr, "rb") as f:
            klog = f.read()
        assert b"a client's connection took" in klog and b"it is closed" in klog, klog
        deadline = time.time() + 10
        while time.time() < deadline and "signal m1" not in env.log_text():
            time.sleep(0.1)
        assert "signal m1" in env.log_text(), "the member's container was not killed in the VM"
        # Its engine reads again: its shim finds the end of its connection.
        os.set_blocking(r, False)
        status, deadline = None, time.time() + 10
        while time.time() < deadline and status != "stopped":
            try:
                while os.read(r, 1 << 16):
                    pass
            except BlockingIOError:
                pass
            status = state_status(env, "m1")
            time.sleep(0.2)
        os.close(r)
        with open(merr, "rb") as f:
            mlog = f.read()
        assert b"malformed" not in mlog, f"the member's shim read a cut frame: {mlog!r}"
        assert status == "stopped", f"m1 is {status!r} after its shim lost its connection"
        assert state_status(env, "sb") == "running", "the sandbox went with its member"
        for cid in ("m1", "sb"):
            rc, err, _ = env.cocoon("delete", "--force", cid)
            assert rc == 0, f"delete {cid}: {err!r}"
        time.sleep(0.5)
        assert cocoon_pids_of(env.root) == [], "a shim or keeper of the pod is left"
        return f"8 MiB flood taken in {flooded:.1f} s; {klog.decode(errors='replace').strip().splitlines()[-1][:160]}"


for i, (ok, name, detail) in enumerate(results, 1):
    skip = detail.startswith("skip:")
    line = f"{'ok' if ok else 'not ok'} {i} - {name.replace('_', ' ')}"
    if skip:
        line += f" # SKIP {detail[5:].strip()}"
    print(line)
    if detail and not skip:
        for d in detail.splitlines()[:6]:
            print(f"# {d}")
print(f"1..{len(results)}")
sys.exit(0 if all(ok for ok, _, _ in results) else 1)
