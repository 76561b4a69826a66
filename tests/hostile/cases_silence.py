"""Hostile-guest cases (test_hostile.py): a guest that goes quiet in a
checkpoint or a restore. The VM's owner (the shim, or a pod's keeper)
fails it once limits.checkpoint_silence_ms go by without a word of its
progress, and undoes a checkpoint's answer that comes later: its images
go, and a container the dump left frozen is thawed."""
import json
import os
import time

from hostile_env import Env, alive, case, good_images
from cases_pod import member_bundle, shim_pid

QUIET = "checkpoint_silence_ms = 3000"


def quiet_checkpoint(env, sb_dir, cid):
    """Checkpoint CID (exit mode) of a guest that goes quiet: it fails within
    the bound naming CID and the setting; the guest's late answer (on the
    next request) is undone in the shared directory of SB_DIR. Returns the
    error."""
    out = os.path.join(env.tmp, "out")
    rc, err, took = env.cocoon("checkpoint", "--image-path", out, cid, timeout=60)
    assert rc is not None, "the checkpoint of a quiet guest hung (> 60 s)"
    assert rc != 0, "the checkpoint of a quiet guest succeeded"
    assert took < 3 + 4, f"took {took:.1f} s to fail, the bound is 3 s"
    for needle in (f"checkpoint {cid}: no word from the guest for", "(limits.checkpoint_silence_ms = 3000)",
                   "never reported the checkpoint as started", "no images are published"):
        assert needle.encode() in err, f"the error lacks {needle!r}: {err!r}"
    assert not os.path.exists(out), "something was left at --image-path"
    ckid = env.log_text().split("checkpoint: quiet ", 1)[1].split()[0]
    # The guest wakes (on the next request) and answers: done, the
    # container left frozen.
    rc, _, _ = env.cocoon("ps", cid, timeout=20)
    deadline = time.time() + 10
    while "pause resume=1" not in env.log_text() and time.time() < deadline:
        time.sleep(0.05)
    assert "checkpoint: late answer" in env.log_text(), "the guest never answered"
    assert "pause resume=1" in env.log_text(), "the container the late dump left frozen was not thawed"
    ckdir = os.path.join(sb_dir, "shared", "checkpoints")
    left = [n for n in os.listdir(ckdir) if n.startswith(ckid)] if os.path.isdir(ckdir) else []
    assert left == [], f"the late checkpoint's images were left: {left}"
    assert not os.path.exists(out), "a late checkpoint was published"
    with open(os.path.join(env.tmp, "st.json"), "wb") as f:
        rc, serr, _ = env.cocoon("state", cid, stdout=f)
    with open(os.path.join(env.tmp, "st.json")) as f:
        assert rc == 0 and json.load(f)["status"] == "running", serr
    return err.decode(errors="replace").strip()


@case
def a_quiet_checkpoint_fails_within_its_bound_and_its_late_answer_is_undone():
    with Env("checkpoint-late", limits=QUIET) as env:
        env.create()
        return quiet_checkpoint(env, os.path.join(env.root, "c1"), "c1")


@case
def a_pod_members_quiet_checkpoint_is_failed_and_undone_by_the_keeper():
    with Env("checkpoint-late", limits=QUIET) as env:
        env.create("sb")
        rc, err, _ = env.cocoon("create", "--bundle", member_bundle(env, "bm", shim_pid(env, "sb")), "m1")
        assert rc == 0, err
        rc, err, _ = env.cocoon("start", "m1")
        assert rc == 0, err
        return quiet_checkpoint(env, os.path.join(env.root, "sb"), "m1")


@case
def word_of_progress_keeps_a_long_checkpoint_going():
    """8 s of dump, a word every half second: longer than the bound, never
    quiet for it."""
    with Env("checkpoint-progress", limits=QUIET) as env:
        env.create()
        out = os.path.join(env.tmp, "out")
        rc, err, took = env.cocoon("checkpoint", "--image-path", out, "--leave-running", "c1", timeout=60)
        assert rc == 0, f"a checkpoint that reported its progress failed: {err!r}"
        assert took > 6, f"took {took:.1f} s: the guest did not take its time"
        assert os.path.isdir(out)


@case
def a_quiet_restore_fails_within_its_bound_and_leaves_nothing():
    with Env("good", limits=QUIET) as env:
        images = good_images(env)
        before = set(env.vmm_pids())
        rc, err, took = env.cocoon("restore", "--image-path", images, "--bundle", env.bundle, "-d", "r1",
                                   mode="restore-hang", timeout=60)
        assert "restore: hanging" in env.log_text(), "the restore never reached the guest"
        assert rc is not None, "the restore of a quiet guest hung (> 60 s)"
        assert rc != 0, "the restore of a quiet guest succeeded"
        # The bound, then the VM's shutdown (at most 2 s + 3 s).
        assert took < 3 + 5 + 3, f"took {took:.1f} s to fail, the bound is 3 s"
        for needle in ("restore r1: no word from the guest for", "(limits.checkpoint_silence_ms = 3000)",
                       "the restore failed and its VM is stopped"):
            assert needle.encode() in err, f"the error lacks {needle!r}: {err!r}"
        vmm = [pid for pid in env.vmm_pids() if pid not in before]
        assert vmm and not any(alive(pid) for pid in vmm), f"the VMM {vmm} still runs"
        assert not os.path.exists(os.path.join(env.root, "r1")), "the state directory is left"


@case
def a_pod_members_quiet_restore_is_failed_by_the_keeper_and_leaves_nothing():
    """The member's restore goes through the pod's keeper, which owns the
    VM and watches it: the member's restore fails within the bound, its
    shim goes, and the pod runs on."""
    with Env("restore-hang", limits=QUIET) as env:
        images = good_images(env)
        env.create("sb")  # its VM hangs in restores
        vmm = env.vmm_pids()
        rc, err, took = env.cocoon("restore", "--image-path", images, "--bundle",
                                   member_bundle(env, "bm", shim_pid(env, "sb")), "-d", "m1", timeout=60)
        assert "restore: hanging" in env.log_text(), "the restore never reached the guest"
        assert rc is not None, "the member's restore of a quiet guest hung (> 60 s)"
        assert rc != 0, "the member's restore of a quiet guest succeeded"
        assert took < 3 + 5, f"took {took:.1f} s to fail, the bound is 3 s"
        for needle in ("restore m1: no word from the guest for", "(limits.checkpoint_silence_ms = 3000)"):
            assert needle.encode() in err, f"the error lacks {needle!r}: {err!r}"
        assert not os.path.exists(os.path.join(env.root, "m1")), "the member's state directory is left"
        with open(os.path.join(env.tmp, "st.json"), "wb") as f:
            rc, serr, _ = env.cocoon("state", "sb", stdout=f)
        assert rc == 0, serr
        assert all(alive(pid) for pid in vmm), "the pod's VM went with its member's restore"
