"""Hostile-guest cases (test_hostile.py): kills answered "delivered" only
when they are (review10 1, 2, 7), and the engine's pipes let go when a
pod's sandbox ends (review10 6). A kill the guest cannot be sent, or that
it refuses without the container's exit, ends the container with its VM;
a single-process kill of a container that has ended fails as runc's does;
output a guest sends after an unanswered kill does not keep its VM."""
import json
import os
import select
import subprocess
import time

from hostile_env import COCOON, Env, alive, case
from cases_pod import cocoon_pids_of, keeper_of, member_bundle, shim_pid


def create_logged(env, cid="c1", stdin=subprocess.DEVNULL, stdout=None, stderr=None):
    """create CID with the shim's log (its stderr) in a file, whose path
    is returned; STDOUT (default: a file) is the engine's pipe."""
    err_path = os.path.join(env.tmp, f"create-{cid}-err.txt")
    with open(os.path.join(env.tmp, f"create-{cid}-out.txt"), "wb") as out, open(err_path, "wb") as err_f:
        p = subprocess.run([COCOON, "--root", env.root, "create", "--bundle", env.bundle, cid],
                           stdin=stdin, stdout=stdout if stdout is not None else out,
                           stderr=stderr if stderr is not None else err_f, env=env.env(), timeout=30)
    assert p.returncode == 0, f"create {cid} failed"
    rc, err, _ = env.cocoon("start", cid)
    assert rc == 0, f"start {cid}: {err!r}"
    return err_path


def status_of(env, cid="c1"):
    out = os.path.join(env.tmp, "state.json")
    with open(out, "wb") as f:
        rc, _, _ = env.cocoon("state", cid, stdout=f)
    with open(out) as f:
        return json.load(f)["status"] if rc == 0 else None


def wait_vm_gone(env, vmm, bound):
    """Seconds until every pid in VMM is gone, or None after BOUND s."""
    t0 = time.time()
    while time.time() - t0 < bound:
        if not any(alive(v) for v in vmm):
            return time.time() - t0
        time.sleep(0.05)
    return None


def wait_stopped(env, cid="c1", bound=5):
    status, deadline = None, time.time() + bound
    while time.time() < deadline and status != "stopped":
        status = status_of(env, cid)
        time.sleep(0.1)
    return status


def read_log(path):
    with open(path, "rb") as f:
        return f.read()


@case
def a_kill_after_a_protocol_violation_is_not_answered_while_the_vm_runs():
    """review10 1: a guest answered `ps` with a reply of the wrong type
    (the channel is broken: every later send fails with EPIPE) and then
    went quiet. The shim served on, and `kill KILL` was answered
    "delivered" from that EPIPE while the VM ran on: no exit ever came.
    Now the broken channel is the VM gone: it is stopped at once, and the
    container recorded stopped; the kill then finds a stopped container."""
    with Env("bad-reply", limits="channel_send_timeout_ms = 1000") as env:
        log = create_logged(env)
        vmm = env.vmm_pids()
        rc, err, _ = env.cocoon("ps", "c1")
        assert rc != 0 and b"wrong message type" in err, f"ps: rc {rc} {err!r}"
        assert "wrong reply type sent" in env.log_text()
        rc, kerr, took = env.cocoon("kill", "c1", "KILL", timeout=60)
        gone = wait_vm_gone(env, vmm, 5)
        assert gone is not None, f"kill: rc {rc} {kerr!r}, and the VM runs on 5 s later"
        assert rc == 0 or b"container c1 is stopped: container not running" in kerr, \
            f"kill: rc {rc} {kerr!r}"
        status = wait_stopped(env)
        assert status == "stopped", f"c1 is {status!r}"
        logged = read_log(log)
        assert b"the agent's channel is broken" in logged and b"its VM is stopped" in logged, logged
        return f"kill: rc {rc} in {took:.2f} s; " + logged.decode(errors="replace").strip().splitlines()[-1]


