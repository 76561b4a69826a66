"""The network part of `make bench` (issue 14): what it costs to reach a
container over the engine's network, cocoon against runc on this host, in
one run.

Three paths from a client in the host's root namespace to a server in the
container, each on a namespace made the way CNI's ptp plugin makes one (a
veth pair, the container's address on the namespace's end, the gateway
address on the host's end):

- runc: host stack -> veth -> the container's stack (no VM);
- cocoon: host stack -> veth -> tc u32 + mirred redirect -> tap -> QEMU
  (virtio-net, vhost=off) -> the guest's stack (docs/networking.md);
- cocoon, tap alone: the same VM after the bench moves its tap into the
  root namespace, gives it the gateway's address (and the veth's MAC, which
  the guest's neighbour entry holds) and takes the address off the veth:
  host stack -> tap -> QEMU -> guest, with no veth and no tc. The difference
  to the line above is what the tc redirect and the veth cost.

Each path measures a stream (the host sends N MiB to `payload sink`, which
answers the byte count after EOF: MiB/s from the first byte to that answer)
and a ping-pong round trip (64 bytes to `payload echo-server` and back,
TCP_NODELAY, one connection, median and 99th percentile in microseconds).
The client is the same Python code for all three.

This host has no /dev/vhost-net, so QEMU's main loop moves every frame; the
report says what vhost-net would change (docs/networking.md).
"""
import json
import os
import pathlib
import shutil
import socket
import statistics
import subprocess
import time

SINK, ECHO = 5001, 5002


def sh(*cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return r.stdout


class NetNs:
    """ip netns NAME with eth0 at 10.213.SUB.2/24 and the peer HOSTIF in the
    root namespace at 10.213.SUB.1/24 (CNI's ptp layout)."""

    def __init__(self, tag, sub):
        self.ns = f"cbn-{tag}-{os.getpid()}"
        self.path = f"/run/netns/{self.ns}"
        self.hostif = f"cbv{tag}{os.getpid() % 100000}"[:15]
        self.ip = f"10.213.{sub}.2"
        self.gw = f"10.213.{sub}.1"
        sh("ip", "netns", "add", self.ns)
        try:
            sh("ip", "link", "add", self.hostif, "type", "veth", "peer", "name", "eth0", "netns", self.ns)
            sh("ip", "addr", "add", f"{self.gw}/24", "dev", self.hostif)
            sh("ip", "link", "set", self.hostif, "up")
            sh("ip", "-n", self.ns, "link", "set", "lo", "up")
            sh("ip", "-n", self.ns, "addr", "add", f"{self.ip}/24", "dev", "eth0")
            sh("ip", "-n", self.ns, "link", "set", "eth0", "up")
            sh("ip", "-n", self.ns, "route", "add", "default", "via", self.gw)
        except RuntimeError:
            self.close()
            raise

    def close(self):
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.hostif], capture_output=True)


def wait_port(ip, port, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection((ip, port), timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing answers at {ip}:{port} after {timeout} s")


def stream(ip, nbytes):
    """MiB/s for nbytes sent to the sink, up to its byte count answer."""
    chunk = b"\xa5" * (256 << 10)
    with socket.create_connection((ip, SINK), timeout=300) as s:
        t0 = time.monotonic()
        left = nbytes
        while left:
            n = min(left, len(chunk))
            s.sendall(chunk[:n])
            left -= n
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while not reply.endswith(b"\n"):
            got = s.recv(64)
            if not got:
                break
            reply += got
        dt = time.monotonic() - t0
    if reply.strip() != str(nbytes).encode():
        raise RuntimeError(f"the sink at {ip} counted {reply!r}, not {nbytes}")
    return nbytes / dt / (1 << 20)


def pingpong(ip, rounds):
    """Round-trip times in microseconds, after 20 unmeasured rounds."""
    msg = b"p" * 64
    out = []
    with socket.create_connection((ip, ECHO), timeout=60) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(rounds + 20):
            t0 = time.perf_counter_ns()
            s.sendall(msg)
            got = 0
            while got < len(msg):
                b = s.recv(len(msg) - got)
                if not b:
                    raise RuntimeError(f"the echo server at {ip} closed the connection")
                got += len(b)
            if i >= 20:
                out.append((time.perf_counter_ns() - t0) / 1000)
    return out


def measure(ip, nbytes, runs, rounds):
    # One unmeasured stream: the first pays for slow start and cold caches.
    stream(ip, min(nbytes, 4 << 20))
    mibs = [stream(ip, nbytes) for _ in range(runs)]
    rtts = pingpong(ip, rounds)
    rtts.sort()
    return {"stream_mib_s": mibs, "rtt_us": {"median": statistics.median(rtts),
                                              "p99": rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))],
                                              "min": rtts[0], "n": len(rtts)}}


