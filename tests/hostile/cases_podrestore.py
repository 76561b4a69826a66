"""Hostile-guest cases (test_hostile.py): restore --pod of a checkpoint
directory that is not to be trusted (one budget for the whole pod, each
container's directory used through the descriptor that was verified)."""
import json
import os
import threading
import time

from cases_pod import cocoon_pids_of, member_bundle, shim_pid
from hostile_env import Env, case, good_images


def pod_checkpoint(env, members):
    """A pod (sandbox sb and MEMBERS) checkpointed with --pod into
    env.tmp/podck, its containers then deleted; returns the directory."""
    env.create("sb")
    pid = shim_pid(env, "sb")
    for m in members:
        rc, err, _ = env.cocoon("create", "--bundle", member_bundle(env, f"b-{m}", pid), m)
        assert rc == 0, f"member {m}: {err!r}"
        rc, err, _ = env.cocoon("start", m)
        assert rc == 0, f"start {m}: {err!r}"
    podck = os.path.join(env.tmp, "podck")
    rc, err, _ = env.cocoon("checkpoint", "--pod", "--image-path", podck, "sb", timeout=60)
    assert rc == 0, f"checkpoint --pod: {err!r}"
    for c in members + ["sb"]:
        env.cocoon("delete", "--force", c)
    return podck


@case
def pod_restore_checks_every_directory_before_a_vm_starts():
    """rev hostile5 G1: restore --pod verified each container's directory
    just before restoring it, each within a verify_timeout_ms of its own,
    after the containers before it had booted: a pod of N took N times the
    bound, and a damaged last member was found only once the sandbox's VM
    and the other members ran (then torn down again). Now every directory
    is verified before anything boots, within one budget for the pod."""
    with Env("good") as env:
        podck = pod_checkpoint(env, ["m1", "m2"])
        with open(os.path.join(podck, "m2", "cocoon.json")) as f:
            meta = json.load(f)
        name = sorted(meta["files"])[0]
        with open(os.path.join(podck, "m2", name), "r+b") as f:
            b = f.read(1)
            f.seek(0)
            f.write(bytes([b[0] ^ 0xff]) if b else b"x")
        started = len(env.vmm_pids())
        rc, err, took = env.cocoon("restore", "--pod", "--image-path", podck, "sb", mode="restore-ok", timeout=60)
        assert rc not in (0, None) and b"restore m2" in err and b"corrupt" in err, f"rc {rc} {err!r}"
        assert len(env.vmm_pids()) == started, \
            f"{len(env.vmm_pids()) - started} VM(s) started before the damaged member was found"
        assert took < 10, f"took {took:.1f} s"
        return err.decode(errors="replace").strip()[:200]


@case
def pod_restore_uses_the_directory_it_verified():
    """rev hostile5 G3: restore --pod checked DIR/<id> by path (lstat,
    realpath, then the images by path) and the member's shim bound the
    images into the pod share by path again: a directory swapped for a
    symlink to another checkpoint on this host between those calls was
    shared into the restored VM, with that container's memory. Now each
    directory is opened once (O_NOFOLLOW), verified through that fd, and
    the VM's shares are made from the fd (/proc/<pid>/fd/N); a swap is
    refused by name. Raced here: DIR/m1 flips between itself and a symlink
    to a victim checkpoint while restore --pod runs, again and again; the
    guest reports the inode of the images it was given."""
    with Env("good") as env:
        victim = good_images(env)
        podck = pod_checkpoint(env, ["m1"])
        env.cocoon("delete", "--force", "src")
        m1, real = os.path.join(podck, "m1"), os.path.join(podck, "m1.real")
        inodes = {"m1": os.stat(m1).st_ino, "victim": os.stat(victim).st_ino}
        stop, flips = threading.Event(), [0]

        def swap():
            while not stop.is_set():
                os.rename(m1, real)
                os.symlink(victim, m1)
                time.sleep(0.0005)
                os.unlink(m1)
                os.rename(real, m1)
                flips[0] += 1
                time.sleep(0.0005)
        outcomes, t = [], threading.Thread(target=swap, daemon=True)
        t.start()
        try:
            deadline = time.time() + 20
            while time.time() < deadline and len(outcomes) < 30:
                before = env.log_text().count("restore images inode ")
                rc, err, took = env.cocoon("restore", "--pod", "--image-path", podck, "sb",
                                           mode="restore-ok", timeout=60)
                assert rc is not None and took < 20, f"restore --pod took {took:.1f} s"
                got = [int(x.split()[-1]) for x in env.log_text().splitlines()
                       if x.startswith("restore images inode ")][before:]
                assert inodes["victim"] not in got, \
                    f"round {len(outcomes)}: the victim's checkpoint was shared into the VM ({got})"
                outcomes.append("ok" if rc == 0 else err.decode(errors="replace").strip().splitlines()[-1][:120])
                for c in ("m1", "sb"):
                    env.cocoon("delete", "--force", c)
        finally:
            stop.set()
            t.join()
            if os.path.islink(m1):
                os.unlink(m1)
            if os.path.isdir(real):
                os.rename(real, m1)
        assert outcomes, "no round ran"
        refused = [o for o in outcomes if o != "ok"]
        for o in refused:
            assert "m1" in o, f"a refusal that does not name m1: {o}"
        return f"{len(outcomes)} rounds, {flips[0]} flips: {len(outcomes) - len(refused)} restored " \
               f"(with m1's own images), {len(refused)} refused, e.g. {refused[:1]}"


@case
def pod_restore_leaves_no_image_directory_open_in_its_shims():
    """rev hostile8: each shim of a restored pod is a fork of the restore
    command, which holds every container's image directory open (each VM
    share and member share is made from those fds): every shim kept all of
    them, the pod's directory too, for its whole life. Harmless (O_CLOEXEC:
    QEMU never got them) but untidy: a member's shim held the other
    members' images. Now no shim or keeper of the pod holds any."""
    with Env("good") as env:
        podck = pod_checkpoint(env, ["m1", "m2"])
        rc, err, _ = env.cocoon("restore", "--pod", "--image-path", podck, "sb", mode="restore-ok", timeout=60)
        assert rc == 0, f"restore --pod: {err!r}"
        pids = cocoon_pids_of(env.root)
        assert len(pids) >= 3, f"shims of the restored pod: {pids}"
        held = []
        for pid in pids:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target == podck or target.startswith(podck + "/"):
                    held.append(f"{pid}: fd {fd} -> {target}")
        for c in ("m1", "m2", "sb"):
            env.cocoon("delete", "--force", c)
        assert not held, f"{len(held)} image directories held by the pod's shims: {held[:4]}"
        return f"{len(pids)} shims and keepers of the restored pod, none holds {podck}"
