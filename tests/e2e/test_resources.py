"""linux.resources: the VM is sized from the spec, and the limits hold inside
the guest, in the container's cgroup, also after a restore under a new ID."""
import json
import pathlib
import subprocess

from conftest import COCOON, qemu_pids, wait_for, write_bundle
from test_checkpoint import checkpoint, finish, lines, restored, start


def resources(**res):
    def extra(spec):
        spec["linux"]["resources"] = res
        spec["mounts"].append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                               "options": ["ro", "nosuid", "nodev", "noexec"]})
    return extra


def vm_args(env):
    pids = qemu_pids(str(env.tmp))
    assert len(pids) == 1, pids
    return pathlib.Path(f"/proc/{pids[0]}/cmdline").read_bytes().decode().split("\0")


def test_vm_sized_from_the_spec(env):
    b, out = start(env, "sz", ["payload", "counter", "200"],
                   extra=resources(memory={"limit": 256 << 20}, cpu={"quota": 150000, "period": 100000}))
    args = vm_args(env)
    # 256 MiB + the guest's 128 + 256 of checkpoint headroom; ceil(1.5) vCPUs.
    assert args[args.index("-m") + 1] == "640", args
    assert args[args.index("-smp") + 1] == "2", args
    r = env.run("exec", "sz", "cat", "/sys/fs/cgroup/sz/memory.max", "/sys/fs/cgroup/sz/cpu.max")
    assert r.stdout.split() == [str(256 << 20), "150000", "100000"], r.stdout + r.stderr
    finish(env, "sz")


def test_vm_maxima_and_defaults(env):
    env.write_config("", vm="max_memory_mib = 600\nmax_vcpus = 2\n")
    b = write_bundle(env.tmp / "big", ["payload", "echo"], extra=resources(memory={"limit": 512 << 20}))
    rc, out, err = env.create("big", b)
    # 512 + 128 MiB do not fit under 600: an error naming both, no VM left.
    assert rc != 0 and "vm.max_memory_mib = 600" in err.read_text(), err.read_text()
    assert qemu_pids(str(env.tmp)) == []
    # No memory limit: vm.memory_mib (512); a 4-CPU cpuset: at most 2 vCPUs.
    b, out = start(env, "cpus", ["payload", "counter", "200"], extra=resources(cpu={"cpus": "0-3"}))
    args = vm_args(env)
    assert args[args.index("-smp") + 1] == "2" and args[args.index("-m") + 1] == "512", args
    finish(env, "cpus")


def test_fork_bomb_stops_at_the_pids_limit(env):
    b, out = start(env, "fb", ["payload", "forks", "30"], extra=resources(pids={"limit": 10}))
    assert wait_for(lambda: any(l.startswith("forked") for l in lines(out)))
    line = [l for l in lines(out) if l.startswith("forked")][0]
    assert line.startswith("forked 9 "), line  # 9 children and the init: 10
    assert env.run("exec", "fb", "cat", "/sys/fs/cgroup/fb/pids.max").stdout.strip() == "10"
    finish(env, "fb")


def test_memory_hog_is_oom_killed_inside_the_container(env):
    b, out = start(env, "oom", ["sh", "-c", "payload memhog 200; echo rc=$?; exec payload counter 200"],
                   extra=resources(memory={"limit": 64 << 20}))
    assert wait_for(lambda: "rc=137" in lines(out), timeout=120), lines(out)
    # The VM and the agent carry on: the container runs, exec works.
    assert wait_for(lambda: len(lines(out)) >= 4)
    r = env.run("exec", "oom", "sh", "-c", "grep oom_kill /sys/fs/cgroup/oom/memory.events")
    assert "oom_kill 1" in r.stdout, r.stdout + r.stderr
    assert env.state("oom")["status"] == "running"
    finish(env, "oom")


def test_limits_hold_after_a_restore_under_a_new_id(env):
    b, out = start(env, "lr", ["payload", "counter", "100"],
                   extra=resources(pids={"limit": 10}, memory={"limit": 96 << 20}))
    assert wait_for(lambda: len(lines(out)) >= 3)
    checkpoint(env, "lr", env.tmp / "ck")
    assert wait_for(lambda: env.state("lr")["status"] == "stopped")
    env.run("delete", "lr", check=True)
    out2 = restored(env, "lr-new", env.tmp / "ck", b)
    assert wait_for(lambda: len(lines(out2)) >= 3)
    r = env.run("exec", "lr-new", "sh", "-c",
                "cat /proc/1/cgroup /sys/fs/cgroup/lr-new/pids.max /sys/fs/cgroup/lr-new/memory.max")
    assert r.stdout.split() == ["0::/lr-new", "10", str(96 << 20)], r.stdout + r.stderr
    finish(env, "lr-new")


def base_cmd(env):
    return [str(COCOON), "--root", str(env.root), "--config", str(env.config)]


def cg(env, cid, *files):
    r = env.run("exec", cid, "cat", *[f"/sys/fs/cgroup/{cid}/{f}" for f in files])
    assert r.returncode == 0, r.stderr
    return r.stdout.split("\n")[:-1]