SERVERS = f"payload sink {SINK} & exec payload echo-server {ECHO}"


def bundle(path, payload):
    (path / "rootfs" / "bin").mkdir(parents=True)
    shutil.copy(payload, path / "rootfs" / "bin")
    shutil.copy("/bin/busybox", path / "rootfs" / "bin")
    (path / "rootfs" / "bin" / "sh").symlink_to("busybox")
    return path


def set_spec(spec_path, netns):
    spec = json.loads(spec_path.read_text())
    spec["process"]["args"] = ["/bin/sh", "-c", SERVERS]
    spec["process"]["terminal"] = False
    spec["process"]["env"] = ["PATH=/bin"]
    for ns in spec["linux"]["namespaces"]:
        if ns["type"] == "network":
            ns["path"] = netns
    spec_path.write_text(json.dumps(spec))


def run_cocoon(work, cocoon, payload, nbytes, runs, rounds):
    b = bundle(work / "cocoon-bundle", payload)
    config = work / "net-config.toml"
    config.write_text("[vm]\nmemory_mib = 512\n")
    base = [str(cocoon), "--root", str(work / "net-state"), "--config", str(config)]
    subprocess.run([str(cocoon), "spec", "--bundle", str(b)], check=True)
    n = NetNs("c", 1)
    cid = f"net{os.getpid()}"
    try:
        set_spec(b / "config.json", n.path)
        with open(work / "net.out", "wb") as o:
            r = subprocess.run([*base, "create", "--bundle", str(b), cid], stdin=subprocess.DEVNULL,
                               stdout=o, stderr=subprocess.STDOUT, timeout=300)
        if r.returncode:
            raise RuntimeError(f"cocoon create: {(work / 'net.out').read_text()}")
        sh(*base, "start", cid)
        wait_port(n.ip, ECHO)
        redirect = measure(n.ip, nbytes, runs, rounds)
        # The tap alone: the veth and tc out of the path (module docstring).
        tap = next(l.split(":")[1].strip() for l in sh("ip", "-n", n.ns, "-o", "link", "show").splitlines()
                   if l.split(":")[1].strip().startswith("cctap"))
        mac = json.loads(sh("ip", "-j", "link", "show", n.hostif))[0]["address"]
        root_tap = f"cbt{os.getpid() % 100000}"
        sh("ip", "addr", "del", f"{n.gw}/24", "dev", n.hostif)
        sh("ip", "-n", n.ns, "link", "set", tap, "netns", "1", "name", root_tap)
        try:
            sh("ip", "link", "set", root_tap, "address", mac)
            sh("ip", "addr", "add", f"{n.gw}/24", "dev", root_tap)
            sh("ip", "link", "set", root_tap, "up")
            wait_port(n.ip, ECHO, timeout=30)
            alone = measure(n.ip, nbytes, runs, rounds)
        finally:
            # The tap goes with QEMU; give it back first so nothing of the
            # VM is left in the root namespace if delete fails.
            subprocess.run(["ip", "link", "set", root_tap, "netns", n.ns, "name", tap], capture_output=True)
        return redirect, alone
    finally:
        subprocess.run([*base, "delete", "--force", cid], capture_output=True, stdin=subprocess.DEVNULL,
                       timeout=120)
        n.close()