@case
def a_kill_that_cannot_be_sent_ends_the_container_with_its_vm():
    """review10 1: a guest that reads its channel no more, and an exec
    whose request filled the channel's socket to its send buffer: the
    SIGKILL could not be sent (ETIMEDOUT, "nothing was sent"), `kill`
    failed, and the container could never be killed, only deleted with
    --force. Now a SIGKILL that cannot be sent ends it with its VM, as one
    the agent does not answer (shim_kill_unanswered)."""
    with open("/proc/sys/net/core/wmem_default") as f:
        sndbuf = int(f.read())
    # Two arguments that make one frame just short of the socket's send
    # buffer: sent whole (two skbs of at most half of it each), it leaves
    # no room for another.
    arg = sndbuf // 2 - 2000
    with Env("deaf", limits="channel_send_timeout_ms = 1000") as env:
        log = create_logged(env)
        vmm = env.vmm_pids()
        ex = subprocess.Popen([COCOON, "--root", env.root, "exec", "c1", "echo", "A" * arg, "B" * arg],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env=env.env())
        try:
            time.sleep(0.5)
            rc, err, took = env.cocoon("kill", "c1", "KILL", timeout=60)
        finally:
            ex.kill()
            ex_err = ex.communicate()[1]
        logged = read_log(log)
        assert b"nothing was sent" in logged or b"nothing was sent" in err, \
            f"the kill was sent after all ({sndbuf} bytes of send buffer): the case tested nothing: {err!r} {logged!r}"
        assert rc == 0, f"kill of a container whose guest reads nothing: rc {rc} after {took:.1f} s: {err!r}"
        assert took < 5, f"kill took {took:.1f} s"
        assert wait_vm_gone(env, vmm, 5) is not None, "the VM runs on after its container was killed"
        status = wait_stopped(env)
        assert status == "stopped", f"c1 is {status!r}"
        assert b"nothing was sent; its VM is stopped instead" in logged, logged
        assert b"cut short" not in ex_err, ex_err
        return f"kill answered in {took:.2f} s; " + logged.decode(errors="replace").strip().splitlines()[-1]


@case
def a_kill_the_guest_refuses_without_an_exit_is_not_taken_as_done():
    """review10 2: the guest answers a kill "no such container" (ENOENT),
    as for a container it had freed, but never sent the container's exit,
    which always comes first. The shim answered "delivered" and the VM ran
    on. Now ENOENT counts only after the exit: a SIGTERM gets the guest's
    error, a SIGKILL ends the container with its VM."""
    with Env("kill-enoent", limits="channel_send_timeout_ms = 1000") as env:
        log = create_logged(env)
        vmm = env.vmm_pids()
        rc, err, _ = env.cocoon("kill", "c1", "TERM")
        assert rc != 0 and b"no such container" in err, f"kill TERM: rc {rc} {err!r}"
        assert all(alive(v) for v in vmm), "the VM went with a refused SIGTERM"
        rc, err, took = env.cocoon("kill", "c1", "KILL", timeout=60)
        assert rc == 0, f"kill KILL: rc {rc} after {took:.1f} s: {err!r}"
        assert wait_vm_gone(env, vmm, 5) is not None, "the VM runs on after a SIGKILL the guest refused"
        status = wait_stopped(env)
        assert status == "stopped", f"c1 is {status!r}"
        logged = read_log(log)
        assert b"never sent its exit" in logged and b"its VM is stopped instead" in logged, logged
        return logged.decode(errors="replace").strip().splitlines()[-1]


@case
def a_single_process_kill_of_an_ended_container_fails_as_runcs():
    """review10 2: once the container's exit came, the shim serves on while
    its last output waits for an engine that does not read. A kill then
    was answered "delivered" whatever it asked; runc fails a
    single-process kill of a stopped container ("container not running",
    which containerd reads as "process already finished") and lets a kill
    --all succeed, as cocoon does once the shim is gone."""
    with Env("output-flood", limits="channel_send_timeout_ms = 4000") as env:
        r, w = os.pipe()  # the engine's stdout, never read
        create_logged(env, stdout=w)
        os.close(w)
        deadline = time.time() + 5
        while "output flood" not in env.log_text() and time.time() < deadline:
            time.sleep(0.05)
        assert "output flood" in env.log_text(), "the guest never flooded"
        shim = shim_pid(env, "c1")
        rc, err, _ = env.cocoon("kill", "c1", "KILL", timeout=40)
        assert rc == 0, f"kill KILL: {err!r}"
        rc_one, err_one, _ = env.cocoon("kill", "c1", "TERM")
        rc_all, err_all, _ = env.cocoon("kill", "--all", "c1", "TERM")
        assert alive(shim), "the shim had gone: the case did not test its answers"
        assert rc_one != 0 and b"container c1 is stopped: container not running" in err_one, \
            f"single-process kill after the exit: rc {rc_one} {err_one!r}"
        assert rc_all == 0, f"kill --all after the exit: rc {rc_all} {err_all!r}"
        os.close(r)
        return err_one.decode(errors="replace").strip()


