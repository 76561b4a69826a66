"""Per-container kernel settings of config.json applied inside the guest as
runc applies them on a host (docs/lifecycle.md): process.oomScoreAdj and
linux.sysctl, through cocoon and through podman, kept across checkpoint and
restore; invalid values refused at create with nothing left behind."""
import json

from conftest import qemu_pids, wait_for, write_bundle
from podman_util import podman  # noqa: F401  (the fixture)
from test_checkpoint import checkpoint, finish, lines, restored, start


def spec_process(sysctl=None, **fields):
    def extra(spec):
        spec["process"].update(fields)
        if sysctl is not None:
            spec["linux"]["sysctl"] = sysctl
    return extra


# Sysctls of the container's network, IPC and UTS namespaces, each away
# from its default (1024, 8192, "(none)"): the net one is not in CRIU's
# images (the network namespace is external to them), the other two are.
SYSCTLS = {"net.ipv4.ip_unprivileged_port_start": "100", "kernel.msgmax": "12345",
           "kernel.domainname": "dom.example"}
SYSCTL_FILES = ("/proc/sys/net/ipv4/ip_unprivileged_port_start", "/proc/sys/kernel/msgmax",
                "/proc/sys/kernel/domainname")


def read(env, cid, *paths):
    r = env.run("exec", cid, "cat", *paths)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.split()


def test_oom_score_adj_and_sysctls_are_the_containers_and_kept_across_a_restore(env):
    b, out = start(env, "adj", ["payload", "counter", "200"],
                   extra=spec_process(oomScoreAdj=500, sysctl=SYSCTLS))
    assert wait_for(lambda: len(lines(out)) >= 2)
    assert read(env, "adj", *SYSCTL_FILES) == list(SYSCTLS.values())
    # The init's, and an exec's without a value of its own (runc gives an
    # exec the container's).
    assert read(env, "adj", "/proc/1/oom_score_adj", "/proc/self/oom_score_adj") == ["500", "500"]
    # An exec whose process.json says otherwise gets its own.
    proc = json.loads((b.path / "config.json").read_text())["process"]
    proc.update(args=["cat", "/proc/self/oom_score_adj"], oomScoreAdj=-300, terminal=False)
    pf = env.tmp / "proc.json"
    pf.write_text(json.dumps(proc))
    r = env.run("exec", "--process", str(pf), "adj")
    assert r.returncode == 0 and r.stdout.strip() == "-300", r.stdout + r.stderr
    checkpoint(env, "adj", env.tmp / "ck")
    assert wait_for(lambda: env.state("adj")["status"] == "stopped")
    env.run("delete", "adj", check=True)
    out2 = restored(env, "adj", env.tmp / "ck", b)
    n = len(lines(out2))
    assert wait_for(lambda: len(lines(out2)) > n + 1)
    assert read(env, "adj", "/proc/1/oom_score_adj") == ["500"]
    assert read(env, "adj", *SYSCTL_FILES) == list(SYSCTLS.values())
    finish(env, "adj")


def test_oom_score_adj_out_of_range_is_refused(env):
    for bad in (1001, -1001):
        b = write_bundle(env.tmp / f"bad{bad}", ["payload", "echo"], extra=spec_process(oomScoreAdj=bad))
        rc, out, err = env.create(f"bad{bad}", b)
        text = err.read_text()
        assert rc != 0 and f"process.oomScoreAdj {bad}" in text and "-1000..1000" in text, text
        assert env.run("state", f"bad{bad}").returncode != 0
    b = write_bundle(env.tmp / "str", ["payload", "echo"], extra=spec_process(oomScoreAdj="5"))
    rc, out, err = env.create("str", b)
    assert rc != 0 and "process.oomScoreAdj: expected an integer" in err.read_text(), err.read_text()
    assert qemu_pids(str(env.tmp)) == []


def test_podman_oom_score_adj(podman):
    # Lowering it needs CAP_SYS_RESOURCE, which podman's default set lacks:
    # it is written before the capabilities are dropped, as runc does.
    r = podman.run("run", "-d", "--name", "oa", "--oom-score-adj", "-500", podman.image,
                   "payload", "counter", "200")
    assert r.returncode == 0, r.stderr
    r = podman.check("exec", "oa", "cat", "/proc/1/oom_score_adj", "/proc/self/oom_score_adj")
    assert r.stdout.split() == ["-500", "-500"], r.stdout
    podman.check("rm", "--force", "--time", "0", "oa")


def test_sysctls_that_cannot_be_set_are_refused_at_create(env):
    cases = {
        # runc's rule, checked by the host before a VM boots.
        "whole": ({"vm.overcommit_memory": "1"}, "vm.overcommit_memory is not in a kernel namespace"),
        "host": ({"kernel.hostname": "x"}, "conflicts with the spec's hostname field"),
        # Found wanting in the guest: no VM, shim or state is left.
        "nokey": ({"net.ipv4.no_such_thing": "1"},
                  "linux.sysctl net.ipv4.no_such_thing: the guest's kernel has no such sysctl"),
        "badval": ({"kernel.msgmax": "many"},
                   "linux.sysctl kernel.msgmax = 'many': the kernel refused it: Invalid argument"),
    }
    for cid, (sysctl, want) in cases.items():
        b = write_bundle(env.tmp / cid, ["payload", "echo"], extra=spec_process(sysctl=sysctl))
        rc, out, err = env.create(cid, b)
        text = err.read_text()
        assert rc != 0 and want in text, (cid, text)
        assert env.run("state", cid).returncode != 0, cid
        assert qemu_pids(str(env.tmp)) == [], cid


