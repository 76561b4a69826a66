"""podman 4.3 with its default network (netavark), cocoon as the runtime, no
--network flag: a busybox httpd published on the host's port 8080, podman's
checkpoint/restore keeping the container's IP, and --export/--import into a
second storage root.

The second root shares the first one's --runroot and --tmpdir paths
(podman_util): podman 4.3's RestoreContainer (libpod/runtime_ctr.go) clears
the conmon pidfile path of an imported config.dump only when it starts with
the importing podman's own RunRoot. Two real hosts both use the default
/run/containers/storage, so the path is reset there; a second root on this
host with a different --runroot would keep the first root's path, and conmon
fails with "Failed to write conmon pidfile" before any runtime is called
(podman's behaviour, not cocoon's)."""
import socket
import subprocess
import urllib.request

from conftest import wait_for
from podman_util import podman  # noqa: F401  (the fixture)

PORT = 8080


def host_ip():
    """This host's address on its default route (not loopback: netavark's
    port forwarding is DNAT in PREROUTING/OUTPUT for any local address)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("192.0.2.1", 9))
    ip = s.getsockname()[0]
    s.close()
    return ip


def get(ip, port, timeout=10):
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}/", timeout=timeout) as r:
            return r.read().decode()
    except OSError:
        return None


def diagnose(p, name):
    out = []
    for cmd in (["logs", name], ["exec", name, "ip", "addr"], ["exec", name, "ip", "route"],
                ["inspect", "-f", "{{.NetworkSettings.SandboxKey}} {{.State.Status}}", name]):
        r = p.run(*cmd)
        out.append(f"{cmd}: {r.stdout}{r.stderr}")
    key = p.run("inspect", "-f", "{{.NetworkSettings.SandboxKey}}", name).stdout.strip()
    if key:
        out.append(subprocess.run(["sh", "-c", f"nsenter --net={key} ip addr; "
                                   f"nsenter --net={key} tc filter show dev eth0 ingress"],
                                  capture_output=True, text=True).stdout)
    return "\n".join(out)


def start_web(p):
    """busybox httpd on podman's default network, published on PORT. The
    page is written inside the container at start: after --import it can
    only come from the checkpoint's rootfs changes."""
    r = p.run("run", "-d", "--name", "web", "-p", f"{PORT}:80", p.image, "sh", "-c",
              "mkdir /www && echo served-by-$(hostname)-$$ > /www/index.html && "
              "exec httpd -f -p 80 -h /www")
    assert r.returncode == 0, r.stdout + r.stderr
    ip = p.check("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web").stdout.strip()
    assert ip.startswith("10.88."), f"not on podman's default network: {ip!r}"
    page = wait_for(lambda: get(ip, 80), timeout=90)
    assert page and page.startswith("served-by-"), "no answer at the container IP\n" + diagnose(p, "web")
    return ip, page


def test_published_port_and_checkpoint_restore_keep_the_ip(podman):
    ip, page = start_web(podman)
    hip = host_ip()
    assert get(hip, PORT) == page, "no answer on the published port"

    podman.check("container", "checkpoint", "web", timeout=600)
    assert get(ip, 80, timeout=3) is None, "answered while checkpointed"
    podman.check("container", "restore", "web", timeout=600)
    assert podman.check("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web").stdout.strip() == ip
    assert wait_for(lambda: get(hip, PORT), timeout=60) == page, "no answer after restore"
    podman.check("rm", "--force", "--time", "0", "web")
    assert get(hip, PORT, timeout=3) is None, "still answering after rm"


def test_export_and_import_into_a_second_root_answers_again(podman):
    ip, page = start_web(podman)
    hip = host_ip()
    export = podman.tmp / "web.tar.gz"
    podman.check("container", "checkpoint", "--export", str(export), "web", timeout=600)
    podman.check("rm", "--force", "--time", "0", "web")
    assert get(hip, PORT, timeout=3) is None, "still answering after rm"

    other = podman.storage("other")
    other.image  # the image the checkpoint was made from, in the other root
    other.check("container", "restore", "--import", str(export), timeout=600)
    assert other.check("ps", "--format", "{{.Names}} {{.Status}}").stdout.startswith("web Up")
    assert other.check("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web").stdout.strip() == ip
    got = wait_for(lambda: get(hip, PORT), timeout=60)
    assert got == page, "no answer after --import\n" + diagnose(other, "web")
    other.check("rm", "--force", "--time", "0", "web")
