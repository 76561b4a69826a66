"""A spec that asks for a new network namespace without a path: the runtime
makes it, and the engine may configure it through /proc/<pid>/ns/net of the
pid the runtime reports (podman 4.3 with --uidmap runs netavark on it). That
pid is cocoon's shim: it must be in a namespace of its own, with the keeper,
QEMU and virtiofsd, never in the host's (docs/networking.md). Before the fix
netavark configured the host's namespace (here it failed only because the
host has an eth0 already), and `ctr run`'s shim sat in the host's."""
import json
import os
import socket
import subprocess
import time

from conftest import wait_for
from podman_util import podman  # noqa: F401  (the fixture)

try:  # shape3 moves the containerd harness; either place will do
    from containerd_util import IMAGE, run_args, task_status
except ImportError:
    from test_containerd import IMAGE, run_args, task_status
from test_containerd import cd, task_pid  # noqa: F401  (the fixture)


def netns(pid):
    return os.readlink(f"/proc/{pid}/ns/net")


def host_links():
    """The host's interfaces: name -> (kind, master, addresses). Addresses
    of global scope only: a new veth gets an IPv6 link-local one by itself."""
    out = subprocess.run(["ip", "-j", "-d", "addr"], capture_output=True, text=True,
                         check=True).stdout
    links = {}
    for link in json.loads(out):
        kind = (link.get("linkinfo") or {}).get("info_kind", "")
        addrs = {f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])
                 if a.get("scope") == "global"}
        links[link["ifname"]] = (kind, link.get("master"), addrs)
    return links


def descendants(pid):
    """PID and every process below it (the keeper, QEMU, virtiofsd)."""
    children = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(p))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def assert_own_netns(pid):
    host = netns(os.getpid())
    assert netns(pid) != host, f"the reported pid {pid} is in the host's network namespace"
    tree = descendants(pid)
    assert len(tree) > 1, f"the shim {pid} has no QEMU below it"
    for p in tree:
        try:
            assert netns(p) == netns(pid), f"process {p} below the shim is in another namespace"
        except FileNotFoundError:
            pass  # ended meanwhile


def test_podman_uidmap_configures_the_shims_namespace_not_the_hosts(podman):
    """podman --uidmap with its default network: netavark configures the
    namespace of the pid cocoon reports. The host gains only what it gains
    under runc (netavark's bridge and the veth's host end on it); none of
    its interfaces gets an address, the container's address is not the
    host's, and the container runs."""
    image = podman.image
    before = host_links()
    r = podman.run("run", "-d", "--name", "um1", "--uidmap", "0:100000:65536", image,
                   "sh", "-c", "echo started; exec sleep 600")
    assert r.returncode == 0, r.stdout + r.stderr
    assert wait_for(lambda: "started" in podman.run("logs", "um1").stdout, timeout=60), \
        podman.run("logs", "um1").stdout
    pid = int(podman.check("inspect", "-f", "{{.State.Pid}}", "um1").stdout)
    assert_own_netns(pid)
    ip = podman.check("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "um1").stdout.strip()
    assert ip, "podman gave the container no address"
    inside = subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", "-j", "addr"],
                            capture_output=True, text=True, check=True).stdout
    assert any(a.get("local") == ip for link in json.loads(inside)
               for a in link.get("addr_info", [])), f"{ip} is not in the shim's namespace: {inside}"
    after = host_links()
    for name, (kind, master, addrs) in after.items():
        assert not any(a.split("/")[0] == ip for a in addrs), f"the host's {name} has {ip}"
        if name in before:
            assert addrs == before[name][2], f"the host's {name}: {before[name][2]} -> {addrs}"
        else:
            assert kind in ("veth", "bridge"), f"a new {kind} {name} in the host's namespace"
            assert kind == "bridge" or master in after, f"new veth {name} on no bridge"
    podman.check("rm", "-f", "-t", "0", "um1")