@case
def output_after_an_unanswered_kill_does_not_keep_the_vm():
    """review10 7: a guest that ignores the SIGKILL, with an exec whose
    output floods a client that does not read. The kill was answered
    "delivered" after limits.channel_send_timeout_ms, but the exec's
    output was still taken, and an exec's queue is never dropped while it
    has not ended: the shim served on, and the VM ran, for as long as the
    client did not read. Now nothing is taken after the container ended,
    what is queued is dropped, and the VM is stopped at once."""
    with Env("flood-kill-deaf", limits="channel_send_timeout_ms = 1000") as env:
        create_logged(env)
        vmm = env.vmm_pids()
        r, w = os.pipe()  # the exec's stdout, never read
        ex = subprocess.Popen([COCOON, "--root", env.root, "exec", "c1", "sh"], stdin=subprocess.DEVNULL,
                              stdout=w, stderr=subprocess.DEVNULL, env=env.env())
        os.close(w)
        try:
            deadline = time.time() + 5
            while "output flood" not in env.log_text() and time.time() < deadline:
                time.sleep(0.05)
            assert "output flood" in env.log_text(), "the guest never flooded"
            time.sleep(1)  # the pipe is full, the shim's queue filling
            rc, err, took = env.cocoon("kill", "c1", "KILL", timeout=40)
            assert rc == 0, f"kill: rc {rc} after {took:.1f} s: {err!r}"
            gone = wait_vm_gone(env, vmm, 4)
            assert gone is not None, "the VM runs on 4 s after the kill, while its exec's output waits"
            assert "output flood done" not in env.log_text(), "the flood ended before the VM: the case tested nothing"
            status = wait_stopped(env)
            assert status == "stopped", f"c1 is {status!r}"
        finally:
            ex.kill()
            ex.wait()
            os.close(r)
        return f"kill in {took:.2f} s, the VM gone {gone:.2f} s later"


@case
def a_sandbox_that_ends_lets_go_of_its_engines_pipe_while_members_run():
    """review10 6: the output sinks reopen the engine's pipe (their own
    file description, non-blocking). When a pod's sandbox ended while
    members ran, the keeper put /dev/null over fds 0-2 but kept those
    reopens: the engine's pipe saw no EOF until the last member went
    (containerd's task delete waits on it, conmon until its timeout)."""
    with Env("good") as env:
        r, w = os.pipe()  # the engine's stdout and stderr
        create_logged(env, "sb", stdout=w, stderr=w)
        os.close(w)
        rc, err, _ = env.cocoon("create", "--bundle", member_bundle(env, "bm", shim_pid(env, "sb")), "m1")
        assert rc == 0, err
        rc, err, _ = env.cocoon("start", "m1")
        assert rc == 0, err
        k = keeper_of(env, "sb")
        rc, err, _ = env.cocoon("kill", "sb", "KILL")
        assert rc == 0, err
        eof, deadline = False, time.time() + 5
        while not eof and time.time() < deadline:
            ready, _, _ = select.select([r], [], [], max(0.0, deadline - time.time()))
            eof = bool(ready) and os.read(r, 65536) == b""
        holders = []
        ino = os.fstat(r).st_ino
        for p in cocoon_pids_of(env.root):
            for fd in os.listdir(f"/proc/{p}/fd"):
                try:
                    if os.readlink(f"/proc/{p}/fd/{fd}") == f"pipe:[{ino}]":
                        holders.append(f"{'keeper ' if p == k else ''}{p} fd {fd}")
                except OSError:
                    pass
        os.close(r)
        assert alive(k), "the keeper went with the sandbox while a member runs"
        assert status_of(env, "m1") == "running", "the member did not run on"
        assert eof, f"no EOF on the engine's pipe 5 s after the sandbox ended; held by {holders}"
        return "EOF on the engine's pipe while the member runs"
