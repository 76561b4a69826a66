"""Hostile-guest cases (test_hostile.py): a pod whose guest reads some of
its requests and never answers them (a member's, the sandbox's own): the
pod's keeper goes on serving the others."""
import json
import os
import subprocess
import time

from cases_pod import cocoon_pids_of, member_bundle, shim_pid
from hostile_env import COCOON, Env, case


@case
def a_member_the_guest_ignores_does_not_wedge_the_pod():
    """rev hostile5 F4: the keeper sent a member's requests to the agent and
    waited for the answer (agent_call, 30 s), serving nothing meanwhile. A
    guest that reads every request for member m1 and answers none but its
    create and start (its pause, and with linux.cgroupsPath its shim's
    stats ask every 2 s) held
    the keeper, and so every other container of the pod: m2's start, exec,
    pause and kill and the sandbox's kill each waited out the timeout. Now
    the keeper sends each member request on and takes the answer when it
    comes, within its own bound: the others are served at once, and m1's
    pause fails naming the request and the time."""
    with Env("member-silent") as env:
        env.create("sb")
        pid = shim_pid(env, "sb")
        b1 = member_bundle(env, "b1", pid)
        root = os.geteuid() == 0 and (os.path.exists("/sys/fs/cgroup/cgroup.controllers")
                                      or os.path.isdir("/sys/fs/cgroup/memory"))
        if root:
            with open(os.path.join(b1, "config.json")) as f:
                spec = json.load(f)
            spec["linux"]["cgroupsPath"] = f"/cocoon-hostile-m1-{os.getpid()}"
            with open(os.path.join(b1, "config.json"), "w") as f:
                json.dump(spec, f)
        for m, b in (("m1", b1), ("m2", member_bundle(env, "b2", pid))):
            rc, err, _ = env.cocoon("create", "--bundle", b, m)
            assert rc == 0, f"member {m}: {err!r}"
        rc, err, _ = env.cocoon("start", "m1")
        assert rc == 0, f"start m1: {err!r}"
        with open(os.path.join(env.tmp, "pause-m1.err"), "wb") as perr:
            pause = subprocess.Popen([COCOON, "--root", env.root, "pause", "m1"],
                                     stdout=subprocess.DEVNULL, stderr=perr, env=env.env())
        try:
            deadline = time.time() + 10
            while time.time() < deadline and "swallowed m1 pause" not in env.log_text():
                time.sleep(0.05)
            assert "swallowed m1 pause" in env.log_text(), f"m1's pause never reached the guest: {env.log_text()}"
            if root:
                while time.time() < deadline and "swallowed m1 stats" not in env.log_text():
                    time.sleep(0.05)
                assert "swallowed m1 stats" in env.log_text(), "m1's shim never asked for figures"
            took = {}
            for cmd in (("start", "m2"), ("exec", "m2", "true"), ("pause", "m2"), ("resume", "m2"),
                        ("kill", "sb", "USR1"), ("kill", "m2", "KILL")):
                rc, err, t = env.cocoon(*cmd, timeout=60)
                took[" ".join(cmd[:2])] = t
                assert rc == 0, f"{' '.join(cmd)}: rc {rc} after {t:.1f} s: {err!r}"
                assert t < 5, f"{' '.join(cmd)} took {t:.1f} s while the guest ignores m1"
            rc = pause.wait(timeout=40)
            with open(os.path.join(env.tmp, "pause-m1.err"), "rb") as f:
                perr_text = f.read()
            assert rc != 0 and b"pause m1: the agent did not answer within 28000 ms" in perr_text, \
                f"m1's pause: rc {rc} {perr_text!r}"
        finally:
            if pause.poll() is None:
                pause.kill()
                pause.wait()
        for cid in ("m1", "m2", "sb"):
            rc, err, t = env.cocoon("delete", "--force", cid, timeout=40)
            assert rc == 0 and t < 10, f"delete --force {cid}: rc {rc} in {t:.1f} s: {err!r}"
        assert cocoon_pids_of(env.root) == [], "a shim or keeper of the pod is left"
        return ", ".join(f"{k} {v:.2f} s" for k, v in took.items()) + \
            f"; m1's stats asked{'' if root else ' (not: no cgroups here)'}"


@case
def a_sandbox_the_guest_ignores_does_not_wedge_the_pod():
    """rev hostile8: the keeper sent the sandbox's OWN requests (pause, ps,
    exec, kill, update, stats of the sandbox) to the agent and waited for
    the answer (agent_call, 30 s), serving nothing meanwhile: a guest that
    swallowed the sandbox's pause held every member of the pod that long
    (m1's start waited out the pause). Now they take the members' path
    (shim-forward.c): sent, answered when the reply comes or with an error
    at 28 s, and the members are served meanwhile."""
    with Env("sandbox-silent") as env:
        env.create("sb")
        pid = shim_pid(env, "sb")
        for m in ("m1", "m2"):
            rc, err, _ = env.cocoon("create", "--bundle", member_bundle(env, f"b{m}", pid), m)
            assert rc == 0, f"member {m}: {err!r}"
        with open(os.path.join(env.tmp, "pause-sb.err"), "wb") as perr:
            t0 = time.time()
            pause = subprocess.Popen([COCOON, "--root", env.root, "pause", "sb"],
                                     stdout=subprocess.DEVNULL, stderr=perr, env=env.env())
        try:
            deadline = time.time() + 10
            while time.time() < deadline and "swallowed sb pause" not in env.log_text():
                time.sleep(0.05)
            assert "swallowed sb pause" in env.log_text(), f"sb's pause never reached the guest: {env.log_text()}"
            took = {}
            for cmd in (("start", "m1"), ("exec", "m1", "true"), ("pause", "m1"), ("resume", "m1"),
                        ("start", "m2"), ("kill", "m1", "KILL")):
                rc, err, t = env.cocoon(*cmd, timeout=60)
                took[" ".join(cmd[:2])] = t
                assert rc == 0, f"{' '.join(cmd)}: rc {rc} after {t:.1f} s: {err!r}"
                assert t < 5, f"{' '.join(cmd)} took {t:.1f} s while the guest ignores sb's pause"
            assert pause.poll() is None, "sb's pause was answered, though the guest swallowed it"
            rc = pause.wait(timeout=40)
            waited = time.time() - t0
            with open(os.path.join(env.tmp, "pause-sb.err"), "rb") as f:
                perr_text = f.read()
            assert rc != 0 and b"pause sb: the agent did not answer within 28000 ms" in perr_text, \
                f"sb's pause: rc {rc} {perr_text!r}"
            assert 27 < waited < 35, f"sb's pause failed after {waited:.1f} s, not at its 28 s bound"
        finally:
            if pause.poll() is None:
                pause.kill()
                pause.wait()
        for cid in ("m1", "m2", "sb"):
            rc, err, t = env.cocoon("delete", "--force", cid, timeout=40)
            assert rc == 0 and t < 10, f"delete --force {cid}: rc {rc} in {t:.1f} s: {err!r}"
        assert cocoon_pids_of(env.root) == [], "a shim or keeper of the pod is left"
        return ", ".join(f"{k} {v:.2f} s" for k, v in took.items()) + f"; sb's pause failed at {waited:.1f} s"
