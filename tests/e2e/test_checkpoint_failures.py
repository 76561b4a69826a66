"""Checkpoint and restore when something goes wrong: bad input, damaged or
foreign images, a dump or restore that cannot fit, stalls, kills, a full
disk. Each time a clear error, the original unharmed, nothing partial
(test_checkpoint.py has the cases that succeed, and the helpers)."""
import json
import os
import re
import shutil
import subprocess
import threading
import time

import pytest

from conftest import COCOON, pids_mentioning, qemu_pids, wait_for, write_bundle
from test_checkpoint import checkpoint, finish, lines, memhog_hash, restore, restored, start


# ---- bad input: a clear error, the original unharmed, nothing partial -------

def test_checkpoint_of_missing_and_stopped_containers(env):
    r = checkpoint(env, "ghost", env.tmp / "ck", check=False)
    assert r.returncode != 0 and "container ghost does not exist" in r.stderr
    b = write_bundle(env.tmp / "b", ["payload", "exit", "0"])
    subprocess.run([str(COCOON), "--root", str(env.root), "--config", str(env.config), "run",
                    "--bundle", str(b.path), "done"], stdin=subprocess.DEVNULL, capture_output=True,
                   timeout=120)
    r = checkpoint(env, "done", env.tmp / "ck", check=False)
    assert r.returncode != 0 and "done is stopped" in r.stderr
    assert not (env.tmp / "ck").exists()
    finish(env, "done")


def test_disabled_by_config(env):
    env.write_config("[runtime]\nenable_checkpoint = false\n")
    b, out = start(env, "dis", ["payload", "counter", "100"])
    r = checkpoint(env, "dis", env.tmp / "ck", check=False)
    assert r.returncode != 0
    assert "runtime.enable_checkpoint = false" in r.stderr
    assert env.state("dis")["status"] == "running"
    finish(env, "dis")


def test_image_path_not_ours(env):
    b, out = start(env, "no", ["payload", "counter", "100"])
    dest = env.tmp / "busy"
    dest.mkdir()
    (dest / "precious.txt").write_text("keep me")
    r = checkpoint(env, "no", dest, check=False)
    assert r.returncode != 0 and "is not empty" in r.stderr
    assert (dest / "precious.txt").read_text() == "keep me"
    assert env.state("no")["status"] == "running"
    finish(env, "no")


@pytest.fixture
def good_images(env):
    b, out = start(env, "src", ["payload", "memhog", "8"])
    assert wait_for(lambda: len(lines(out)) >= 1, timeout=60)
    checkpoint(env, "src", env.tmp / "good", "--leave-running")
    env.run("delete", "--force", "src", check=True)
    return b, env.tmp / "good"


def damaged_copy(env, good, name):
    bad = env.tmp / name
    shutil.copytree(good, bad)
    return bad


def expect_restore_refused(env, path, bundle, needle):
    t0 = time.time()
    rc, out, err = restore(env, "victim", path, bundle)
    text = err.read_text()
    assert rc != 0, "a damaged image was restored"
    assert needle in text, text
    assert time.time() - t0 < 120, "the refusal took too long"
    assert not (env.root / "victim").exists()
    assert qemu_pids(str(env.tmp)) == []


