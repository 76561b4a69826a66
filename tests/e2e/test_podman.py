"""podman 4.3 (Debian 12) driving cocoon as its OCI runtime, through the
shared helper tests/e2e/podman_util.py: isolated storage, a local busybox
image, this host's ulimit setting, and nothing else."""
from podman_util import podman  # noqa: F401  (the fixture)


def test_podman_run_echo_and_exit_code(podman):
    r = podman.run("run", "--rm", "--network", "none", "--ipc", "none", podman.image,
                   "payload", "echo", "hi")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "hi"
    r = podman.run("run", "--rm", "--network", "none", "--ipc", "none", podman.image,
                   "payload", "exit", "7")
    assert r.returncode == 7, r.stdout + r.stderr


def test_second_storage_root_is_separate(podman):
    other = podman.storage("other")
    assert other.base != podman.base
    podman.check("create", "--name", "only-here", "--network", "none", "--ipc", "none", podman.image,
                 "payload", "echo", "x")
    names = other.check("ps", "-a", "--format", "{{.Names}}").stdout.split()
    assert "only-here" not in names
    other.image  # imports into the second root
    assert "cocoon-test" in other.check("images", "--format", "{{.Repository}}").stdout
