"""Whole-VM checkpoints (docs/whole-vm.md): what a whole-VM checkpoint or
restore refuses. The checkpoint directory is untrusted: a snapshot of
another image or VM shape, a damaged or cut state, a state swapped after
the check, one over limits.checkpoint_max_bytes, and a second checkpoint
of the same container at once. test_vmsnap.py has the saved VM carrying
on; the QEMU these need comes from vmsnap_util.py's vmm fixture."""
import json
import os
import re
import subprocess
import time

from conftest import COCOON, qemu_pids, wait_for
from test_checkpoint import checkpoint, finish, lines, restore, restored, start
from vmsnap_util import vmm  # noqa: F401  (the fixture)
from vmsnap_util import memhog_rounds, saved_counter, state_held, vm_mode


def test_snapshot_of_another_image_or_shape_is_refused(env, vmm):
    vm_mode(env, vmm)
    b, out = start(env, "a", ["payload", "counter", "100"])
    assert wait_for(lambda: len(lines(out)) >= 2)
    checkpoint(env, "a", env.tmp / "ck")
    env.run("delete", "a", check=True)
    # Another VM shape: the restore's VM has more memory.
    vm_mode(env, vmm, memory=640)
    rc, out2, err = restore(env, "a", env.tmp / "ck", b)
    msg = err.read_text()
    assert rc != 0 and "another image or VM shape" in msg and "640" in msg, msg
    assert not (env.root / "a").exists() and qemu_pids(str(env.tmp)) == []
    # Another image: a snapshot whose key names another initrd.
    vm_mode(env, vmm)
    meta = json.loads((env.tmp / "ck" / "vm.json").read_text())
    meta["key"] = re.sub(r"initrd=size \d+ fnv1a \w+", "initrd=size 1 fnv1a 0000000000000000",
                         meta["key"])
    (env.tmp / "ck" / "vm.json").write_text(json.dumps(meta))
    rc, out2, err = restore(env, "a", env.tmp / "ck", b)
    msg = err.read_text()
    assert rc != 0 and "another image or VM shape" in msg and "initrd=" in msg, msg
    # Under another container ID: refused, naming the one it holds.
    rc, out2, err = restore(env, "b", env.tmp / "ck", b)
    msg = err.read_text()
    assert rc != 0 and "restore it as a" in msg and "cannot rename" in msg, msg
    assert qemu_pids(str(env.tmp)) == []