def test_restore_refuses_damaged_images(env, good_images):
    b, good = good_images
    expect_restore_refused(env, env.tmp / "missing", b, "missing")
    empty = env.tmp / "empty"
    empty.mkdir()
    expect_restore_refused(env, empty, b, "empty or not a cocoon checkpoint")

    trunc = damaged_copy(env, good, "trunc")
    pages = sorted(trunc.glob("pages-*.img"))[0]
    with open(pages, "r+b") as f:
        f.truncate(pages.stat().st_size // 2)
    expect_restore_refused(env, trunc, b, "truncated")

    corrupt = damaged_copy(env, good, "corrupt")
    pages = sorted(corrupt.glob("pages-*.img"))[0]
    with open(pages, "r+b") as f:
        f.seek(4096)
        f.write(b"\xde\xad\xbe\xef" * 256)
    expect_restore_refused(env, corrupt, b, "checksum mismatch")

    nopstree = damaged_copy(env, good, "nopstree")
    (nopstree / "pstree.img").unlink()
    expect_restore_refused(env, nopstree, b, "pstree.img")

    other = damaged_copy(env, good, "other")
    meta = json.loads((other / "cocoon.json").read_text())
    meta["version"] = "0.0.1-other"
    (other / "cocoon.json").write_text(json.dumps(meta))
    expect_restore_refused(env, other, b, "was made by cocoon 0.0.1-other")

    # After all that, the good images still restore.
    out = restored(env, "fine", good, b)
    assert wait_for(lambda: len(lines(out)) >= 1, timeout=60)
    finish(env, "fine")


def crit(*args, stdin=None):
    """CRIU's own image tool (Debian's criu package, on the host)."""
    r = subprocess.run(["crit", *args], input=stdin, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def relist(images, name):
    """cocoon.json's size and xxh3 of a file changed on purpose, so that only
    what the test means to show is wrong with the images (XXH3_64bits of
    libxxhash, which cocoon links; printed as cocoon prints it)."""
    import ctypes
    import ctypes.util
    lib = ctypes.CDLL(ctypes.util.find_library("xxhash") or "libxxhash.so.0")
    lib.XXH3_64bits.restype = ctypes.c_uint64
    lib.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    data = (images / name).read_bytes()
    meta = json.loads((images / "cocoon.json").read_text())
    meta["files"][name] = {"size": len(data), "xxh3": "%016x" % lib.XXH3_64bits(data, len(data))}
    (images / "cocoon.json").write_text(json.dumps(meta))


@pytest.mark.skipif(shutil.which("crit") is None, reason="crit (Debian package criu) is not installed")
def test_restore_into_the_guests_own_namespaces_is_refused(env, good_images):
    # Images whose init shared the dumping CRIU's pid (or mount) namespace
    # would be restored into the agent's: made here by giving inventory.img's
    # root_ids the init's own namespace id, the file otherwise valid. cocoon
    # refuses them before any VM starts, naming the namespace (images-ns.h);
    # before, CRIU tried and failed with its own words.
    b, good = good_images
    for ns, field in (("pid", "pid_ns_id"), ("mount", "mnt_ns_id")):
        bad = damaged_copy(env, good, f"own-{ns}")
        init = json.loads(crit("decode", "-i", str(bad / "pstree.img")))["entries"][0]["pid"]
        ids = json.loads(crit("decode", "-i", str(bad / f"ids-{init}.img")))["entries"][0]
        inv = json.loads(crit("decode", "-i", str(bad / "inventory.img")))
        assert inv["entries"][0]["root_ids"][field] != ids[field], "the good images share it already"
        inv["entries"][0]["root_ids"][field] = ids[field]
        crit("encode", "-o", str(bad / "inventory.img"), stdin=json.dumps(inv))
        relist(bad, "inventory.img")
        t0 = time.monotonic()
        expect_restore_refused(env, bad, b, f"ran in the guest's own {ns} namespace")
        assert time.monotonic() - t0 < 20, "the refusal waited for a VM"
    # The same images, untouched, restore.
    out = restored(env, "fine", good, b)
    assert wait_for(lambda: len(lines(out)) >= 1, timeout=60)
    finish(env, "fine")


def expect_untouched(env, cid, out, before, paused):
    """After a failed checkpoint the container is as it was: paused or
    running, its memory unchanged, its tasks' oom_score_adj their own."""
    assert env.state(cid)["status"] == ("paused" if paused else "running")
    if paused:
        n = len(lines(out))
        time.sleep(2)
        assert len(lines(out)) == n, "a paused container ran on after a failed checkpoint"
        env.run("resume", cid, check=True)
    n = len(lines(out))
    assert wait_for(lambda: len(lines(out)) > n + 1, timeout=30), "the container did not go on"
    assert memhog_hash(out, n) == before
    r = env.run("exec", cid, "cat", "/proc/1/oom_score_adj")
    assert r.stdout.strip() == "0", r.stdout + r.stderr


def dump_256_mib_in_512(env, cid, paused, route, within):
    """A memhog of 256 MiB in a 512 MiB VM, (paused and) checkpointed
    --leave-running by the guest-memory route; the checkpoint must fail
    within the given seconds. Returns (output file, hash before, result)."""
    env.write_config("", vm="memory_mib = 512\n")
    b, out = start(env, cid, ["payload", "memhog", "256"])
    assert wait_for(lambda: len(lines(out)) >= 1, timeout=120)
    before = memhog_hash(out)
    if paused:
        env.run("pause", cid, check=True)
    t0 = time.monotonic()
    r = checkpoint(env, cid, env.tmp / "ck", "--leave-running", "--bench-route", route, check=False)
    assert time.monotonic() - t0 < within
    assert r.returncode != 0
    return out, before, r


@pytest.mark.parametrize("paused", [False, True])
def test_dump_that_cannot_fit_is_refused_up_front(env, paused):
    # 256 MiB of dirty memory in a 512 MiB VM: the guest-memory route would
    # need the same again. The agent says so before touching anything.
    out, before, r = dump_256_mib_in_512(env, "fit", paused, "tmpfs", within=20)
    m = re.search(r"about (\d+) MiB\) into guest memory first and needs about (\d+) MiB free, "
                  r"but the guest has (\d+) MiB available\. Raise vm.memory_mib", r.stderr)
    assert m, r.stderr
    assert 250 <= int(m.group(1)) <= 270 and int(m.group(3)) < int(m.group(2)), r.stderr
    assert not (env.tmp / "ck").exists()
    expect_untouched(env, "fit", out, before, paused)
    finish(env, "fit")


@pytest.mark.parametrize("paused", [False, True])
def test_guest_out_of_memory_during_dump_is_named(env, paused):
    # The same container, with the up-front check switched off (fault
    # injection): the dump runs the guest out of memory. The container's
    # tasks are protected (oom_score_adj), so the OOM killer ends CRIU,
    # and the container goes on as it was.
    out, before, r = dump_256_mib_in_512(env, "oom", paused, "tmpfs-unchecked", within=45)
    assert "ran out of memory" in r.stderr and "vm.memory_mib" in r.stderr, r.stderr
    assert "ended CRIU, not the container" in r.stderr, r.stderr
    assert not (env.tmp / "ck").exists(), "a failed checkpoint left images behind"
    expect_untouched(env, "oom", out, before, paused)
    # And a checkpoint that fits still works afterwards.
    finish(env, "oom")


def test_container_killed_mid_dump_fails_within_seconds(env, monkeypatch):
    # CRIU used to wait on a task that died under it until its 10-minute
    # deadline. The agent watches the container's tasks (pidfds, the
    # kernel's exit events) while CRIU runs, and stops CRIU as soon as one
    # ends. The kill goes through the shim, which keeps serving while a
    # checkpoint runs. CRIU is held at its post-dump stage (fault
    # injection), the tasks still in its hands, until the test has killed
    # the container: a kill timed by a sleep landed before CRIU took the
    # tasks or after the dump ended, as the machine's speed had it.
    b, out = start(env, "kmd", ["payload", "memhog", "32"])
    assert wait_for(lambda: len(lines(out)) >= 1, timeout=120)
    reached = env.root / "kmd" / "shared" / "cocoon-fault-reached"
    result = {}

    def run_checkpoint():
        result["r"] = checkpoint(env, "kmd", env.tmp / "ck", "--leave-running", check=False)
        result["t"] = time.monotonic()

    monkeypatch.setenv("COCOON_FAULT", "post-dump:stall")
    t = threading.Thread(target=run_checkpoint)
    t.start()
    try:
        assert wait_for(reached.exists, timeout=120, interval=0.05), "CRIU never reached post-dump"
        killed = time.monotonic()
        env.run("kill", "kmd", "KILL", check=True, timeout=10)
    finally:
        t.join(timeout=120)
        monkeypatch.delenv("COCOON_FAULT")
    r = result["r"]
    assert r.returncode != 0, "the checkpoint succeeded though its container was killed: " + r.stdout
    assert result["t"] - killed < 10, f"the error came {result['t'] - killed:.1f} s after the kill"
    # The watch saw it (CRIU waits on its script), not the progress watch.
    assert re.search(r"task \d+ of the container ended during the dump \(killed by SIGKILL\)", r.stderr), r.stderr
    assert "progress" not in r.stderr, r.stderr
    assert not (env.tmp / "ck").exists()
    assert wait_for(lambda: env.state("kmd")["status"] == "stopped")
    finish(env, "kmd")


@pytest.mark.parametrize("paused", [False, True])
def test_stalled_dump_is_stopped_within_seconds(env, monkeypatch, paused):
    # Fault injection (COCOON_FAULT, docs/checkpoint.md): CRIU's post-dump
    # action script waits until CRIU is gone, so CRIU waits on it with the
    # container frozen, using no CPU and writing nothing. The agent's
    # progress watch ends CRIU after 6 s; without it the dump hangs until
    # its 10-minute deadline and the command below times out.
    b, out = start(env, "stall", ["payload", "memhog", "32"])
    assert wait_for(lambda: len(lines(out)) >= 1, timeout=60)
    before = memhog_hash(out)
    if paused:
        env.run("pause", "stall", check=True)
    monkeypatch.setenv("COCOON_FAULT", "post-dump:stall")
    t0 = time.monotonic()
    r = env.run("checkpoint", "--image-path", str(env.tmp / "ck"), "--leave-running", "stall", timeout=120)
    took = time.monotonic() - t0
    monkeypatch.delenv("COCOON_FAULT")
    assert r.returncode != 0, "the stalled dump succeeded: " + r.stdout
    assert "criu dump stopped: CRIU made no progress for 6 s" in r.stderr, r.stderr
    assert took < 40, f"the stalled dump took {took:.1f} s to fail"
    assert not (env.tmp / "ck").exists(), "a failed checkpoint left images behind"
    expect_untouched(env, "stall", out, before, paused)
    # And the next checkpoint works.
    checkpoint(env, "stall", env.tmp / "ck2", "--leave-running")
    finish(env, "stall")


def restore_with_fault(env, monkeypatch, cid, images, fault, success):
    """The restore of good_images as CID with COCOON_FAULT=FAULT set: it must
    fail (SUCCESS: the message when it does not). Returns its stderr and
    how many seconds it took."""
    b, good = images
    monkeypatch.setenv("COCOON_FAULT", fault)
    t0 = time.monotonic()
    rc, out, err = restore(env, cid, good, b)
    took = time.monotonic() - t0
    monkeypatch.delenv("COCOON_FAULT")
    assert rc != 0, success
    return err.read_text(), took


def expect_restore_gone_and_images_fine(env, cid, images):
    """After a failed restore: no state and no QEMU left of CID, and the same
    images restore without the fault."""
    b, good = images
    assert not (env.root / cid).exists(), "a failed restore left state behind"
    assert cid not in env.run("list", "-q").stdout.split()
    assert qemu_pids(str(env.tmp)) == []
    assert pids_mentioning(str(env.root / cid)) == [], "a shim or virtiofsd was left"
    out = restored(env, "fine", good, b)
    assert wait_for(lambda: len(lines(out)) >= 1, timeout=60)
    finish(env, "fine")


def test_restore_that_stalls_fails_within_seconds(env, monkeypatch, good_images):
    # Fault injection: CRIU waits on its post-restore action script, which
    # waits until CRIU is gone; the restored tasks wait on CRIU. No CPU
    # used, nothing logged: the restore watch ends CRIU after 6 s. Without
    # it the restore waits for its 5-minute deadline.
    text, took = restore_with_fault(env, monkeypatch, "rs", good_images, "post-restore:stall",
                                    "the restore succeeded despite the stall")
    assert "criu restore stopped: CRIU made no progress for 6 s" in text, text
    assert took < 90, f"the stalled restore took {took:.1f} s to fail"
    expect_restore_gone_and_images_fine(env, "rs", good_images)


def test_task_killed_during_restore_leaves_nothing_behind(env, monkeypatch, good_images):
    # Fault injection: CRIU's post-restore action script SIGKILLs the
    # restored init before CRIU resumes the tree, as an OOM kill would. The
    # restore fails within seconds naming the task that ended, and leaves no
    # state, shim, QEMU or virtiofsd; the same images then restore.
    text, took = restore_with_fault(env, monkeypatch, "rk", good_images, "post-restore:kill",
                                    "the restore succeeded though its init was killed")
    assert "restore rk: criu restore failed: task" in text and "ended during the restore" in text, text
    # Seen by the agent (the kernel's exit events), not waited out: CRIU
    # would wait for the dead init without end (restore-job.c,
    # restored_task_lost), whichever of its two ways it took.
    assert "the agent ended CRIU at once" in text and "progress" not in text, text
    assert took < 60, f"the failed restore took {took:.1f} s"
    expect_restore_gone_and_images_fine(env, "rk", good_images)


def test_restore_into_a_vm_too_small_names_memory(env):
    # 320 MiB restored into a 256 MiB VM: the restorer's mmap gets ENOMEM
    # (CRIU says "Can't restore 0x... mapping with 0xfffffffffffffff4"), or
    # the OOM killer ends CRIU or a restored task (the agent counts the
    # kernel's OOM kills during the restore and follows CRIU's tasks through
    # the kernel's exit events). Either way the error names memory.
    env.write_config("", vm="memory_mib = 1024\n")
    b, out = start(env, "big", ["payload", "memhog", "320"])
    assert wait_for(lambda: len(lines(out)) >= 1, timeout=120)
    checkpoint(env, "big", env.tmp / "ck")
    env.write_config("", vm="memory_mib = 256\n")
    t0 = time.monotonic()
    rc, out2, err = restore(env, "small", env.tmp / "ck", b)
    took = time.monotonic() - t0
    text = err.read_text()
    assert rc != 0, "320 MiB were restored into a 256 MiB VM"
    assert "ran out of memory during the restore" in text and "vm.memory_mib" in text, text
    assert took < 120, f"the restore took {took:.1f} s to fail"
    assert not (env.root / "small").exists(), "a failed restore left state behind"
    # In a VM large enough the same images restore, memory intact.
    env.write_config("", vm="memory_mib = 1024\n")
    out3 = restored(env, "again", env.tmp / "ck", b)
    assert wait_for(lambda: memhog_hash(out3) is not None, timeout=120)
    assert memhog_hash(out3) == memhog_hash(out)
    finish(env, "big", "again")


def test_full_disk_mid_checkpoint_leaves_container_running(env):
    small = env.tmp / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(small)], check=True)
    try:
        b, out = start(env, "full", ["payload", "memhog", "32"])
        assert wait_for(lambda: len(lines(out)) >= 1, timeout=60)
        r = checkpoint(env, "full", small / "ck", check=False)
        assert r.returncode != 0
        assert "No space left on device" in r.stderr, r.stderr
        assert list(small.iterdir()) == [], "a partial checkpoint was left behind"
        assert env.state("full")["status"] == "running"
        n = len(lines(out))
        assert wait_for(lambda: len(lines(out)) > n + 1), "the container did not go on"
    finally:
        subprocess.run(["umount", "-l", str(small)])
    finish(env, "full")


