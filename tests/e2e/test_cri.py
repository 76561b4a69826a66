"""A Kubernetes pod through containerd 1.6's own CRI plugin, driven over its
gRPC API as the kubelet drives it (RunPodSandbox, CreateContainer,
ExecSync, StopPodSandbox, ...), with cocoon as the runc shim's BinaryName
(docs/containerd.md "containerd configuration"). The specs are the ones CRI
writes itself: the sandbox's annotations, the CNI network namespace, the
members' /proc/<sandbox pid>/ns paths, the sandbox's /dev/shm, hostname and
resolv.conf mounts (test_containerd_pods.py gives ctr specs shaped like
them). Debian 12 packages no CRI client, but it has gRPC for Python
(python3-grpcio, python3-grpc-tools): tests/e2e/cri/cri.proto, the subset of
CRI's API used here, is compiled at test time. The pod's network is the CNI
bridge plugin (containernetworking-plugins) on a bridge of the test's own."""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid

import pytest

from conftest import COCOON, pids_mentioning, qemu_pids, wait_for
from containerd_util import IMAGE, build_image, mounts_under

NS = "k8s.io"  # CRI's containerd namespace
APP = IMAGE  # its command: `payload echo default`
PAUSE = "docker.io/library/cocoon-test-pause:latest"  # the sandbox_image: `payload sleep`
BRIDGE, SUBNET, GW = "cocooncri0", "10.198.16.0/24", "10.198.16.1"
CNI_BIN = pathlib.Path("/usr/lib/cni")
PROTO = pathlib.Path(__file__).parent / "cri" / "cri.proto"
FETCH = "printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | busybox nc 127.0.0.1 8080"


def grpc_modules(out):
    """cri_pb2 and cri_pb2_grpc, compiled from PROTO into OUT."""
    try:
        import grpc  # noqa: F401
        from grpc_tools import protoc
    except ImportError as e:
        pytest.skip(f"no gRPC for Python ({e}): Debian packages python3-grpcio and python3-grpc-tools")
    shutil.copy(PROTO, out / "cri.proto")
    r = protoc.main(["protoc", f"-I{out}", f"--python_out={out}", f"--grpc_python_out={out}", str(out / "cri.proto")])
    assert r == 0, f"protoc {PROTO} failed ({r})"
    sys.path.insert(0, str(out))
    import cri_pb2
    import cri_pb2_grpc
    return cri_pb2, cri_pb2_grpc