def test_zstd_state_restores_and_a_damaged_one_is_refused(env, vmm):
    """[vm] snapshot_zstd_level: the VM state is published as vm.state.zst,
    smaller than QEMU's file, and a restore carries the memory hash on.
    The checkpoint directory is untrusted: a cut stream and a vm.json that
    claims more than the VM's memory and device state are refused by name,
    with no VM started and no decompressed file left, in the state root or
    beside the image directory."""
    vm_mode(env, vmm, extra="snapshot_zstd_level = 3\n")
    seed = str(int.from_bytes(os.urandom(6), "little") | 1)
    b, out = start(env, "z", ["payload", "memhog", "64", seed])
    assert wait_for(lambda: len(memhog_rounds(out)) >= 2, timeout=120)
    ck = env.tmp / "ck"
    r = checkpoint(env, "z", ck)
    hash_before, round_before = memhog_rounds(out)[-1]
    env.run("delete", "--force", "z", check=True)
    meta = json.loads((ck / "vm.json").read_text())
    assert meta["state"] == "vm.state.zst" and not (ck / "vm.state").exists(), meta
    zst = (ck / "vm.state.zst").stat().st_size
    # The guest's 64 MiB of hashed pages are random: the rest compresses.
    assert 64 << 20 < meta["raw_size"] and zst < meta["state_bytes"], (zst, meta)
    # What the decompressed state holds beside the VM's memory (the bound a
    # restore applies: the memory, 1/128 of it and 64 MiB).
    mib = int(re.search(r" -m (\d+) ", meta["key"]).group(1))
    print(f"raw_size {meta['raw_size']} for -m {mib}: {meta['raw_size'] - (mib << 20)} bytes over the memory")
    assert meta["raw_size"] <= (mib + mib // 128 + 64) << 20, (mib, meta["raw_size"])

    def nothing_beside():
        return not [n for n in os.listdir(env.tmp) if n.startswith(".cocoon-vm.state")]
    (ck / "vm.state.zst").rename(env.tmp / "good.zst")
    # Cut in half.
    with open(env.tmp / "good.zst", "rb") as f:
        (ck / "vm.state.zst").write_bytes(f.read(zst // 2))
    rc, _, err = restore(env, "z", ck, b)
    msg = err.read_text()
    assert rc != 0 and "vm.state.zst" in msg and ("ends short" in msg or "zstd" in msg), msg
    assert not (env.root / "z").exists() and qemu_pids(str(env.tmp)) == []
    assert not list(env.root.glob(".z.vm.state.*")), "a decompressed state was left"
    assert nothing_beside(), "a decompressed state was left beside the images"
    # A raw_size past the VM's memory and device state: refused before
    # decoding.
    (env.tmp / "good.zst").rename(ck / "vm.state.zst")
    (ck / "vm.json").write_text(json.dumps({**meta, "raw_size": (mib + 1024) << 20}))
    rc, _, err = restore(env, "z", ck, b)
    msg = err.read_text()
    assert rc != 0 and f"the VM's {mib} MiB of memory" in msg and "max_memory_mib" in msg, msg
    assert not (env.root / "z").exists() and qemu_pids(str(env.tmp)) == []
    # As published: the memory comes back.
    (ck / "vm.json").write_text(json.dumps(meta))
    out2 = restored(env, "z", ck, b)
    assert wait_for(lambda: len(memhog_rounds(out2)) >= 1, timeout=120)
    h, rnd = memhog_rounds(out2)[0]
    assert h == hash_before and rnd >= round_before, (h, rnd, hash_before, round_before)
    # The decompressed state goes once QEMU has loaded it (docs/config.md):
    # no process keeps it, or the checkpoint's file, open for the
    # container's life (the shim did, and so its disk space stayed taken).
    assert state_held(env) == [], state_held(env)
    assert not list(env.root.glob(".z.vm.state.*")), "the decompressed state was left"
    assert nothing_beside(), "the decompressed state was left beside the images"
    finish(env, "z")


def flip_a_byte(path):
    """XORs one byte of the first non-zero 4 KiB block from 16 MiB on: guest
    memory, past QEMU's headers (a mapped-ram file is mostly holes, with
    the device state at its end); returns its offset."""
    with open(path, "r+b") as f:
        fd = f.fileno()
        at = os.lseek(fd, 16 << 20, os.SEEK_DATA) & ~4095
        while True:
            block = os.pread(fd, 4096, at)
            assert block, "no data after the middle of the file"
            nz = next((i for i, c in enumerate(block) if c), None)
            if nz is not None:
                break
            at = os.lseek(fd, at + 4096, os.SEEK_DATA)
    xor_byte(path, at + nz)
    return at + nz


def xor_byte(path, at):
    with open(path, "r+b") as f:
        b = os.pread(f.fileno(), 1, at)
        os.pwrite(f.fileno(), bytes([b[0] ^ 0x40]), at)


def test_damaged_vm_state_is_refused_before_a_vm_starts(env, vmm):
    """vm.state is checked against the size and checksum vm.json records,
    as CRIU's images are (docs/checkpoint.md, "Restore"): one byte changed
    in a page of guest memory is refused by name before any VM starts; put
    back, the same directory restores and the counter carries on."""
    b, ck, last = saved_counter(env, vmm, "d")
    at = flip_a_byte(ck / "vm.state")
    rc, _, err = restore(env, "d", ck, b)
    msg = err.read_text()
    assert rc != 0 and "vm.state" in msg and "checksum" in msg, (at, msg)
    assert not (env.root / "d").exists() and qemu_pids(str(env.tmp)) == []
    xor_byte(ck / "vm.state", at)
    # A state of another length than recorded (its last byte cut).
    meta = json.loads((ck / "vm.json").read_text())
    size = (ck / "vm.state").stat().st_size
    assert meta["state_size"] == size, meta
    with open(ck / "vm.state", "rb") as f:
        last_byte = os.pread(f.fileno(), 1, size - 1)
    os.truncate(ck / "vm.state", size - 1)
    rc, _, err = restore(env, "d", ck, b)
    msg = err.read_text()
    assert rc != 0 and "vm.state" in msg and str(size) in msg, msg
    assert not (env.root / "d").exists() and qemu_pids(str(env.tmp)) == []
    with open(ck / "vm.state", "r+b") as f:
        os.pwrite(f.fileno(), last_byte, size - 1)
    out2 = restored(env, "d", ck, b)
    assert wait_for(lambda: len(lines(out2)) >= 2)
    assert last - 1 <= int(lines(out2)[0]) <= last + 1, (lines(out2), last)
    finish(env, "d")


def test_vm_state_over_checkpoint_max_bytes_is_not_published(env, vmm):
    """limits.checkpoint_max_bytes holds at checkpoint as at restore
    (docs/config.md): a saved VM larger than it is not published (a restore
    would refuse it), the error names the limit, and the container, frozen
    for the save, runs on with nothing left behind."""
    vm_mode(env, vmm, extra="[limits]\ncheckpoint_max_bytes = 8388608\n")
    b, out = start(env, "big", ["payload", "counter", "100"])
    assert wait_for(lambda: len(lines(out)) >= 2)
    ck = env.tmp / "ck"
    r = checkpoint(env, "big", ck, check=False)
    assert r.returncode != 0 and "checkpoint_max_bytes" in r.stderr, r.stdout + r.stderr
    assert not ck.exists() and not list(env.tmp.glob("ck.*")), list(env.tmp.iterdir())
    assert not (env.root / "big" / "vmsnap.state").exists()
    assert env.state("big")["status"] == "running"
    n = len(lines(out))
    assert wait_for(lambda: len(lines(out)) >= n + 2), "the container did not run on"
    finish(env, "big")


def test_vm_state_swapped_after_the_check_is_not_what_loads(env, vmm):
    """QEMU loads the descriptor the restore checked, never the path: a
    vm.state replaced by garbage once the checks are done (when the new
    QEMU appears, before it is told to load) changes nothing. Loading by
    path, QEMU read the garbage and the restore failed."""
    import threading
    b, ck, _ = saved_counter(env, vmm, "s")
    swapped = []

    def swap():
        deadline = time.time() + 120
        while time.time() < deadline and not qemu_pids(str(env.root / "s")):
            time.sleep(0.005)
        if qemu_pids(str(env.root / "s")):
            (ck / "vm.state").rename(env.tmp / "good.state")
            (ck / "vm.state").write_bytes(b"not a QEMU migration stream\n" * 1000)
            swapped.append(time.time())
    t = threading.Thread(target=swap)
    t.start()
    rc, out2, err = restore(env, "s", ck, b)
    t.join()
    assert swapped, "the restore's QEMU never appeared"
    assert rc == 0, err.read_text()
    assert wait_for(lambda: len(lines(out2)) >= 2)
    finish(env, "s")


def test_two_whole_vm_checkpoints_at_once_one_is_refused(env, vmm):
    """Two checkpoints of one container at once: the second is refused,
    "another checkpoint is in progress" (docs/checkpoint.md), and the one
    that succeeds restores. Both used to go through: the shim saves into
    the one work file of the state directory (vmsnap.state) and answers,
    then the checkpoint command publishes it; the second save, served
    meanwhile, unlinked that file first, so the first failed ("No such
    file") or published a file QEMU was still writing."""
    vm_mode(env, vmm)
    b, out = start(env, "two", ["payload", "counter", "100"])
    assert wait_for(lambda: len(lines(out)) >= 3)
    cmd = [str(COCOON), "--root", str(env.root), "--config", str(env.config), "checkpoint",
           "--leave-running", "--image-path"]
    procs = [subprocess.Popen(cmd + [str(env.tmp / f"ck{i}"), "two"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in (1, 2)]
    results = [(p.wait(timeout=600), *p.communicate()) for p in procs]
    ok = [i for i, (rc, _, _) in enumerate(results) if rc == 0]
    assert len(ok) == 1, results
    rc, _, err = results[1 - ok[0]]
    assert "another checkpoint is in progress" in err, results
    assert not (env.tmp / f"ck{2 - ok[0]}").exists(), "the refused checkpoint left its directory"
    assert env.state("two")["status"] == "running"
    n = len(lines(out))
    assert wait_for(lambda: len(lines(out)) >= n + 2), "the container did not run on"
    env.run("delete", "--force", "two", check=True)
    out2 = restored(env, "two", env.tmp / f"ck{ok[0] + 1}", b)
    assert wait_for(lambda: len(lines(out2)) >= 2)
    finish(env, "two")


# A deleted file (/keep) and a kept one (/kept) open on the rootfs; the
# deleted one is let go once /release appears. Every line says what held.
HOLDER = ("echo before-save > /keep; exec 5</keep; rm /keep; "
          "echo open-and-kept > /kept; exec 6</kept; exec 7>/tmpw; rm /tmpw; i=0; let=; "
          "while :; do i=$((i+1)); echo tick $i; "
          "if [ -z \"$let\" ] && [ -e /release ]; then exec 5<&- 7>&-; let=1; echo let-go; fi; "
          "if [ -z \"$let\" ]; then busybox cat /proc/self/fd/5 || echo DELETED-REOPEN-FAILED; "
          "echo w$i >&7 || echo DELETED-WRITE-FAILED; fi; "
          "busybox cat /proc/self/fd/6 || echo KEPT-REOPEN-FAILED; busybox sleep 1; done")


def test_deleted_file_held_open_is_refused_and_the_container_runs_on(env, vmm):
    """A container holding a deleted file of its rootfs open (tmpfile(),
    an unlinked log): virtiofsd's find-paths hands open files over by path,
    and a deleted one has none. The save went through, and after the
    restore the container read and wrote EIO on it. Now the checkpoint is
    refused once the VM is stopped, naming the file (found among
    virtiofsd's descriptors, not asked of the guest), with nothing
    published and the container running on, its file intact; once it lets
    go of the file the same container saves, and a file it holds that still
    exists carries on through the restore."""
    vm_mode(env, vmm)
    b, out = start(env, "h", ["busybox", "sh", "-c", HOLDER])
    ticks = lambda o: [x for x in lines(o) if x.startswith("tick")]  # noqa: E731
    assert wait_for(lambda: len(ticks(out)) >= 2, timeout=60)
    ck = env.tmp / "ck"
    for flags in ((), ("--leave-running",)):
        r = checkpoint(env, "h", ck, *flags, check=False)
        assert r.returncode != 0, r.stdout + r.stderr
        assert "the deleted file /keep" in r.stderr or "the deleted file /tmpw" in r.stderr, r.stderr
        assert "root filesystem" in r.stderr and "EIO" in r.stderr, r.stderr
        assert not ck.exists() and not list(env.tmp.glob("ck.vmsnap-*")), list(env.tmp.iterdir())
        assert env.state("h")["status"] == "running"
        n = len(ticks(out))
        assert wait_for(lambda: len(ticks(out)) >= n + 2), "the container did not run on"
    got = lines(out)
    assert "before-save" in got[-6:] and not any("FAILED" in x for x in got), got
    env.run("exec", "h", "busybox", "touch", "/release", check=True)
    assert wait_for(lambda: "let-go" in lines(out))
    time.sleep(1)
    checkpoint(env, "h", ck)
    assert wait_for(lambda: env.state("h")["status"] == "stopped")
    last = int(ticks(out)[-1].split()[1])
    env.run("delete", "h", check=True)
    out2 = restored(env, "h", ck, b)
    assert wait_for(lambda: len(ticks(out2)) >= 3)
    first = int(ticks(out2)[0].split()[1])
    assert last - 1 <= first <= last + 1, (first, last)
    got = lines(out2)
    assert "open-and-kept" in got and not any("FAILED" in x for x in got), got
    finish(env, "h")
