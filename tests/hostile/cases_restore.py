"""Hostile-guest cases (test_hostile.py): restore from a directory the guest
wrote or that came from elsewhere (CRIU's images, a whole VM's state, a pod)."""
import json
import os
import resource
import shutil
import subprocess
import threading
import time

from hostile_env import COCOON, Env, alive, case, good_images


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
        env.assert_secret_not_copied()
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
    (here 48 of them). They are read within limits.verify_timeout_ms.
    The work is measured as the restore's CPU time, which load does not
    stretch (reading and parsing all 48 takes seconds of it; 100 ms of
    wall time allows at most 100 ms), and the checkpoint the case starts
    from is made before the 100 ms limit is set (under load its own
    verify outlasted it: rev hostile8)."""
    with Env("good") as env:
        images = good_images(env)
        env.set_limits("verify_timeout_ms = 100")
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
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        rc, err, took = env.cocoon("restore", "--image-path", images, "--bundle", env.bundle, "-d", "r9",
                                   timeout=120)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        assert rc not in (0, None), f"rc {rc} {err!r}"
        assert b"limits.verify_timeout_ms" in err and b"pagemap-" in err, err
        assert cpu < 1, f"the restore used {cpu:.2f} s of CPU ({took:.1f} s of wall time) past a 100 ms verify deadline"
        assert len(env.vmm_pids()) == started, "a VM was started for a hostile restore directory"
        assert not os.path.exists(os.path.join(env.root, "r9")), "a state directory is left"
        return f"{cpu:.2f} s CPU, {took:.2f} s: " + err.decode(errors="replace").strip()


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
def restore_directory_text_reaches_no_terminal_as_controls():
    """Strings of a restore directory from elsewhere that the errors name:
    cocoon.json's version and a file name it lists (terminal controls
    reached the user's terminal as they were)."""
    with Env("good") as env:
        images = good_images(env)
        meta = os.path.join(images, "cocoon.json")
        with open(meta) as f:
            good = json.load(f)
        evil = "\x1b]0;pwned\x07\x1b[2J\u009b31m\x7f"
        for what, doc in (("version", dict(good, version=evil)),
                          ("file name", dict(good, files={evil: {"size": 1, "xxh3": "0" * 16}}))):
            os.unlink(meta)
            with open(meta, "w") as f:
                json.dump(doc, f)
            rc, err, _ = env.cocoon("restore", "--image-path", images, "--bundle", env.bundle, "-d", "r3")
            assert rc not in (0, None), f"{what}: rc {rc}"
            for bad in (b"\x1b", b"\x07", b"\x7f", b"\xc2\x9b"):
                assert bad not in err, f"{what}: {bad!r} reached the terminal: {err!r}"