class Cri:
    """A private containerd with its CRI plugin on, cocoon as the runtime of
    every pod, and the test image (its pause too) imported."""

    def __init__(self, tmp):
        import grpc
        self.tmp = tmp
        self.pb, pbg = grpc_modules(tmp)
        # The runc shim's root for cocoon (its option Root; by default
        # /run/containerd/runc/k8s.io, a real node's): a short path of the
        # test's own, as <root>/<64-hex id>/shim.sock must fit a socket
        # address (108 bytes).
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="cri-", dir="/tmp"))
        (tmp / "cni").mkdir()
        (tmp / "logs").mkdir()
        (tmp / "cni" / "10-cocoon-test.conflist").write_text(json.dumps({
            "cniVersion": "0.4.0", "name": "cocoon-cri-test", "plugins": [
                {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": SUBNET}]], "dataDir": str(tmp / "ipam")}}]}))
        self.cocoon_config = tmp / "cocoon.toml"
        self.cocoon_config.write_text("")
        self.sock = tmp / "containerd.sock"
        (tmp / "containerd.toml").write_text(f"""version = 2
root = "{tmp}/root"
state = "{tmp}/state"
[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{self.sock}.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{tmp}/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "cocoon"
    snapshotter = "native"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.cocoon]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.cocoon.options]
        BinaryName = "{COCOON}"
        Root = "{self.root}"
""")
        self.log = open(tmp / "containerd.log", "wb")
        self.proc = subprocess.Popen(["containerd", "--config", str(tmp / "containerd.toml")],
                                     stdout=self.log, stderr=self.log,
                                     env={**os.environ, "COCOON_CONFIG": str(self.cocoon_config),
                                          "XDG_RUNTIME_DIR": str(tmp)})
        self.channel = grpc.insecure_channel(f"unix://{self.sock}")
        self.rt = pbg.RuntimeServiceStub(self.channel)
        self.sandboxes = []
        self.pod_uids = []
        try:
            assert wait_for(lambda: self.proc.poll() is None and self.ctr("version").returncode == 0,
                            timeout=30), (tmp / "containerd.log").read_text()[-2000:]
            for image in (build_image(tmp), build_image(tmp, PAUSE, ("payload", "sleep", "1000000"))):
                r = self.ctr("images", "import", "--snapshotter", "native", str(image))
                assert r.returncode == 0, r.stderr
        except BaseException:
            self.stop()
            raise

    def ctr(self, *args, timeout=120):
        return subprocess.run(["ctr", "--address", str(self.sock), "--namespace", NS, *args],
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def stop(self):
        for sb in self.sandboxes:
            for call, req in ((self.rt.StopPodSandbox, self.pb.StopPodSandboxRequest),
                              (self.rt.RemovePodSandbox, self.pb.RemovePodSandboxRequest)):
                try:
                    call(req(pod_sandbox_id=sb), timeout=120)
                except Exception:  # noqa: BLE001 (the leftovers are ended below)
                    pass
        self.channel.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        # What the pods left: shims (their -address is in tmp), cocoon's
        # shims and keepers (their --root), QEMU (its paths under the root).
        for pid in {*pids_mentioning(str(self.tmp)), *pids_mentioning(str(self.root)), *qemu_pids(str(self.root))}:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for m in sorted([*mounts_under(self.tmp), *mounts_under(self.root)], key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
        # The pods' cgroups (the kubelet's to make and remove; here cocoon
        # made them from cgroupsPath): whatever a failed test left, empty.
        for uid in self.pod_uids:
            for d in [*pathlib.Path("/sys/fs/cgroup").glob(f"*/kubepods/pod{uid}"),
                      *pathlib.Path("/sys/fs/cgroup").glob(f"kubepods/pod{uid}")]:
                for sub in sorted(d.glob("*/"), key=lambda x: len(str(x)), reverse=True):
                    subprocess.run(["rmdir", str(sub)], capture_output=True)
                subprocess.run(["rmdir", str(d), str(d.parent)], capture_output=True)
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)


@pytest.fixture(scope="module")
def cri(tmp_path_factory):
    for tool in ("containerd", "ctr"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (Debian package containerd)")
    if not (CNI_BIN / "bridge").exists():
        pytest.skip(f"no CNI bridge plugin in {CNI_BIN} (Debian package containernetworking-plugins)")
    c = Cri(tmp_path_factory.mktemp("cri"))
    try:
        yield c
    finally:
        c.stop()


def vm_arg(pid, flag):
    args = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    return args[args.index(flag) + 1]


def ours(root):
    """The shims and keepers of the pods under the runc shim's root."""
    out = []
    for p in pids_mentioning(str(root)):
        try:
            if os.path.basename(os.readlink(f"/proc/{p}/exe")) == "cocoon":
                out.append(p)
        except OSError:
            pass  # gone meanwhile
    return out


def test_kubernetes_pod_through_containerds_cri_plugin(cri):
    """One pod as the kubelet makes it: the pause container boots the pod's
    VM, sized from the pod's resources (256 MiB, 1 CPU: -m 256 + 128 + 256
    of checkpoint room), and its app containers run in it: localhost between
    them, a SysV segment, a /dev/shm file and the hostname shared, the pod
    IP on eth0 and reachable from the host, each container's own exit code
    and log; a container that does not fit is refused through CRI with
    cocoon's message; `cocoon checkpoint --pod --leave-running` of the pod,
    with the runc shim's root, as a CRI runtime would call it; the VM lives
    while a container runs, and the pod's removal leaves no VM, shim,
    keeper, state or mount."""
    # The runc shim gives cocoon its Root option joined with the namespace
    # (containerd's process.NewRunc): <Root>/k8s.io.
    pb, rt, root = cri.pb, cri.rt, cri.root / NS
    before = set(qemu_pids(str(root)))
    uid = uuid.uuid4().hex
    cri.pod_uids.append(uid)
    ns_opt = pb.NamespaceOption(network=pb.POD, pid=pb.CONTAINER, ipc=pb.POD)
    sb_config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name="web", uid=uid, namespace="default"),
        hostname="webpod", log_directory=str(cri.tmp / "logs"),
        dns_config=pb.DNSConfig(servers=[GW], searches=["default.svc"]),
        linux=pb.LinuxPodSandboxConfig(
            cgroup_parent=f"/kubepods/pod{uid}",
            security_context=pb.LinuxSandboxSecurityContext(namespace_options=ns_opt),
            resources=pb.LinuxContainerResources(memory_limit_in_bytes=256 << 20,
                                                 cpu_period=100000, cpu_quota=100000)))
    sb = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=sb_config, runtime_handler="cocoon"),
                          timeout=300).pod_sandbox_id
    cri.sandboxes.append(sb)
    vms = sorted(set(qemu_pids(str(root))) - before)
    assert len(vms) == 1, f"the pause container boots one VM: {vms}"
    assert (vm_arg(vms[0], "-m"), vm_arg(vms[0], "-smp")) == ("640", "1")
    ip = rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sb), timeout=60).status.network.ip
    assert ip.startswith(SUBNET.rsplit(".", 2)[0]), ip

    def create(name, script, memory=0, start=True):
        config = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name), image=pb.ImageSpec(image=APP),
            command=["sh"], args=["-c", script], log_path=f"{name}.log",
            linux=pb.LinuxContainerConfig(
                resources=pb.LinuxContainerResources(memory_limit_in_bytes=memory),
                security_context=pb.LinuxContainerSecurityContext(namespace_options=ns_opt)))
        cid = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sb, config=config,
                                                           sandbox_config=sb_config), timeout=300).container_id
        if start:
            rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=300)
        return cid

    def run_in(cid, script):
        r = rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", script], timeout=60), timeout=90)
        return r.exit_code, r.stdout.decode(), r.stderr.decode()

    web = create("web", "busybox mkdir -p /www && echo hello from web > /www/index.html && "
                        "busybox httpd -p 127.0.0.1:8080 -h /www && busybox httpd -p 8081 -h /www && "
                        "exec payload sleep 100000")
    client = create("client", "exec payload sleep 100000")
    assert sorted(set(qemu_pids(str(root))) - before) == vms, "the app containers run in the pod's VM"

    assert wait_for(lambda: "hello from web" in run_in(client, FETCH)[1], timeout=30), run_in(client, FETCH)
    assert run_in(web, "payload shm-put 4242 sysv-of-web && echo shm-of-web > /dev/shm/f")[0] == 0
    rc, out, err = run_in(client, "payload shm-get 4242; cat /dev/shm/f; payload hostname; busybox ip -4 addr show eth0")
    assert out.split()[:3] == ["sysv-of-web", "shm-of-web", "webpod"], (rc, out, err)
    assert f"inet {ip}/" in out, out
    assert GW in run_in(client, "cat /etc/resolv.conf")[1]
    r = subprocess.run(["sh", "-c", f"printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 5 {ip} 8081"],
                       capture_output=True, text=True, timeout=30)
    assert "hello from web" in r.stdout, r.stdout + r.stderr

    # More memory than the pod has: refused at its start (CRI creates the
    # task then), naming the pod; the pod's VM as it was.
    import grpc
    big = create("big", "exec payload sleep 100", memory=300 << 20, start=False)
    with pytest.raises(grpc.RpcError) as refused:
        rt.StartContainer(pb.StartContainerRequest(container_id=big), timeout=300)
    assert f"its memory limit of 300 MiB does not fit in pod {sb}" in refused.value.details(), \
        refused.value.details()
    assert sorted(set(qemu_pids(str(root))) - before) == vms, "the refusal changed the pod's VM"
    assert not (root / big).exists(), "the refused container left its state"
    rt.RemoveContainer(pb.RemoveContainerRequest(container_id=big), timeout=120)

    one = create("oneshot", "echo out-of-oneshot; echo err-of-oneshot >&2; exit 7")

    def exited():
        s = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=one), timeout=30).status
        return [s] if s.state == pb.CONTAINER_EXITED else None
    status = wait_for(exited, timeout=60)
    assert status and status[0].exit_code == 7, status
    log = (cri.tmp / "logs" / "oneshot.log").read_text()
    assert "stdout F out-of-oneshot" in log and "stderr F err-of-oneshot" in log, log
    rt.RemoveContainer(pb.RemoveContainerRequest(container_id=one), timeout=120)

    # The whole pod's checkpoint, the pod left running (docs/pods.md), with
    # the root the runc shim gives cocoon.
    images = cri.tmp / "pod-checkpoint"
    r = subprocess.run([str(COCOON), "--root", str(root), "checkpoint", "--pod", "--leave-running",
                        "--image-path", str(images), sb], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "COCOON_CONFIG": str(cri.cocoon_config)})
    assert r.returncode == 0, r.stderr
    pod = json.loads((images / "pod.json").read_text())
    assert pod["sandbox"] == sb and sorted(pod["members"]) == sorted([web, client]), pod
    assert "hello from web" in run_in(client, FETCH)[1], "the pod did not run on after the checkpoint"

    # The kubelet's order: app containers, then the sandbox.
    rt.StopContainer(pb.StopContainerRequest(container_id=client, timeout=2), timeout=120)
    rt.RemoveContainer(pb.RemoveContainerRequest(container_id=client), timeout=120)
    assert sorted(set(qemu_pids(str(root))) - before) == vms, "the VM went while web runs"
    rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sb), timeout=300)
    rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sb), timeout=300)
    cri.sandboxes.remove(sb)
    assert wait_for(lambda: set(qemu_pids(str(root))) == before and not ours(root), timeout=30), \
        f"left: VMs {set(qemu_pids(str(root))) - before}, shims {ours(root)}"
    assert not (root.exists() and list(root.iterdir())), list(root.iterdir())
    with open("/proc/self/mountinfo") as f:
        assert sb not in f.read(), "a mount of the pod is left"
    # The pod's cgroup is the kubelet's to remove; cocoon must have left it
    # empty (an rmdir of a cgroup with children fails).
    for d in [*pathlib.Path("/sys/fs/cgroup").glob(f"*/kubepods/pod{uid}"),
              *pathlib.Path("/sys/fs/cgroup").glob(f"kubepods/pod{uid}")]:
        d.rmdir()
        try:
            d.parent.rmdir()
        except OSError:
            pass  # another pod's, or the host's own
