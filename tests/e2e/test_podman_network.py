"""podman 4.3 with its default network (netavark), cocoon as the runtime:
published ports, and checkpoint/restore with the same IP."""
import socket
import time

from conftest import wait_for
from podman_util import podman  # noqa: F401  (the fixture)

HOST_IP = None


def host_ip():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("192.0.2.1", 9))
    ip = s.getsockname()[0]
    s.close()
    return ip


def echo(ip, port, text=b"ping\n", timeout=10):
    try:
        with socket.create_connection((ip, port), timeout=timeout) as s:
            s.sendall(text)
            return s.recv(100)
    except OSError:
        return None


def test_published_port_and_checkpoint_keep_the_ip(podman):
    # --ipc none: a stopgap until podman's /dev/shm bind mount works (issue 15).
    podman.check("run", "-d", "--name", "web", "--ipc", "none", "-p", "18080:7000", podman.image,
                 "payload", "echo-server", "7000")
    ip = podman.check("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web").stdout.strip()
    assert ip.startswith("10.88."), ip
    ok = wait_for(lambda: echo(ip, 7000) == b"ping\n", timeout=30)
    if not ok:
        import subprocess
        for cmd in (["logs", "web"], ["exec", "web", "ip", "addr"], ["exec", "web", "ip", "route"],
                    ["inspect", "-f", "{{.NetworkSettings.SandboxKey}} {{.State.Status}}", "web"]):
            r = podman.run(*cmd)
            print(cmd, r.stdout, r.stderr)
        key = podman.run("inspect", "-f", "{{.NetworkSettings.SandboxKey}}", "web").stdout.strip()
        print(subprocess.run(["sh", "-c", f"nsenter --net={key} ip addr; nsenter --net={key} tc filter show dev eth0 ingress; ip addr show podman0; bridge link"], capture_output=True, text=True).stdout)
    assert ok, "no answer at the container IP"
    hip = host_ip()
    assert wait_for(lambda: echo(hip, 18080) == b"ping\n", timeout=30), "no answer on the published port"
    r = podman.run("container", "checkpoint", "web", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    r = podman.run("container", "restore", "web", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert podman.check("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web").stdout.strip() == ip
    assert wait_for(lambda: echo(hip, 18080) == b"ping\n", timeout=60), "no answer after restore"
    export = podman.tmp / "web.tar.gz"
    r = podman.run("container", "checkpoint", "--export", str(export), "web", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    cid = podman.check("inspect", "-f", "{{.Id}}", "web").stdout.strip()
    podman.run("rm", "-f", "web")
    # podman 4.3 keeps the first root's conmon pidfile path in config.dump;
    # on a real second host that path (/run/containers/...) exists.
    (podman.base / "runroot" / "vfs-containers" / cid / "userdata").mkdir(parents=True, exist_ok=True)
    other = podman.storage("other")
    other.image
    r = other.run("container", "restore", "--import", str(export), "--name", "web2", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert wait_for(lambda: echo(hip, 18080) == b"ping\n", timeout=60), "no answer after import"
    other.run("rm", "-f", "web2")
