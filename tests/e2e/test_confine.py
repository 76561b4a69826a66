"""The container's root is not the guest's root (issue 11): the spec's
capabilities, seccomp filter, masked and read-only paths hold inside the
guest as runc applies them on a host, and survive a checkpoint and a restore
into a fresh VM. A --privileged-style spec still gets everything."""
import json
import pathlib
import subprocess

import pytest

from conftest import COCOON, privileged, qemu_pids, wait_for, write_bundle

# runc spec's capabilities: CAP_KILL (5), CAP_NET_BIND_SERVICE (10),
# CAP_AUDIT_WRITE (29).
DEFAULT_CAPS = f"{(1 << 5) | (1 << 10) | (1 << 29):016x}"

# One syscall the tests' own profile answers with EOPNOTSUPP.
SMALL_PROFILE = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [{"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95}],
}


def lines(path):
    return path.read_text().splitlines() if path.exists() else []


def results(text_lines):
    """The last complete round of `payload escape` as a dict."""
    rounds, cur = [], {}
    for line in text_lines:
        if line == "--":
            rounds.append(cur)
            cur = {}
        elif ":" in line:
            k, v = line.split(":", 1)
            cur[k.strip()] = v.strip()
    if cur and "Seccomp" in cur:
        rounds.append(cur)
    return rounds[-1] if rounds else {}


def start(env, cid, args, extra=None):
    b = write_bundle(env.tmp / f"bundle-{cid}", args, extra=extra)
    rc, out, err = env.create(cid, b)
    assert rc == 0, err.read_text()
    env.run("start", cid, check=True)
    return b, out


def assert_confined(r, seccomp=False):
    assert r["mount-share"] == "EPERM", r
    assert r["mount-tmpfs"] == "EPERM", r
    assert r["finit-module"] == "EPERM", r
    assert r["mknod"] == "EPERM", r
    assert r["chroot"] == "EPERM", r
    assert r["read-kcore"] == "empty", r
    assert r["open-proc-sys-rw"] == "EROFS", r
    assert r["CapEff"] == DEFAULT_CAPS and r["CapBnd"] == DEFAULT_CAPS, r
    # CRIU 3.17 does not carry no_new_privs across a restore (3.19 does,
    # checkpoint-restore/criu#2228): the restored tasks inherit it from
    # their CRIU, which the agent starts with it (docs/confinement.md).
    assert r["NoNewPrivs"] == "1", r
    if seccomp:
        assert r["Seccomp"] == "2" and r["getpriority"] == "EOPNOTSUPP", r


def test_default_capabilities_confine_init_and_exec(env):
    """What `cocoon spec` (runc spec) gives: no mount of the shared
    filesystem, no modules, no device nodes, masked /proc/kcore, read-only
    /proc/sys, runc's three capabilities and no_new_privs."""
    _, out = start(env, "c", ["payload", "escape", "300"])
    assert wait_for(lambda: results(lines(out)))
    assert_confined(results(lines(out)))
    r = env.run("exec", "c", "payload", "escape")
    assert r.returncode == 0, r.stderr
    assert_confined(results(r.stdout.splitlines()))
    # pid 1 in the container's view is its own init, never the agent.
    assert results(lines(out))["kill-1-0"] == "OK"
    env.run("delete", "--force", "c", check=True)


def test_privileged_spec_keeps_every_capability(env):
    _, out = start(env, "p", ["payload", "escape", "300"], extra=privileged)
    assert wait_for(lambda: results(lines(out)))
    r = results(lines(out))
    assert r["mount-tmpfs"] == "OK", r
    assert r["finit-module"] != "EPERM", r
    assert r["mknod"] == "OK", r
    assert r["read-kcore"] != "empty", r
    assert r["CapEff"] == r["CapBnd"] and int(r["CapEff"], 16) >= (1 << 40) - 1, r
    assert r["NoNewPrivs"] == "0" and r["Seccomp"] == "0", r
    env.run("delete", "--force", "p", check=True)


def only_network_namespace(spec):
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] == "network"]