def test_podman_sysctls(podman):
    # A per-interface key: eth0 is the engine's interface, moved into the
    # container's namespace before the net.* sysctls are written.
    r = podman.run("run", "-d", "--name", "sc", "--sysctl", "net.ipv4.conf.eth0.arp_ignore=1",
                   "--sysctl", "net.ipv4.ip_unprivileged_port_start=100",
                   "--sysctl", "kernel.msgmax=12345", podman.image, "payload", "counter", "200")
    assert r.returncode == 0, r.stderr
    r = podman.check("exec", "sc", "cat", "/proc/sys/net/ipv4/conf/eth0/arp_ignore",
                     "/proc/sys/net/ipv4/ip_unprivileged_port_start", "/proc/sys/kernel/msgmax")
    assert r.stdout.split() == ["1", "100", "12345"], r.stdout
    podman.check("rm", "--force", "--time", "0", "sc")


def devices(*rules):
    def extra(spec):
        spec["linux"].setdefault("resources", {})["devices"] = list(rules)
        # `cocoon spec` (runc's) has no CAP_MKNOD; podman's has.
        for kind in ("bounding", "effective", "permitted"):
            spec["process"]["capabilities"][kind].append("CAP_MKNOD")
    return extra


# Writes to a node of /dev/kmsg (1:11, no capability needed) and of 1:12
# (no driver behind it: without a device program its open says ENXIO).
KMSG = ("mknod /dev/k c 1 11 && mknod /dev/n c 1 12 && "
        "(echo hi > /dev/k && echo kmsg-ok || echo kmsg-denied); "
        "(echo hi > /dev/n && echo n-ok); cat /dev/null && echo null-ok")


def shell(env, cid, script):
    r = env.run("exec", cid, "sh", "-c", script)
    return r.stdout.split() + [l for l in r.stderr.splitlines() if "/dev/n" in l]


def test_device_rules_hold_inside_and_after_a_restore(env):
    b, out = start(env, "dev", ["payload", "counter", "200"],
                   extra=devices({"allow": False, "access": "rwm"},
                                 {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "w"}))
    got = shell(env, "dev", KMSG)
    # 1:11 allowed for writing; 1:12 refused by the program before its
    # driver is asked (EPERM, not ENXIO); runc's defaults (/dev/null, mknod).
    assert got[:2] == ["kmsg-ok", "null-ok"] and "Operation not permitted" in got[2], got
    checkpoint(env, "dev", env.tmp / "ck")
    assert wait_for(lambda: env.state("dev")["status"] == "stopped")
    env.run("delete", "dev", check=True)
    restored(env, "dev", env.tmp / "ck", b)
    got = shell(env, "dev", "rm -f /dev/k /dev/n; " + KMSG)
    assert got[:2] == ["kmsg-ok", "null-ok"] and "Operation not permitted" in got[2], got
    finish(env, "dev")


def test_bad_device_rules_are_refused(env):
    cases = {"type": ({"allow": True, "type": "x"}, "devices[0].type: 'x' is not a device type"),
             "acc": ({"allow": True, "access": "rwz"}, "devices[0].access: 'rwz' is not an access"),
             "allow": ({"access": "r"}, "devices[0].allow is required"),
             "major": ({"allow": True, "major": -2}, "devices[0].major: -2 is not a device number")}
    for cid, (rule, want) in cases.items():
        b = write_bundle(env.tmp / cid, ["payload", "echo"], extra=devices(rule))
        rc, out, err = env.create(cid, b)
        assert rc != 0 and want in err.read_text(), (cid, err.read_text())
    assert qemu_pids(str(env.tmp)) == []


def test_podman_device_cgroup_rules(podman):
    # podman's spec denies every device but its defaults: /dev/kmsg is
    # refused; --device-cgroup-rule allows it.
    script = "mknod /dev/k c 1 11 && (echo hi > /dev/k && echo kmsg-ok || echo kmsg-denied)"
    r = podman.run("run", "--rm", podman.image, "sh", "-c", script)
    assert r.returncode == 0 and r.stdout.split() == ["kmsg-denied"], r.stdout + r.stderr
    assert "Operation not permitted" in r.stderr, r.stderr
    r = podman.run("run", "--rm", "--device-cgroup-rule", "c 1:11 w", podman.image, "sh", "-c", script)
    assert r.returncode == 0 and r.stdout.split() == ["kmsg-ok"], r.stdout + r.stderr