def run_runc(work, payload, nbytes, runs, rounds):
    b = bundle(work / "runc-bundle", payload)
    subprocess.run(["runc", "spec", "--bundle", str(b)], check=True)
    n = NetNs("r", 2)
    root = work / "runc-state"
    cid = f"netr{os.getpid()}"
    try:
        set_spec(b / "config.json", n.path)
        with open(work / "runc.out", "wb") as o:
            r = subprocess.run(["runc", "--root", str(root), "run", "--detach", "--bundle", str(b), cid],
                               stdin=subprocess.DEVNULL, stdout=o, stderr=subprocess.STDOUT, timeout=120)
        if r.returncode:
            raise RuntimeError(f"runc run: {(work / 'runc.out').read_text()}")
        wait_port(n.ip, ECHO, timeout=30)
        return measure(n.ip, nbytes, runs, rounds)
    finally:
        subprocess.run(["runc", "--root", str(root), "delete", "--force", cid], capture_output=True)
        n.close()


def summary(m):
    s = m["stream_mib_s"]
    return {"stream_mib_s": {"median": statistics.median(s), "min": min(s), "max": max(s), "n": len(s)},
            "rtt_us": m["rtt_us"]}


def measure_network(work, cocoon, payload, quick):
    """Returns (results, None) or (None, why it was skipped)."""
    if not shutil.which("runc"):
        return None, "runc is not installed"
    if not shutil.which("ip"):
        return None, "iproute2 (ip) is not installed"
    nbytes = (16 if quick else 64) << 20
    runs = 1 if quick else 3
    rounds = 200 if quick else 1000
    work = pathlib.Path(work) / "net"
    work.mkdir()
    out = {"stream_mib": nbytes >> 20, "rtt_rounds": rounds,
           "vhost_net": os.path.exists("/dev/vhost-net")}
    try:
        runc = run_runc(work, payload, nbytes, runs, rounds)
        redirect, alone = run_cocoon(work, cocoon, payload, nbytes, runs, rounds)
    except Exception as e:  # noqa: BLE001  (the rest of `make bench` still reports)
        return None, f"the network bench failed: {type(e).__name__}: {e}"
    out["runc"], out["cocoon"], out["cocoon_tap_alone"] = summary(runc), summary(redirect), summary(alone)
    r, c, t = (out[k] for k in ("runc", "cocoon", "cocoon_tap_alone"))
    cr, tr, rr = (x["rtt_us"]["median"] for x in (c, t, r))
    cs, ts, rs = (x["stream_mib_s"]["median"] for x in (c, t, r))
    out["ratios"] = {
        "stream_cocoon_vs_runc": round(cs / rs, 4),
        "rtt_cocoon_vs_runc": round(cr / rr, 2),
        "stream_tap_alone_vs_cocoon": round(ts / cs, 3),
        "rtt_tc_redirect_us": round(cr - tr, 1),
        # Of cocoon's extra round-trip time over runc, the part the veth +
        # tc redirect account for (the rest is tap + QEMU + guest).
        "rtt_gap_share_of_tc_redirect": round((cr - tr) / (cr - rr), 3) if cr > rr else None,
    }
    return out, None


def report(n):
    def row(label, k):
        v = n[k]
        s, rt = v["stream_mib_s"], v["rtt_us"]
        return (label.ljust(40) + f"{s['median']:.1f} ({s['min']:.1f}-{s['max']:.1f})".rjust(22)
                + f"{rt['median']:.0f} / {rt['p99']:.0f}".rjust(20))
    print()
    print(f"network, host -> container ({n['stream_mib']} MiB stream, {n['rtt_rounds']} x 64-byte ping-pong)")
    print("".ljust(40) + "stream MiB/s".rjust(22) + "RTT us median/p99".rjust(20))
    print(row("runc (veth, no VM)", "runc"))
    print(row("cocoon (veth + tc redirect + tap)", "cocoon"))
    print(row("cocoon, tap alone (no veth, no tc)", "cocoon_tap_alone"))
    r = n["ratios"]
    share = r["rtt_gap_share_of_tc_redirect"]
    print(f"  cocoon / runc: stream {r['stream_cocoon_vs_runc']:.3f}x, RTT {r['rtt_cocoon_vs_runc']:.1f}x; "
          f"tc redirect + veth: {r['rtt_tc_redirect_us']:.0f} us of the RTT"
          + (f" ({share * 100:.1f}% of the gap to runc)" if share is not None else "")
          + f", tap alone streams {r['stream_tap_alone_vs_cocoon']:.2f}x as fast")
    print("  vhost-net: " + ("present but not used (vhost=off)" if n["vhost_net"] else
                             "absent on this host (/dev/vhost-net): QEMU's main loop moves every frame"))