def test_container_without_namespaces_cannot_reach_criu_or_the_agent(env):
    """A spec with no pid, mount, IPC or UTS namespace (podman --pid=host,
    CRI hostPID) gets new ones in the VM: the guest's own hold the agent and
    CRIU. The container keeps sending SIGKILL to every process it may signal
    (kill -1, with runc's CAP_KILL) while a checkpoint runs; CRIU, the
    copier and the agent live on, the checkpoint completes and restores into
    a fresh VM. Before, kill(-1) reached the whole guest but pid 1: CRIU died
    and the checkpoint failed."""
    b = write_bundle(env.tmp / "bundle-k", ["payload", "kill-all", "10"], extra=only_network_namespace)
    rc, out, err = env.create("k", b)
    assert rc == 0, err.read_text()
    for ns in ("pid", "mount"):
        assert f"no {ns} namespace: the container gets a new one" in err.read_text()
    env.run("start", "k", check=True)
    assert wait_for(lambda: any(x.startswith("kill-all:") for x in lines(out)))
    # Its own pid namespace, where nothing else lives.
    assert "pid: 1" in lines(out), lines(out)
    assert "kill-all: ESRCH" in lines(out), lines(out)

    ck = env.tmp / "ck"
    r = env.run("checkpoint", "--leave-running", "--image-path", str(ck), "k", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "kill-all: OK" not in lines(out), lines(out)
    r = env.run("ps", "k")
    assert r.returncode == 0, r.stderr
    assert env.state("k")["status"] == "running"
    env.run("delete", "--force", "k", check=True)
    assert qemu_pids(str(env.tmp)) == []

    env.restore_detached("k", ck, b)
    assert env.state("k")["status"] == "running"
    r = env.run("ps", "k")
    assert r.returncode == 0, r.stderr
    env.run("delete", "--force", "k", check=True)


def small_profile(spec):
    spec["linux"]["seccomp"] = SMALL_PROFILE


def test_seccomp_filter_holds_in_init_exec_and_after_restore(env):
    b, out = start(env, "f", ["payload", "escape", "300"], extra=small_profile)
    assert wait_for(lambda: results(lines(out)))
    assert_confined(results(lines(out)), seccomp=True)
    r = env.run("exec", "f", "payload", "escape")
    assert_confined(results(r.stdout.splitlines()), seccomp=True)

    ck = env.tmp / "ck"
    r = env.run("checkpoint", "--image-path", str(ck), "f", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    env.run("delete", "--force", "f", check=True)
    assert qemu_pids(str(env.tmp)) == []
    out2 = env.restore_detached("f", ck, b)[1]
    # The restored init goes on with the same filter and capabilities
    # (CRIU dumps and restores both).
    assert wait_for(lambda: results(lines(out2)))
    assert_confined(results(lines(out2)), seccomp=True)
    r = env.run("exec", "f", "payload", "escape")
    assert_confined(results(r.stdout.splitlines()), seccomp=True)
    env.run("delete", "--force", "f", check=True)


def oci_profile(engine_profile, caps):
    """containers/common's seccomp.json (podman's default profile) turned into
    the OCI form an engine passes to a runtime, for x86-64 and these caps."""
    rules = []
    for rule in engine_profile["syscalls"]:
        inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
        if inc.get("arches") and "amd64" not in inc["arches"]:
            continue
        if exc.get("arches") and "amd64" in exc["arches"]:
            continue
        if inc.get("caps") and not set(inc["caps"]) <= caps:
            continue
        if exc.get("caps") and set(exc["caps"]) & caps:
            continue
        if inc.get("minKernel"):
            continue
        out = {"names": rule["names"], "action": rule["action"]}
        for k in ("args", "errnoRet"):
            if rule.get(k):
                out[k] = rule[k]
        rules.append(out)
    arches = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    return {"defaultAction": engine_profile["defaultAction"],
            "defaultErrnoRet": engine_profile.get("defaultErrnoRet", 1),
            "architectures": arches, "syscalls": rules}


def test_podman_default_seccomp_profile_and_checkpoint(env):
    """The profile podman gives every container: busybox, the payload, exec,
    and a checkpoint with --leave-running all work under it."""
    src = pathlib.Path("/usr/share/containers/seccomp.json")
    if not src.exists():
        pytest.skip("no /usr/share/containers/seccomp.json (podman's default profile) on this host")
    profile = oci_profile(json.loads(src.read_text()), {"CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"})

    def use(spec):
        spec["linux"]["seccomp"] = profile
    _, out = start(env, "d", ["sh", "-c", "payload escape; while :; do echo tick; sleep 0.2; done"], extra=use)
    assert wait_for(lambda: "tick" in lines(out))
    r = results([x for x in lines(out) if x != "tick"])
    assert r["Seccomp"] == "2" and r["mount-tmpfs"] == "EPERM", r
    r = env.run("exec", "d", "sh", "-c", "echo exec ok")
    assert r.stdout == "exec ok\n", r.stderr
    r = env.run("checkpoint", "--leave-running", "--image-path", str(env.tmp / "ck"), "d", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    n = len(lines(out))
    assert wait_for(lambda: len(lines(out)) > n + 2), "the container stopped after the checkpoint"
    env.run("delete", "--force", "d", check=True)
