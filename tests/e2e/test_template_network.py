"""VM templates with network devices (docs/performance.md, "VM templates";
docs/networking.md). A template has as many NICs as the VMs started from
it, with placeholder MACs (02:63:63:00:00:0k); a VM from it runs on its
engine's taps, and its agent gives each NIC the engine's MAC before it
configures the network. Each test keeps its templates in a directory of its
own."""
import os
import shutil
import socket
import subprocess
import threading

import pytest

from conftest import COCOON, qemu_pids, wait_for, write_bundle
from podman_util import podman  # noqa: F401  (the fixture)
from test_network import Writer, assert_container_reaches, joining, lines, net, sh, start  # noqa: F401  (net: the fixture)
from test_podman_network import diagnose, get
from test_template import from_template, template_config, templates, use_templates, vm_of_is_from_template

PLACEHOLDER = "02:63:63:00:00:0"

needs_root_ip = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"),
                                   reason="needs root and iproute2 to make network namespaces")


def eui64_link_local(mac):
    """The IPv6 link-local address the kernel derives from mac (EUI-64)."""
    b = [int(x, 16) for x in mac.split(":")]
    b[0] ^= 2
    words = [b[0] << 8 | b[1], b[2] << 8 | 0xff, 0xfe << 8 | b[3], b[4] << 8 | b[5]]
    return "fe80::" + ":".join(f"{w:x}" for w in words)


def placeholder_fdb():
    """Bridge forwarding entries of a placeholder MAC: a frame from one
    reached a bridge (QEMU announces a migrated VM's NICs, RARP from the
    MAC on its command line, unless told not to; template.c)."""
    fdb = subprocess.run(["bridge", "fdb", "show"], capture_output=True, text=True, check=True).stdout
    return [line for line in fdb.splitlines() if line.lower().startswith(PLACEHOLDER)]