def namespaces(*types, offsets=None, pids=None):
    def extra(spec):
        spec["linux"]["namespaces"] += [{"type": t} for t in types]
        if offsets:
            spec["linux"]["timeOffsets"] = offsets
        if pids:
            spec["linux"]["resources"] = {"pids": {"limit": pids}}
        spec["mounts"].append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                               "options": ["ro", "nosuid", "nodev", "noexec"]})
    return extra


DAYS_10 = 864000


def test_cgroup_and_time_namespaces_and_a_restore(env):
    b, out = start(env, "nsct", ["payload", "counter", "200"],
                   extra=namespaces("cgroup", "time", pids=20,
                                    offsets={"boottime": {"secs": DAYS_10},
                                             "monotonic": {"secs": 86400, "nanosecs": 7}}))
    assert wait_for(lambda: len(lines(out)) >= 2)

    def check():
        # The cgroup namespace's root is the container's cgroup: its own
        # path is "/", and the cgroup mount shows its own limits at the top.
        r = env.run("exec", "nsct", "sh", "-c",
                    "cat /proc/self/cgroup /proc/1/cgroup /sys/fs/cgroup/pids.max; "
                    "cut -d. -f1 /proc/uptime; cat /proc/1/timens_offsets")
        assert r.returncode == 0, r.stderr
        got = r.stdout.split("\n")
        assert got[:3] == ["0::/", "0::/", "20"], r.stdout
        # Ten days of boottime offset: /proc/uptime is the namespace's.
        assert DAYS_10 <= int(got[3]) < DAYS_10 + 3600, r.stdout
        return [l.split() for l in got[4:6]]

    assert check() == [["monotonic", "86400", "7"], ["boottime", str(DAYS_10), "0"]]
    checkpoint(env, "nsct", env.tmp / "ck")
    assert wait_for(lambda: env.state("nsct")["status"] == "stopped")
    env.run("delete", "nsct", check=True)
    restored(env, "nsct", env.tmp / "ck", b)
    # CRIU restores the clocks where they were (its offsets are its own,
    # made for the new VM's boot time); the cgroup namespace is the
    # restored container's cgroup again.
    check()
    finish(env, "nsct")


def test_podman_private_cgroup_namespace(podman):
    r = podman.run("run", "--rm", "--cgroupns", "private", "--pids-limit", "33", podman.image,
                   "sh", "-c", "cat /proc/self/cgroup /sys/fs/cgroup/pids.max")
    assert r.returncode == 0 and r.stdout.split() == ["0::/", "33"], r.stdout + r.stderr
    # podman's default here (a cgroup v1 host): the guest's cgroup
    # namespace, where the container's cgroup has its path.
    r = podman.run("run", "--rm", podman.image, "cat", "/proc/self/cgroup")
    assert r.returncode == 0 and r.stdout.startswith("0::/") and r.stdout.strip() != "0::/", r.stdout


def unified(files, pids=None, huge=None):
    def extra(spec):
        res = spec["linux"].setdefault("resources", {})
        res["unified"] = files
        if pids:
            res["pids"] = {"limit": pids}
        if huge:
            res["hugepageLimits"] = huge
        spec["mounts"].append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                               "options": ["ro", "nosuid", "nodev", "noexec"]})
    return extra


def test_unified_cgroup_files_and_hugepage_limits_kept_across_a_restore(env):
    # pids.max in unified wins over linux.resources.pids, as runc writes
    # unified last.
    # hugepageLimits are hugetlb.<size>.max files, written before unified.
    files = {"memory.high": str(50 << 20), "pids.max": "15", "cpu.weight": "77"}
    b, out = start(env, "uni", ["payload", "counter", "200"],
                   extra=unified(files, pids=30, huge=[{"pageSize": "2MB", "limit": 8 << 20}]))
    paths = [f"/sys/fs/cgroup/uni/{k}" for k in [*files, "hugetlb.2MB.max"]]
    want = [*files.values(), str(8 << 20)]
    assert read(env, "uni", *paths) == want
    checkpoint(env, "uni", env.tmp / "ck")
    assert wait_for(lambda: env.state("uni")["status"] == "stopped")
    env.run("delete", "uni", check=True)
    restored(env, "uni", env.tmp / "ck", b)
    assert read(env, "uni", *paths) == want
    finish(env, "uni")


def test_bad_unified_files_are_refused(env):
    cases = {"own": ({"cgroup.freeze": "1"}, "cgroup.freeze is one of the cgroup's own files"),
             "nofile": ({"memory.no_such_file": "1"},
                        "linux.resources.unified memory.no_such_file: the container's cgroup has no such file"),
             "badval": ({"pids.max": "lots"},
                        "linux.resources.unified pids.max = 'lots': the kernel refused it: Invalid argument")}
    for cid, (files, want) in cases.items():
        b = write_bundle(env.tmp / cid, ["payload", "echo"], extra=unified(files))
        rc, out, err = env.create(cid, b)
        assert rc != 0 and want in err.read_text(), (cid, err.read_text())
        assert env.run("state", cid).returncode != 0, cid
    assert qemu_pids(str(env.tmp)) == []