def test_vm_killed_during_checkpoint(env):
    b, out = start(env, "vk", ["payload", "memhog", "64"])
    assert wait_for(lambda: len(lines(out)) >= 1, timeout=60)
    result = {}

    def run_checkpoint():
        result["r"] = checkpoint(env, "vk", env.tmp / "ck", check=False)

    t = threading.Thread(target=run_checkpoint)
    t.start()
    time.sleep(1.0)
    for pid in qemu_pids(str(env.root / "vk")):
        os.kill(pid, 9)
    t.join(timeout=300)
    r = result["r"]
    assert r.returncode != 0
    assert "vk" in r.stderr
    assert not (env.tmp / "ck").exists(), "a partial checkpoint was published"
    assert wait_for(lambda: env.state("vk")["status"] == "stopped")
    finish(env, "vk")


def test_two_checkpoints_at_once_are_serialized(env):
    b, out = start(env, "two", ["payload", "counter", "100"])
    results = []

    def one(i):
        results.append(checkpoint(env, "two", env.tmp / f"ck{i}", "--leave-running", check=False))

    ts = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=600)
    ok = [r for r in results if r.returncode == 0]
    refused = [r for r in results if r.returncode != 0]
    assert len(ok) >= 1
    for r in refused:
        assert "another checkpoint is in progress" in r.stderr, r.stderr
    for i in range(2):
        p = env.tmp / f"ck{i}"
        assert not p.exists() or (p / "cocoon.json").exists(), "a partial checkpoint"
    assert env.state("two")["status"] == "running"
    finish(env, "two")
