"""podman 4.3 and conmon on a cgroup v2 host, driving cocoon: this host is
cgroup v1, so podman runs in a mount namespace whose /sys/fs/cgroup is the
cgroup2 hierarchy (podman_util's podman_cgroup2 fixture), and takes the host
for a v2 one. Only hugetlb is a v2 controller here, so podman drops
--memory with a warning (--cgroup-conf, linux.resources.unified, reaches
the guest instead)."""
import json

from podman_util import podman_cgroup2  # noqa: F401  (the fixture)


def test_podman_on_cgroup_v2_runs_in_a_private_cgroup_namespace(podman_cgroup2):
    p = podman_cgroup2
    info = json.loads(p.check("info", "--format", "json").stdout)
    assert info["host"]["cgroupVersion"] == "v2", info["host"]
    # podman's default on v2: a private cgroup namespace.
    r = p.run("run", "--rm", p.image, "sh", "-c", "echo hi; cat /proc/self/cgroup")
    assert r.returncode == 0 and r.stdout.split() == ["hi", "0::/"], r.stdout + r.stderr