def test_podman_uidmap_network_configured_after_create_reaches_the_container(podman):
    """podman --uidmap configures its default network (netavark: eth0, the
    address, the default route) in the shim's namespace after `create`, as
    under runc: the VM booted with a NIC reserved for it, and at `start` the
    shim carries what is there into the guest. The container sees its
    address on eth0 and reaches a listener on the host through the bridge's
    gateway (before: loopback only, `ip` found no eth0 and nothing
    connected)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", 0))
    listener.listen(4)
    listener.settimeout(5)
    port = listener.getsockname()[1]
    token = f"late-{os.getpid()}"
    name = f"nl{os.getpid()}"
    script = ("ip -o -4 addr show dev eth0 || echo no-eth0; set -- $(ip route show default); "
              f"i=0; while [ $i -lt 60 ]; do echo {token} | nc \"$3\" {port} && break; "
              "i=$((i+1)); sleep 1; done; echo tried $i; exec sleep 600")
    try:
        r = podman.run("run", "-d", "--name", name, "--uidmap", "0:100000:65536", podman.image,
                       "sh", "-c", script)
        assert r.returncode == 0, r.stdout + r.stderr
        ip = podman.check("inspect", "-f", "{{.NetworkSettings.IPAddress}}", name).stdout.strip()
        gw = podman.check("inspect", "-f", "{{.NetworkSettings.Gateway}}", name).stdout.strip()
        assert ip and gw, f"podman gave the container no address ({ip!r}) or gateway ({gw!r})"
        got, peer, local = b"", None, None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and token.encode() not in got:
            try:
                conn, peer = listener.accept()
            except socket.timeout:
                if "tried" in podman.run("logs", name).stdout:
                    break  # the container gave up
                continue
            with conn:
                conn.settimeout(10)
                local = conn.getsockname()
                got = b""
                # Until the token: nc may wait for this end to close first.
                while token.encode() not in got and (chunk := conn.recv(4096)):
                    got += chunk
        logs = podman.run("logs", name).stdout
        assert f"inet {ip}/" in logs and "eth0" in logs, \
            f"the container does not see {ip} on eth0: {logs}"
        assert token.encode() in got, f"nothing from the container reached the gateway: {logs}"
        assert peer[0] == ip, f"the connection came from {peer[0]}, not the container's {ip}"
        assert local[0] == gw, f"the connection reached {local[0]}, not the gateway {gw}"
        pid = int(podman.check("inspect", "-f", "{{.State.Pid}}", name).stdout)
        assert_own_netns(pid)
    finally:
        listener.close()
        podman.run("rm", "-f", "-t", "0", name)


def test_ctr_run_shim_has_its_own_netns_and_the_host_is_untouched(cd):  # noqa: F811
    """Plain `ctr run` (no --cni) asks a new namespace without a path: the
    shim, its QEMU and virtiofsd sit in one of their own, which has only
    `lo`; the host's interfaces and addresses are as before; the container
    runs, and a checkpoint and live restore still work, the restored shim in
    a namespace of its own too."""
    cid = f"nsown{os.getpid()}"
    before = host_links()
    r = cd.ctr(*run_args("-d", IMAGE, cid, "sh", "-c", "payload counter 100 > /tmp/count"))
    assert r.returncode == 0, r.stderr
    try:
        assert wait_for(lambda: task_status(cd, cid) == "RUNNING", timeout=60)
        pid = task_pid(cd, cid)
        assert_own_netns(pid)
        inside = subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", "-j", "link"],
                                capture_output=True, text=True, check=True).stdout
        assert [link["ifname"] for link in json.loads(inside)] == ["lo"], inside
        assert host_links() == before, "the host's interfaces changed"
        time.sleep(1)
        r = cd.ctr("containers", "checkpoint", "--rw", "--task", cid, f"cocoon/{cid}:ck",
                   timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        cd.ctr("tasks", "kill", "-s", "KILL", cid)
        assert wait_for(lambda: task_status(cd, cid) == "STOPPED", timeout=60)
        cd.ctr("tasks", "delete", cid)
        assert cd.ctr("containers", "delete", cid).returncode == 0
        r = cd.ctr("containers", "restore", "--rw", "--live", cid, f"cocoon/{cid}:ck",
                   timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        assert wait_for(lambda: task_status(cd, cid) == "RUNNING", timeout=60)
        restored = task_pid(cd, cid)
        assert restored != pid
        assert_own_netns(restored)
        r = cd.ctr("tasks", "exec", "--exec-id", "n1", cid, "sh", "-c", "cat /tmp/count | wc -l")
        assert int(r.stdout.strip() or 0) > 0, r.stdout + r.stderr
        assert host_links() == before, "the host's interfaces changed"
    finally:
        cd.ctr("tasks", "kill", "-s", "KILL", cid)
        wait_for(lambda: task_status(cd, cid) in ("STOPPED", None), timeout=60)
        cd.ctr("tasks", "delete", cid)
        cd.ctr("containers", "delete", cid)
        cd.ctr("images", "rm", f"cocoon/{cid}:ck")