def test_update_applies_what_the_vm_allows(env):
    b, out = start(env, "up", ["payload", "counter", "200"],
                   extra=resources(memory={"limit": 64 << 20}, pids={"limit": 10}))
    # The VM: 64 + 128 + 64 = 256 MiB, so a limit of up to 128 MiB fits.
    env.run("update", "--pids-limit", "20", "--cpu-quota", "50000", "--cpu-period", "100000",
            "--cpu-share", "512", "--memory", "100m", "up", check=True)
    assert cg(env, "up", "pids.max", "cpu.max", "cpu.weight", "memory.max") == \
        ["20", "50000 100000", "20", str(100 << 20)]
    # What config.json may not hold, update's flags may not either
    # (resources_check_json's rules), naming the flag.
    for flag, value in (("--memory", "-2"), ("--pids-limit", "-5"), ("--cpu-quota", "500")):
        r = env.run("update", flag, value, "up")
        assert r.returncode != 0 and f"{flag} '{value}'" in r.stderr, r.stderr
    r = env.run("update", "--memory", "200m", "up")
    assert r.returncode != 0 and "exceeds what the VM can give: its 256 MiB" in r.stderr, r.stderr
    assert cg(env, "up", "memory.max") == [str(100 << 20)], "a refused update changed nothing"
    # containerd's runc shim: the OCI JSON on stdin; -1 lifts a limit.
    r = subprocess.run([*base_cmd(env), "update", "--resources", "-", "up"], capture_output=True, text=True,
                       input=json.dumps({"memory": {"limit": -1, "swap": 1 << 30}, "pids": {"limit": -1},
                                         "cpu": {"quota": -1, "period": 200000, "cpus": "0"}}))
    assert r.returncode == 0, r.stderr
    assert "ignored: swap, cpus" in r.stderr, r.stderr
    assert cg(env, "up", "memory.max", "pids.max", "cpu.max") == ["max", "max", "max 200000"]
    # One half of cpu.max alone: the other keeps its value, as runc update does.
    env.run("update", "--cpu-quota", "30000", "up", check=True)
    assert cg(env, "up", "cpu.max") == ["30000 200000"]
    env.run("update", "--cpu-period", "50000", "up", check=True)
    assert cg(env, "up", "cpu.max") == ["30000 50000"]
    r = subprocess.run([*base_cmd(env), "update", "--resources", "-", "up"], capture_output=True, text=True,
                       input=json.dumps({"cpu": {"quota": 40000}}))
    assert r.returncode == 0, r.stderr
    assert cg(env, "up", "cpu.max") == ["40000 50000"]
    # podman's form: a file.
    f = env.tmp / "res.json"
    f.write_text(json.dumps({"memory": {"limit": 80 << 20}, "pids": {"limit": 15}}))
    env.run("update", "--resources", str(f), "up", check=True)
    assert cg(env, "up", "memory.max", "pids.max") == [str(80 << 20), "15"]
    r = env.run("update", "--resources", str(f), "nosuch")
    assert r.returncode != 0 and "nosuch" in r.stderr
    finish(env, "up")


def test_updated_limits_are_kept_across_a_restore(env):
    """runc re-applies the bundle's limits at restore; cocoon keeps what
    update set (resources-kept.h): raised from the bundle's 64 MiB to 120 MiB
    and checkpointed, the container comes back in a VM sized for 120 MiB,
    with 120 MiB, no pids limit and the new quota in its cgroup."""
    b, out = start(env, "ku", ["payload", "counter", "200"],
                   extra=resources(memory={"limit": 64 << 20}, pids={"limit": 10}))
    assert wait_for(lambda: len(lines(out)) >= 2)
    env.run("update", "--memory", "120m", "--pids-limit", "-1", "--cpu-quota", "50000", "ku", check=True)
    checkpoint(env, "ku", env.tmp / "ck")
    assert wait_for(lambda: env.state("ku")["status"] == "stopped")
    env.run("delete", "ku", check=True)
    kept = {"memory": {"limit": 120 << 20}, "pids": {"limit": -1}, "cpu": {"quota": 50000}}
    assert json.loads((env.tmp / "ck" / "cocoon.json").read_text())["resources"] == kept
    out2 = restored(env, "ku2", env.tmp / "ck", b)
    assert wait_for(lambda: len(lines(out2)) >= 2)
    args = vm_args(env)
    # 120 MiB + the guest's 128 + 120 of checkpoint headroom (the bundle's
    # 64 MiB would give 256).
    assert args[args.index("-m") + 1] == "368", args
    assert cg(env, "ku2", "memory.max", "pids.max", "cpu.max") == [str(120 << 20), "max", "50000 100000"]
    # And on to the next checkpoint.
    checkpoint(env, "ku2", env.tmp / "ck2", "--leave-running")
    assert json.loads((env.tmp / "ck2" / "cocoon.json").read_text())["resources"] == kept
    finish(env, "ku2")


def test_events_stats_come_from_the_guest(env):
    b, out = start(env, "st", ["sh", "-c", "payload memhog 20 & exec payload counter 100"],
                   extra=resources(memory={"limit": 96 << 20}, pids={"limit": 50}))
    assert wait_for(lambda: any("memhog" in line for line in lines(out)))
    r = env.run("events", "--stats", "st", check=True)
    ev = json.loads(r.stdout)
    assert ev["type"] == "stats" and ev["id"] == "st", ev
    d = ev["data"]
    assert d["memory"]["usage"]["limit"] == 96 << 20
    # The 20 MiB hog is in the container's cgroup, QEMU's memory is not.
    assert 20 << 20 <= d["memory"]["usage"]["usage"] < 96 << 20, d["memory"]["usage"]
    assert d["memory"]["raw"]["anon"] >= 20 << 20, d["memory"]["raw"]
    assert d["pids"] == {"current": 2, "limit": 50}, d["pids"]  # counter and the hog
    assert d["cpu"]["usage"]["total"] > 0
    finish(env, "st")
