"""A guest that goes quiet during a checkpoint or a restore: its VM's
owner (the shim) hears no word of progress for limits.checkpoint_silence_ms
and fails the command at once, instead of waiting out the guest's own
last-resort deadline (minutes). The guest is wedged by stopping its QEMU
(SIGSTOP), as a hung host or a guest kernel that stops scheduling would.
A checkpoint's reply that comes once the guest wakes is undone: no images
are left, and the container is as it was, running or paused."""
import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import COCOON, qemu_pids, wait_for
from test_checkpoint import checkpoint, finish, lines, restore, start
from test_checkpoint_failures import expect_restore_gone_and_images_fine, good_images  # noqa: F401

SILENCE_MS = 5000
# The silence, then the command's own start and the reply's way back.
WITHIN_S = SILENCE_MS / 1000 + 5


def quiet_config(env):
    env.write_config(f"[limits]\ncheckpoint_silence_ms = {SILENCE_MS}\n")


def the_qemu(env, cid):
    pids = qemu_pids(str(env.root / cid))
    assert len(pids) == 1, f"QEMU of {cid}: {pids}"
    return pids[0]


def shared_checkpoints(env, cid):
    d = env.root / cid / "shared" / "checkpoints"
    return sorted(os.listdir(d)) if d.exists() else []


def wedged_checkpoint(env, monkeypatch, cid, mid_dump):
    """The checkpoint of CID (without --leave-running: the container is kept
    frozen until the images are safe) with its QEMU stopped: before the
    request reaches the guest, or (MID_DUMP) once CRIU has dumped and waits
    at its post-dump stage (fault injection). Returns (returncode, stderr,
    seconds from the stop to the error, QEMU pid), QEMU still stopped."""
    qemu = the_qemu(env, cid)
    reached = env.root / cid / "shared" / "cocoon-fault-reached"
    if mid_dump:
        monkeypatch.setenv("COCOON_FAULT", "post-dump:stall")
    else:
        os.kill(qemu, signal.SIGSTOP)
    t0 = time.monotonic()
    p = subprocess.Popen([str(COCOON), "--root", str(env.root), "--config", str(env.config),
                          "checkpoint", "--image-path", str(env.tmp / "ck"), cid],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    monkeypatch.delenv("COCOON_FAULT", raising=False)  # the checkpoint has it
    try:
        if mid_dump:
            assert wait_for(reached.exists, timeout=120, interval=0.05), "CRIU never reached post-dump"
            os.kill(qemu, signal.SIGSTOP)
            t0 = time.monotonic()
        # Without the silence bound this waits for the shim's 15 minutes.
        out, err = p.communicate(timeout=60)
        took = time.monotonic() - t0
    except BaseException:
        p.kill()
        p.wait()
        os.kill(qemu, signal.SIGCONT)
        raise
    return p.returncode, err, took, qemu


@pytest.mark.parametrize("mid_dump", [False, True], ids=["before-dump", "mid-dump"])
@pytest.mark.parametrize("paused", [False, True], ids=["running", "paused"])
def test_wedged_guest_fails_checkpoint_and_container_is_kept(env, monkeypatch, paused, mid_dump):
    quiet_config(env)
    cid = "wedge"
    b, out = start(env, cid, ["payload", "counter", "100"])
    assert wait_for(lambda: len(lines(out)) >= 3, timeout=60)
    if paused:
        env.run("pause", cid, check=True)
    rc, err, took, qemu = wedged_checkpoint(env, monkeypatch, cid, mid_dump)
    try:
        assert rc != 0, "the checkpoint of a wedged guest succeeded"
        assert took < WITHIN_S, f"the checkpoint took {took:.1f} s to fail (silence bound {SILENCE_MS} ms)"
        assert f"checkpoint {cid}: no word from the guest for" in err, err
        assert f"(limits.checkpoint_silence_ms = {SILENCE_MS})" in err, err
        assert "no images are published" in err, err
        # The last stage heard: mid-dump, the agent's word that CRIU dumps;
        # before it, none.
        if mid_dump:
            assert 'the last stage heard was "dump"' in err, err
        else:
            assert "it never reported the checkpoint as started" in err, err
        assert not (env.tmp / "ck").exists(), "a failed checkpoint published images"
    finally:
        os.kill(qemu, signal.SIGCONT)
    # The guest wakes and answers: the dump done (before-dump) or stopped
    # by the agent's own stall watch (mid-dump). The shim undoes it.
    log = env.tmp / f"{cid}.err"
    assert wait_for(lambda: "after the host had given up on it" in log.read_text(), timeout=90), \
        "the guest's late answer was never seen: " + log.read_text()
    assert shared_checkpoints(env, cid) == [], "the late checkpoint's images were left"
    assert not (env.tmp / "ck").exists(), "a late checkpoint published images"
    # As it was: paused stays paused, running runs on (an exit-mode
    # checkpoint that succeeded late left it frozen: thawed).
    assert env.state(cid)["status"] == ("paused" if paused else "running")
    if paused:
        n = len(lines(out))
        time.sleep(2)
        assert len(lines(out)) == n, "a paused container ran on after the failed checkpoint"
        env.run("resume", cid, check=True)
    n = len(lines(out))
    assert wait_for(lambda: len(lines(out)) > n + 5, timeout=30), "the container did not go on"
    # And a checkpoint of it works again.
    checkpoint(env, cid, env.tmp / "ck2", "--leave-running")
    finish(env, cid)


def test_wedged_guest_fails_restore_and_leaves_nothing(env, monkeypatch, good_images):  # noqa: F811
    # CRIU is held at its post-restore stage (fault injection) and QEMU
    # stopped there: the shim hears nothing for the silence bound and fails
    # the restore; the VM, its shim and virtiofsd go, and no state is left.
    quiet_config(env)
    b, good = good_images
    cid = "rwedge"
    reached = env.root / cid / "shared" / "cocoon-fault-reached"
    stopped = []

    def stop_at_fault():
        if not reached.exists():
            return False
        qemu = the_qemu(env, cid)
        os.kill(qemu, signal.SIGSTOP)
        stopped.append((qemu, time.monotonic()))
        return True

    monkeypatch.setenv("COCOON_FAULT", "post-restore:stall")
    result = {}

    def run_restore():
        result["r"] = restore(env, cid, good, b)
        result["t"] = time.monotonic()

    t = threading.Thread(target=run_restore)
    t.start()
    try:
        assert wait_for(stop_at_fault, timeout=120, interval=0.05), "CRIU never reached post-restore"
        t.join(timeout=60)
        assert not t.is_alive(), "the restore of a wedged guest did not end within 60 s"
    finally:
        monkeypatch.delenv("COCOON_FAULT")
        for qemu, _ in stopped:
            try:
                os.kill(qemu, signal.SIGCONT)
            except ProcessLookupError:
                pass
        t.join(timeout=120)
    rc, out, err = result["r"]
    took = result["t"] - stopped[0][1]
    text = err.read_text()
    assert rc != 0, "the restore of a wedged guest succeeded"
    assert f"restore {cid}: no word from the guest for" in text, text
    assert f"(limits.checkpoint_silence_ms = {SILENCE_MS})" in text, text
    assert 'the last stage heard was "restore"' in text, text
    # The silence, then the VM's shutdown (2 s for the agent, 3 s for QEMU).
    assert took < WITHIN_S + 6, f"the restore took {took:.1f} s to fail after the guest was wedged"
    assert qemu_pids(str(env.root / cid)) == [], "the wedged VM was left"
    expect_restore_gone_and_images_fine(env, cid, good_images)