def listen_on(addr):
    """A listener on addr (the host's side of a container's network) that
    takes one line from one connection, then hangs up (busybox nc may wait
    for this end to close). Returns (port, got, thread); got gets (the
    peer's address, the line)."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, 0))
    srv.listen(4)
    srv.settimeout(60)
    got = []

    def accept():
        try:
            conn, peer = srv.accept()
            with conn:
                conn.settimeout(20)
                data = b""
                while b"\n" not in data and (chunk := conn.recv(4096)):
                    data += chunk
                got.append((peer[0], data))
        finally:
            srv.close()
    t = threading.Thread(target=accept)
    t.start()
    return srv.getsockname()[1], got, t


def test_podman_default_network_containers_start_from_the_template(podman):
    """podman with its default network (no flag) and cocoon's `template =
    true`: two containers' VMs start from one template (the first builds
    it), each NIC has the MAC podman gave its container (not the
    template's placeholder, and not the same for both), and both work at
    once: each answers a host client at its IP, and reaches a listener on
    the bridge's gateway from its own address. The IPv6 link-local address
    of each is derived from its own MAC: the template's guest never brought
    its NIC up."""
    tdir = podman.tmp / "templates"
    podman.cocoon_config.write_text(template_config(tdir))
    names = ["n1", "n2"]
    for n in names:
        r = podman.run("run", "-d", "--name", n, podman.image, "sh", "-c",
                       f"mkdir /www && echo served-by-{n} > /www/index.html && exec httpd -f -p 80 -h /www")
        assert r.returncode == 0, r.stdout + r.stderr
    info = {}
    for n in names:
        fmt = "{{.Id}} {{.NetworkSettings.IPAddress}} {{.NetworkSettings.MacAddress}} {{.NetworkSettings.Gateway}}"
        cid, ip, mac, gw = podman.check("inspect", "--format", fmt, n).stdout.split()
        assert ip.startswith("10.88."), f"{n} is not on podman's default network: {ip!r}"
        assert vm_of_is_from_template(cid), f"{n}'s VM (with a NIC) booted cold"
        info[n] = (cid, ip, mac.lower(), gw)
    macs = [info[n][2] for n in names]
    assert macs[0] != macs[1] and not any(m.startswith(PLACEHOLDER) for m in macs), macs
    assert len([p for p in tdir.iterdir() if not p.name.startswith(".")]) == 1, list(tdir.iterdir())
    for n in names:
        cid, ip, mac, gw = info[n]
        assert podman.check("exec", n, "cat", "/sys/class/net/eth0/address").stdout.strip() == mac
        page = wait_for(lambda: get(ip, 80), timeout=90)
        assert page == f"served-by-{n}\n", f"{n} does not answer at {ip}\n" + diagnose(podman, n)
        v6 = podman.check("exec", n, "ip", "-6", "-o", "addr", "show", "dev", "eth0").stdout
        assert eui64_link_local(mac) in v6, (mac, v6)
        assert "63:63ff:fe00" not in v6, f"{n} has a link-local address from a placeholder: {v6}"
    # Both at once, from both sides.
    threads = []
    for n in names:
        cid, ip, mac, gw = info[n]
        port, got, t = listen_on(gw)
        threads.append((n, ip, got, t))
        r = podman.run("exec", n, "sh", "-c", f"echo from-{n} | nc {gw} {port}")
        assert r.returncode == 0, r.stdout + r.stderr
    for n, ip, got, t in threads:
        t.join(60)
        assert got == [(ip, f"from-{n}\n".encode())], (n, got)
    assert [get(info[n][1], 80) for n in names] == [f"served-by-{n}\n" for n in names]
    assert placeholder_fdb() == []
    for n in names:
        podman.check("rm", "--force", "--time", "0", n)
        assert qemu_pids(info[n][0]) == []


def test_podman_uidmap_reserved_nic_is_the_templates_first(podman):
    """podman --uidmap configures its network after `create`, in the shim's
    namespace: the VM has a NIC reserved for it from boot, whose
    placeholder MAC is the one-NIC template's, so it starts from that
    template; at `start` the agent gives the NIC the veth's MAC and the
    container reaches a listener on the bridge's gateway."""
    tdir = podman.tmp / "templates"
    podman.cocoon_config.write_text(template_config(tdir))
    name = f"um{os.getpid()}"
    r = podman.run("run", "-d", "--name", name, "--uidmap", "0:100000:65536", podman.image, "sleep", "600")
    assert r.returncode == 0, r.stdout + r.stderr
    fmt = "{{.Id}} {{.NetworkSettings.IPAddress}} {{.NetworkSettings.MacAddress}} {{.NetworkSettings.Gateway}}"
    cid, ip, mac, gw = podman.check("inspect", "--format", fmt, name).stdout.split()
    assert vm_of_is_from_template(cid), "the VM with a reserved NIC booted cold"
    assert podman.check("exec", name, "cat", "/sys/class/net/eth0/address").stdout.strip() == mac.lower()
    port, got, t = listen_on(gw)
    r = podman.run("exec", name, "sh", "-c", f"echo from-{name} | nc {gw} {port}")
    t.join(60)
    assert got == [(ip, f"from-{name}\n".encode())], (got, r.stdout + r.stderr)
    assert placeholder_fdb() == []
    podman.check("rm", "--force", "--time", "0", name)
    assert qemu_pids(cid) == []


@needs_root_ip
def test_established_tcp_survives_a_restore_into_a_template_vm(env, net):  # noqa: F811
    """cocoon on a CNI-style namespace with `template = true`: the echo
    server's VM starts from the NIC template, and after a checkpoint with
    --tcp-established its restore starts from the restore shape's template
    (with the NIC and the images share) on a tap held down until CRIU has
    the sockets back: the host client's connection carries on, every byte
    echoed once and in order, and the NIC has the veth's MAC and MTU (the
    template's taps had 1500)."""
    use_templates(env)
    b = write_bundle(env.tmp / "b", ["payload", "echo-server", "7000"], extra=joining(net.path))
    sh("ip", "-n", net.ns, "link", "set", "eth0", "mtu", "1420")
    sh("ip", "link", "set", net.veth, "mtu", "1420")
    out = start(env, "tcp", b)
    assert wait_for(lambda: lines(out)[:1] == ["listening 7000"])
    assert from_template(env, "tcp"), "the VM with a NIC booted cold"
    mac = net.mac()
    nic = env.run("exec", "tcp", "cat", "/sys/class/net/eth0/address", "/sys/class/net/eth0/mtu").stdout.split()
    assert nic == [mac, "1420"], (nic, mac)
    # Nothing from the template's placeholder MAC reached the bridge.
    assert placeholder_fdb() == []
    w = Writer(net.ip, 7000)
    assert wait_for(lambda: len(w.echoed) > 100)
    r = env.run("checkpoint", "--image-path", str(env.tmp / "ck"), "--tcp-established", "tcp", timeout=600)
    assert r.returncode == 0, r.stderr
    env.run("delete", "tcp", check=True)
    held = len(w.echoed)
    with open(env.tmp / "r.out", "wb") as o, open(env.tmp / "r.err", "wb") as e:
        rc = subprocess.run([str(COCOON), "--root", str(env.root), "--config", str(env.config), "restore",
                             "--image-path", str(env.tmp / "ck"), "--bundle", str(b.path), "--detach",
                             "--tcp-established", "tcp"],
                            stdin=subprocess.DEVNULL, stdout=o, stderr=e, timeout=600).returncode
    assert rc == 0, (env.tmp / "r.err").read_text()
    assert from_template(env, "tcp"), "the restore's VM booted cold"
    assert wait_for(lambda: len(w.echoed) > held + 200 or w.error, timeout=120), "no echo after the restore"
    w.finish()
    assert w.error is None, w.error
    assert bytes(w.echoed) == bytes(w.sent)
    assert env.run("exec", "tcp", "cat", "/sys/class/net/eth0/address").stdout.strip() == mac
    assert placeholder_fdb() == []
    # The create shape's template and the restore shape's.
    assert len(templates(env)) == 2, templates(env)
    env.run("delete", "--force", "tcp", check=True)


@needs_root_ip
def test_two_nics_from_a_two_nic_template(env, net):  # noqa: F811
    """A namespace with two interfaces (eth0 on the test's bridge, eth1 on
    a veth of its own to the host): the VM starts from a template with two
    NICs, each NIC has its own interface's MAC (the agent found them by
    their placeholders, 02:63:63:00:00:01 and :02), and the container
    reaches the host through both."""
    tag = os.getpid() % 100000
    host_end, ip1, host_ip1 = f"ccx{tag}", f"10.198.{100 + os.getpid() % 100}.2", f"10.198.{100 + os.getpid() % 100}.1"
    sh("ip", "link", "add", host_end, "type", "veth", "peer", "name", "eth1", "netns", net.ns)
    try:
        sh("ip", "addr", "add", f"{host_ip1}/24", "dev", host_end)
        sh("ip", "link", "set", host_end, "up")
        sh("ip", "-n", net.ns, "addr", "add", f"{ip1}/24", "dev", "eth1")
        sh("ip", "-n", net.ns, "link", "set", "eth1", "up")
        use_templates(env)
        b = write_bundle(env.tmp / "b", ["payload", "counter", "1000"], extra=joining(net.path))
        (b.rootfs / "bin" / "nc").symlink_to("busybox")
        out = start(env, "two", b)
        assert wait_for(lambda: lines(out))
        assert from_template(env, "two"), "the VM with two NICs booted cold"
        want = [net.mac(), sh("ip", "-n", net.ns, "-br", "link", "show", "eth1").split()[2]]
        got = env.run("exec", "two", "cat", "/sys/class/net/eth0/address", "/sys/class/net/eth1/address").stdout.split()
        assert got == want, (got, want)
        assert_container_reaches(env, "two", net.gw)
        assert_container_reaches(env, "two", host_ip1)
        assert placeholder_fdb() == []
        [t] = templates(env)
        key = (t / "key").read_text()
        assert "mac=02:63:63:00:00:01" in key and "mac=02:63:63:00:00:02" in key, key
        assert want[0] not in key and want[1] not in key
        env.run("delete", "--force", "two", check=True)
    finally:
        subprocess.run(["ip", "link", "del", host_end], capture_output=True)
