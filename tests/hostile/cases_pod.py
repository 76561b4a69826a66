"""Hostile-guest cases (test_hostile.py): pods (a full pod, the pod's VM and
its keeper, members killed or deaf, the pod share)."""
import json
import os
import signal
import subprocess
import threading
import time

from hostile_env import COCOON, Env, alive, case


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
    the container, stdin waits in its pipe, a kill the agent cannot take
    ends the VM within that bound, and delete leaves nothing."""
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
        # The owner still serves: kill is answered within the bound; the
        # agent takes no kill (it reads nothing), so the VM is ended
        # instead (rev hostile5 G4; before, kill failed with the stall).
        rc, err, took = env.cocoon("kill", "c1", "KILL", timeout=40)
        assert rc is not None, "cocoon kill hung (> 40 s)"
        assert took < 5, f"kill took {took:.1f} s: {err!r}"
        assert rc == 0, f"kill: rc {rc} {err!r}"
        time.sleep(0.5)
        with open(err_path, "rb") as f:
            assert b"its VM is stopped instead" in f.read(), "the kill's fate is not logged"
        rc, derr, took = env.cocoon("delete", "--force", "c1", timeout=40)
        assert rc == 0 and took < 10, f"delete --force: rc {rc} in {took:.1f} s: {derr!r}"
        os.close(w)
        time.sleep(0.5)
        assert not [q for q in env.vmm_pids() if alive(q)], "the VMM outlived delete"
        assert cocoon_pids_of(env.root) == [], f"left running: {cocoon_pids_of(env.root)}"
        assert not os.path.exists(os.path.join(env.root, "c1")), "the state directory is left"
        return f"fed {fed[0] >> 10} KiB; {logged.decode(errors='replace').strip().splitlines()[-1][:200]}"


def stopped_member_flood(env, kerr):
    """The guest floods stopped member m1: the keeper gives m1's connection
    up, kills m1 in the VM and serves the pod. Returns when the flood was
    taken, and the keeper's log."""
    # The guest's 8 MiB for m1 are taken within moments of the timeout.
    deadline = time.time() + 15
    while time.time() < deadline and "flooded m1" not in env.log_text():
        time.sleep(0.1)
    flooded = time.time()
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
    return flooded, klog


@case
def a_member_that_reads_nothing_does_not_stall_its_pod():
    """rev11b F5: the keeper sends a member's events to the member's shim
    over a socket that waits at most its send timeout. A member's shim that
    reads its connection no more (until issue 11 L1, one blocked on an
    unread stdout; now one that is stopped, SIGSTOP here) had a frame cut at
    the timeout, which desynchronised its stream, and every further event
    held the keeper, and so the whole pod, for the timeout again. Now the
    frame goes whole or the connection is closed: the keeper logs it, kills
    the member's container in the VM, and serves the pod on; the member's
    shim, woken, reads the end of its connection, never a cut frame, and
    records its container stopped."""
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
        m1_shim = shim_pid(env, "m1")
        os.kill(m1_shim, signal.SIGSTOP)  # the guest floods a second after the start
        try:
            flooded, klog = stopped_member_flood(env, kerr)
        finally:
            os.kill(m1_shim, signal.SIGCONT)
        # Its shim wakes and its engine reads: its shim finds the end of
        # its connection.
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
        return f"8 MiB flood taken in {flooded - t0:.1f} s; {klog.decode(errors='replace').strip().splitlines()[-1][:160]}"


@case
def a_member_whose_engine_reads_nothing_holds_its_output_and_the_pod_runs():
    """issue 11 L1 in a pod: member m1's engine reads none of its output.
    Its shim no longer blocks on the pipe (and so it keeps reading the
    keeper's connection): it queues the flood, asks the guest, through the
    keeper, to hold m1's stdout, and m1 and the pod are served on; the
    keeper never has to give m1's connection up."""
    with Env("member-flood", limits="channel_send_timeout_ms = 1000") as env:
        kerr, merr = os.path.join(env.tmp, "sb-err.txt"), os.path.join(env.tmp, "m1-err.txt")
        with open(os.path.join(env.tmp, "sb-out.txt"), "wb") as out, open(kerr, "wb") as err_f:
            p = subprocess.run([COCOON, "--root", env.root, "create", "--bundle", env.bundle, "sb"],
                               stdin=subprocess.DEVNULL, stdout=out, stderr=err_f, env=env.env(), timeout=30)
        assert p.returncode == 0, "create sb failed"
        rc, err, _ = env.cocoon("start", "sb")
        assert rc == 0, err
        r, w = os.pipe()  # m1's stdout, never read
        with open(merr, "wb") as err_f:
            p = subprocess.run([COCOON, "--root", env.root, "create", "--bundle",
                                member_bundle(env, "bm", shim_pid(env, "sb")), "m1"],
                               stdin=subprocess.DEVNULL, stdout=w, stderr=err_f, env=env.env(), timeout=30)
        os.close(w)
        try:
            assert p.returncode == 0, "create m1 failed"
            rc, err, _ = env.cocoon("start", "m1")
            assert rc == 0, err
            # The guest reads the hold once its flood is sent (it serves
            # nothing meanwhile).
            deadline = time.time() + 10
            while time.time() < deadline and "output_flow hold=1" not in env.log_text():
                time.sleep(0.1)
            assert "flooded m1" in env.log_text(), "m1's shim did not take its output"
            assert "output_flow hold=1" in env.log_text(), "no hold of m1's stdout reached the guest"
            took = {}
            for cid in ("m1", "sb"):
                rc, err, took[cid] = env.cocoon("kill", cid, "USR1", timeout=40)
                assert rc == 0 and took[cid] < 5, f"kill {cid}: rc {rc} in {took[cid]:.1f} s: {err!r}"
            with open(kerr, "rb") as f:
                klog = f.read()
            assert b"a client's connection took" not in klog, klog
            assert state_status(env, "m1") == "running", "m1 went with its unread output"
        finally:
            os.close(r)
        return f"kill m1 {took['m1']:.2f} s, kill sb {took['sb']:.2f} s under m1's unread 8 MiB"
