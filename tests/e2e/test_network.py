"""Containers on the engine's network (docs/networking.md).

Each test makes a network namespace the way CNI's bridge plugin does: `ip
netns add`, a veth pair with the container's address on the namespace's end
and the other end on a bridge in the root namespace that holds the gateway
address. The container joins it through linux.namespaces, as under podman,
Kubernetes or `ctr --cni`. Nothing outside the test's own bridge is touched.
"""
import json
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

from conftest import COCOON, wait_for, write_bundle

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"),
                                reason="needs root and iproute2 to make network namespaces")


def assert_container_reaches(env, cid, addr):
    """The container cid opens a TCP connection to a listener on addr (the
    engine's side of its network) and the bytes it sends arrive."""
    srv = socket.socket()
    srv.bind((addr, 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    got = []
    t = threading.Thread(target=lambda: got.append(srv.accept()[0].recv(100)))
    t.start()
    r = env.run("exec", cid, "sh", "-c", f"echo from-the-container | nc {addr} {port}")
    t.join(20)
    srv.close()
    assert got == [b"from-the-container\n"], (got, r.stderr)


def sh(*cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"{cmd}: {r.stderr}"
    return r.stdout


class Net:
    """A CNI-bridge-style namespace: NS with eth0 at IP/24, gateway GW on
    bridge BR in the root namespace."""

    def __init__(self, tag):
        sub = 100 + os.getpid() % 100
        self.ns = f"ccn-{tag}-{os.getpid()}"
        self.path = f"/run/netns/{self.ns}"
        self.br = f"ccbr{os.getpid() % 100000}"
        self.veth = f"ccv{os.getpid() % 100000}"
        self.ip = f"10.199.{sub}.2"
        self.gw = f"10.199.{sub}.1"
        self.ip6 = f"fd99:{sub}::2"
        sh("ip", "netns", "add", self.ns)
        sh("ip", "link", "add", self.br, "type", "bridge")
        sh("ip", "addr", "add", f"{self.gw}/24", "dev", self.br)
        sh("ip", "addr", "add", f"fd99:{sub}::1/64", "dev", self.br, "nodad")
        sh("ip", "link", "set", self.br, "up")
        self._veth()

    def _veth(self, mac=None):
        sh("ip", "link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns", self.ns)
        if mac:
            sh("ip", "-n", self.ns, "link", "set", "eth0", "address", mac)
        sh("ip", "link", "set", self.veth, "master", self.br, "up")
        sh("ip", "-n", self.ns, "link", "set", "lo", "up")
        sh("ip", "-n", self.ns, "addr", "add", f"{self.ip}/24", "dev", "eth0")
        sh("ip", "-n", self.ns, "addr", "add", f"{self.ip6}/64", "dev", "eth0", "nodad")
        sh("ip", "-n", self.ns, "link", "set", "eth0", "up")
        sh("ip", "-n", self.ns, "route", "add", "default", "via", self.gw)

    def mac(self):
        return sh("ip", "-n", self.ns, "-br", "link", "show", "eth0").split()[2]

    def remake(self, ip=None):
        """The namespace made anew, a new veth with the same address and
        MAC on the same bridge: what podman does at restore. With ip, that
        address instead."""
        mac = self.mac()
        sh("ip", "netns", "del", self.ns)
        wait_for(lambda: subprocess.run(["ip", "link", "show", self.veth], capture_output=True).returncode != 0)
        sh("ip", "netns", "add", self.ns)
        if ip:
            self.ip = ip
        self._veth(mac)

    def close(self):
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.br], capture_output=True)

    def tc(self, *what):
        return sh("tc", "-n", self.ns, *what)


@pytest.fixture
def net():
    n = Net("t")
    yield n
    n.close()


def joining(path):
    def extra(spec):
        for ns in spec["linux"]["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = path
    return extra


def start(env, cid, bundle):
    rc, out, err = env.create(cid, bundle)
    assert rc == 0, err.read_text()
    env.run("start", cid, check=True)
    return out


def lines(path):
    return path.read_text().splitlines() if path.exists() else []


def http_get(ip, port=80, timeout=20):
    with socket.create_connection((ip, port), timeout=timeout) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return data.decode(errors="replace")


def test_http_both_ways_on_a_cni_bridge(env, net):
    """busybox httpd in the container answers a host client at the
    container's IP; the container reaches a server on the host through its
    default route; the engine's view (the veth and its address) is kept."""
    b = write_bundle(env.tmp / "b", ["sh", "-c", "httpd -p 80 -h /www && exec payload counter 1000"],
                     extra=joining(net.path))
    for tool in ("httpd", "nc", "ip"):
        (b.rootfs / "bin" / tool).symlink_to("busybox")
    (b.rootfs / "www").mkdir()
    (b.rootfs / "www" / "index.html").write_text("hello from cocoon\n")
    # Not virtio-net's default 1500: the guest's MTU must come from the engine's.
    sh("ip", "-n", net.ns, "link", "set", "eth0", "mtu", "1420")
    sh("ip", "link", "set", net.veth, "mtu", "1420")
    out = start(env, "web", b)
    assert wait_for(lambda: lines(out))
    reply = wait_for(lambda: _try(http_get, net.ip), timeout=30)
    assert reply and "200 OK" in reply and "hello from cocoon" in reply, reply
    # IPv6 too, at the address the engine gave.
    assert "hello from cocoon" in http_get(net.ip6)

    assert_container_reaches(env, "web", net.gw)

    r = env.run("exec", "web", "sh", "-c", "ip -o addr show eth0; ip route; cat /sys/class/net/eth0/mtu")
    assert f"inet {net.ip}/24" in r.stdout and f"inet6 {net.ip6}/64" in r.stdout, r.stdout
    assert f"default via {net.gw} dev eth0" in r.stdout and r.stdout.split()[-1] == "1420", r.stdout
    # The tap is connected by tc; the engine's veth keeps its address.
    assert "mirred (Egress Redirect to device cctap0)" in net.tc("filter", "show", "dev", "eth0", "ingress")
    assert f"inet {net.ip}/24" in sh("ip", "-n", net.ns, "addr", "show", "eth0")
    env.run("delete", "--force", "web", check=True)
    # Nothing of cocoon's is left in the engine's namespace.
    assert "cctap" not in sh("ip", "-n", net.ns, "link")
    assert "ingress" not in net.tc("qdisc", "show", "dev", "eth0")


class MacvlanNet:
    """CNI's macvlan plugin's layout: the container's eth0 is a macvlan
    (bridge mode) on a parent device in the root namespace, here one end of
    a veth pair the test makes. The host reaches it through a second
    macvlan on the same parent holding the gateway address: macvlans in
    bridge mode on one parent switch frames between each other."""

    def __init__(self):
        pid = os.getpid() % 100000
        sub = 100 + os.getpid() % 100
        self.ns = f"ccm-{os.getpid()}"
        self.path = f"/run/netns/{self.ns}"
        self.parent = f"ccmp{pid}"
        self.ip = f"10.197.{sub}.2"
        self.gw = f"10.197.{sub}.1"
        sh("ip", "netns", "add", self.ns)
        try:
            sh("ip", "link", "add", self.parent, "type", "veth", "peer", "name", f"ccmq{pid}")
            sh("ip", "link", "set", f"ccmq{pid}", "up")
            sh("ip", "link", "set", self.parent, "up")
            sh("ip", "link", "add", f"ccmh{pid}", "link", self.parent, "type", "macvlan", "mode", "bridge")
            sh("ip", "addr", "add", f"{self.gw}/24", "dev", f"ccmh{pid}")
            sh("ip", "link", "set", f"ccmh{pid}", "up")
            sh("ip", "link", "add", f"ccmc{pid}", "link", self.parent, "type", "macvlan", "mode", "bridge")
            sh("ip", "link", "set", f"ccmc{pid}", "netns", self.ns)
            sh("ip", "-n", self.ns, "link", "set", f"ccmc{pid}", "name", "eth0")
            sh("ip", "-n", self.ns, "link", "set", "lo", "up")
            sh("ip", "-n", self.ns, "addr", "add", f"{self.ip}/24", "dev", "eth0")
            sh("ip", "-n", self.ns, "link", "set", "eth0", "up")
            sh("ip", "-n", self.ns, "route", "add", "default", "via", self.gw)
        except Exception:
            self.close()
            raise

    def close(self):
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
        # The macvlans on it go with the parent.
        subprocess.run(["ip", "link", "del", self.parent], capture_output=True)


def test_http_both_ways_on_a_macvlan(env):
    """A macvlan (CNI's macvlan plugin) is carried like a veth: httpd in the
    container answers the host, the container reaches the host, and the
    redirect is gone after delete."""
    try:
        net = MacvlanNet()
    except AssertionError as e:
        if "Unknown device type" in str(e):
            pytest.skip("this host's kernel has no macvlan")
        raise
    try:
        assert "macvlan" in sh("ip", "-n", net.ns, "-d", "link", "show", "eth0")
        b = write_bundle(env.tmp / "mb", ["sh", "-c", "httpd -p 80 -h /www && exec payload counter 1000"],
                         extra=joining(net.path))
        for tool in ("httpd", "nc"):
            (b.rootfs / "bin" / tool).symlink_to("busybox")
        (b.rootfs / "www").mkdir()
        (b.rootfs / "www" / "index.html").write_text("hello over a macvlan\n")
        out = start(env, "mweb", b)
        assert wait_for(lambda: lines(out))
        reply = wait_for(lambda: _try(http_get, net.ip), timeout=30)
        assert reply and "hello over a macvlan" in reply, reply

        assert_container_reaches(env, "mweb", net.gw)
        assert "mirred (Egress Redirect to device cctap0)" in sh("tc", "-n", net.ns, "filter", "show", "dev",
                                                                 "eth0", "ingress")
        env.run("delete", "--force", "mweb", check=True)
        assert "cctap" not in sh("ip", "-n", net.ns, "link")
        assert "ingress" not in sh("tc", "-n", net.ns, "qdisc", "show", "dev", "eth0")
    finally:
        net.close()


def _try(fn, *args):
    try:
        return fn(*args)
    except OSError:
        return None


def answers(ip):
    """Whether ip's stack answers at all: a connect to the discard port,
    which nothing in the tests serves, is refused (RST) once the host has
    the address's link-layer address and the container's kernel replies."""
    try:
        socket.create_connection((ip, 9), timeout=2).close()
        return True
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


class Writer:
    """A host client that keeps writing numbered lines on one connection to
    the container's echo server and reads them back."""

    def __init__(self, ip, port):
        # Seen in full e2e runs: for the first seconds after a new
        # container printed "listening", the host's ARP for it can go
        # unanswered (EHOSTUNREACH; the same connect works 5 s later; the
        # http tests wait the same way). The cause is not known yet
        # (docs/networking.md, "Known problems"); the connection this
        # client carries is what the tests are about.
        assert wait_for(lambda: answers(ip), timeout=30), f"{ip} does not answer"
        self.sock = socket.create_connection((ip, port), timeout=10)
        self.sock.settimeout(120)
        self.sent = bytearray()
        self.echoed = bytearray()
        self.error = None
        self.stop = False
        self.t0 = time.time()
        self.tw = threading.Thread(target=self._write)
        self.tr = threading.Thread(target=self._read)
        self.tw.start()
        self.tr.start()

    def _write(self):
        n = 0
        try:
            while not self.stop:
                line = f"line {n}\n".encode()
                self.sock.sendall(line)
                self.sent += line
                n += 1
                time.sleep(0.05)
        except OSError as e:
            self.error = e

    def _read(self):
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    if not self.stop:
                        self.error = self.error or EOFError("the server closed the connection")
                    return
                self.echoed += chunk
        except OSError as e:
            if not self.stop:
                self.error = e

    def finish(self):
        """Stops writing, waits for the last echo, then hangs up."""
        self.stop = True
        self.tw.join(30)
        wait_for(lambda: len(self.echoed) >= len(self.sent) or self.error, timeout=60)
        self.sock.shutdown(socket.SHUT_RDWR)
        self.tr.join(30)
        self.sock.close()


def test_established_tcp_survives_restore_into_a_fresh_vm(env, net):
    """A host client holds a connection to the container and keeps writing
    through a checkpoint with --tcp-established and a restore into a fresh
    VM: no reset, every byte echoed once and in order. The listener takes new
    connections at the same address afterwards."""
    b = write_bundle(env.tmp / "b", ["payload", "echo-server", "7000"], extra=joining(net.path))
    out = start(env, "tcp", b)
    assert wait_for(lambda: lines(out)[:1] == ["listening 7000"])
    w = Writer(net.ip, 7000)
    assert wait_for(lambda: len(w.echoed) > 100)
    r = env.run("checkpoint", "--image-path", str(env.tmp / "ck"), "--tcp-established", "tcp", timeout=600)
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: env.state("tcp")["status"] == "stopped")
    # Between the dump and the restore the container's address drops.
    assert "(Egress Mirror to device *) drop" in net.tc("filter", "show", "dev", "eth0", "ingress")
    held = len(w.echoed)
    env.run("delete", "tcp", check=True)
    with open(env.tmp / "r.out", "wb") as o, open(env.tmp / "r.err", "wb") as e:
        rc = subprocess.run([str(COCOON), "--root", str(env.root), "--config", str(env.config), "restore",
                             "--image-path", str(env.tmp / "ck"), "--bundle", str(b.path), "--detach",
                             "--tcp-established", "tcp"],
                            stdin=subprocess.DEVNULL, stdout=o, stderr=e, timeout=600).returncode
    assert rc == 0, (env.tmp / "r.err").read_text()
    assert " drop" not in net.tc("filter", "show", "dev", "eth0", "ingress")
    assert wait_for(lambda: len(w.echoed) > held + 200 or w.error, timeout=120), "no echo after the restore"
    w.finish()
    assert w.error is None, w.error
    assert bytes(w.echoed) == bytes(w.sent)
    reply = Writer(net.ip, 7000)
    assert wait_for(lambda: len(reply.echoed) > 10)
    reply.finish()
    env.run("delete", "--force", "tcp", check=True)


def checkpoint_echo_connection(env, net, cid):
    """An echo server in container cid with a host client writing to it,
    checkpointed with --tcp-established into env.tmp/ck and deleted.
    Returns the bundle and the client, whose connection is held open."""
    b = write_bundle(env.tmp / "b", ["payload", "echo-server", "7000"], extra=joining(net.path))
    out = start(env, cid, b)
    assert wait_for(lambda: lines(out)[:1] == ["listening 7000"])
    w = Writer(net.ip, 7000)
    assert wait_for(lambda: len(w.echoed) > 100)
    r = env.run("checkpoint", "--image-path", str(env.tmp / "ck"), "--tcp-established", cid, timeout=600)
    assert r.returncode == 0, r.stderr
    env.run("delete", cid, check=True)
    return b, w


def test_established_tcp_survives_restore_into_a_namespace_made_anew(env, net):
    """podman's restore: the engine deletes the container's namespace after
    the checkpoint and makes a new one with the same address and MAC just
    before it calls restore. From then on the new namespace's own stack,
    and then the new guest before CRIU has restored the sockets, would
    answer the client's retransmissions with a reset: the restore holds
    the address (seen in tc while it runs) until the connection is back."""
    b, w = checkpoint_echo_connection(env, net, "anew")
    held = len(w.echoed)
    net.remake()
    assert "drop" not in net.tc("filter", "show", "dev", "eth0", "ingress")
    with open(env.tmp / "r.out", "wb") as o, open(env.tmp / "r.err", "wb") as e:
        p = subprocess.Popen([str(COCOON), "--root", str(env.root), "--config", str(env.config), "restore",
                              "--image-path", str(env.tmp / "ck"), "--bundle", str(b.path), "--detach",
                              "--tcp-established", "anew"],
                             stdin=subprocess.DEVNULL, stdout=o, stderr=e)
        held_during_restore = False
        while p.poll() is None:
            held_during_restore |= " drop" in net.tc("filter", "show", "dev", "eth0", "ingress")
            time.sleep(0.05)
    assert p.returncode == 0, (env.tmp / "r.err").read_text()
    assert held_during_restore, "the address was not held while the restore ran"
    assert " drop" not in net.tc("filter", "show", "dev", "eth0", "ingress")
    assert wait_for(lambda: len(w.echoed) > held + 200 or w.error, timeout=120), "no echo after the restore"
    w.finish()
    assert w.error is None, w.error
    assert bytes(w.echoed) == bytes(w.sent)
    env.run("delete", "--force", "anew", check=True)


def test_restore_on_other_addresses_is_named(env, net):
    """A checkpoint with an established connection restored on a namespace
    whose address changed fails, saying why, and leaves nothing behind."""
    b, w = checkpoint_echo_connection(env, net, "moved")
    w.stop = True
    net.remake(ip=net.ip.rsplit(".", 1)[0] + ".3")
    rc, _, err = env.restore_detached("moved", env.tmp / "ck", b, "--tcp-established", check=False)
    assert rc != 0
    text = err.read_text()
    assert "local address the container's network does not have" in text, text
    assert not (env.root / "moved").exists(), "a failed restore left its state behind"
    w.sock.close()


def create_error(env, cid, extra):
    b = write_bundle(env.tmp / cid, ["payload", "echo", "x"], extra=extra)
    rc, out, err = env.create(cid, b)
    assert rc != 0
    assert not (env.root / cid).exists(), "a failed create left its state behind"
    return err.read_text()


def test_bad_network_namespaces_are_named(env):
    text = create_error(env, "nopath", joining("/run/netns/cocoon-no-such-netns"))
    assert "/run/netns/cocoon-no-such-netns" in text and "No such file" in text, text

    def host_network(spec):
        spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "network"]
    text = create_error(env, "hostnet", host_network)
    assert "host networking" in text, text

    text = create_error(env, "notns", joining("/etc/passwd"))
    assert "/etc/passwd is not a network namespace" in text, text

    empty = Net("e")
    try:
        sh("ip", "-n", empty.ns, "link", "del", "eth0")
        text = create_error(env, "empty", joining(empty.path))
        assert "has no interface besides lo" in text, text
        sh("ip", "-n", empty.ns, "link", "add", "br0", "type", "bridge")
        text = create_error(env, "bridge", joining(empty.path))
        assert "interface br0 is of type bridge" in text and "only veth and macvlan" in text, text
        assert "cctap" not in sh("ip", "-n", empty.ns, "link")
    finally:
        empty.close()
