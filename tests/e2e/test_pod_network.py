"""A Kubernetes-shaped pod on the engine's network: the sandbox and its
members join a CNI-bridge-style network namespace by its /run/netns path
(test_network's Net), as CRI gives them, and the pod is checkpointed with
`checkpoint --pod` and restored with `restore --pod` into a fresh VM. The
pod IP answers from the host again, the loopback conversation between two
members goes on, and new loopback connections work (docs/pods.md). The
whole-pod tests of test_pods.py use a pod without an engine's netns."""
import json
import subprocess

import pytest

from conftest import COCOON, qemu_pids, wait_for, write_bundle
from test_network import http_get, net  # noqa: F401  (the fixture)
from test_network import pytestmark  # noqa: F401  (root and iproute2)
from test_pods import lines, rounds, with_www

CRI = "io.kubernetes.cri"


def in_pod(pod_net, kind, sid, pid=None):
    """write_bundle's extra=: CRI's annotations, the pod's netns by path,
    and for a member IPC and UTS by /proc/<sandbox pid>/ns/..."""
    def extra(spec):
        spec["annotations"] = {f"{CRI}.container-type": kind, f"{CRI}.sandbox-id": sid}
        nss = [n for n in spec["linux"]["namespaces"] if n["type"] not in ("network", "ipc", "uts")]
        nss.append({"type": "network", "path": pod_net.path})
        for t in ("ipc", "uts"):
            nss.append({"type": t, "path": f"/proc/{pid}/ns/{t}"} if pid else {"type": t})
        spec["linux"]["namespaces"] = nss
    return extra


def start(env, cid, bundle):
    rc, out, err = env.create(cid, bundle)
    assert rc == 0, err.read_text()
    env.run("start", cid, check=True)
    return out


def page_at(ip):
    try:
        return http_get(ip, 8080, timeout=5)
    except OSError:
        return None


@pytest.mark.parametrize("mode", ["stop", "leave-running"])
def test_whole_pod_on_a_cni_netns_restored_with_its_pod_ip_and_loopback(env, net, mode):
    """stop: checkpoint --pod ends the pod; leave-running: the pod runs on,
    its loopback conversation and pod IP too, until it is deleted. Either
    way restore --pod brings it back from the images with the conversation
    where the checkpoint took it."""
    sb = write_bundle(env.tmp / "sandbox", ["payload", "sleep", "1000"], hostname="podhost",
                      extra=in_pod(net, "sandbox", "sandbox"))
    start(env, "sandbox", sb)
    pid = env.state("sandbox")["pid"]
    old_vm = qemu_pids(str(env.tmp))
    assert len(old_vm) == 1
    web = with_www(write_bundle(env.tmp / "web", ["sh", "-c", "busybox httpd -p 8080 -h /www && "
                                                               "exec payload tcp 7100"],
                                extra=in_pod(net, "container", "sandbox", pid)))
    start(env, "web", web)
    cli = write_bundle(env.tmp / "cli", ["payload", "tcp-client", "7100"],
                       extra=in_pod(net, "container", "sandbox", pid))
    out = start(env, "cli", cli)
    assert wait_for(lambda: len(rounds(out)) >= 5, timeout=60), "\n".join(lines(out))
    page = wait_for(lambda: page_at(net.ip), timeout=60)
    assert page and "hello from the pod" in page, f"no page at the pod IP {net.ip}: {page!r}"
    assert qemu_pids(str(env.tmp)) == old_vm, "one VM for the pod"

    images = env.tmp / "pod-ck"
    first = rounds(out)[-1][0]  # the checkpoint takes a round trip after this one
    flags = ["--leave-running"] if mode == "leave-running" else []
    r = env.run("checkpoint", "--pod", *flags, "--tcp-established", "--image-path", str(images), "sandbox",
                timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(json.loads((images / "pod.json").read_text())["members"]) == ["cli", "web"]
    last = rounds(out)[-1][0]  # and this one or one before
    if mode == "leave-running":
        for cid in ("cli", "web", "sandbox"):
            assert env.state(cid)["status"] == "running", cid
        assert wait_for(lambda: rounds(out)[-1][0] >= last + 6, timeout=60), "the conversation stopped"
        assert all(ok for _, ok in rounds(out)) and "tcp broken" not in out.read_text(), out.read_text()
        page = wait_for(lambda: page_at(net.ip), timeout=30)
        assert page and "hello from the pod" in page, f"the pod IP went with the checkpoint: {page!r}"
        assert qemu_pids(str(env.tmp)) == old_vm
    else:
        for cid in ("cli", "web", "sandbox"):
            assert wait_for(lambda: env.state(cid)["status"] == "stopped", timeout=30), cid
        assert rounds(out)[-1][0] == last
    for cid in ("cli", "web", "sandbox"):
        env.run("delete", "--force", cid, check=True)
    assert wait_for(lambda: qemu_pids(str(env.tmp)) == [], timeout=30)
    assert page_at(net.ip) is None, "the pod IP answers with the pod gone"

    restored = env.tmp / "pod.restored.out"
    with open(restored, "wb") as o, open(env.tmp / "pod.restored.err", "wb") as e:
        r = subprocess.run([str(COCOON), "--root", str(env.root), "--config", str(env.config), "restore",
                            "--pod", "--tcp-established", "--image-path", str(images), "sandbox"],
                           stdin=subprocess.DEVNULL, stdout=o, stderr=e, timeout=900)
    assert r.returncode == 0, (env.tmp / "pod.restored.err").read_text()
    new_vm = qemu_pids(str(env.tmp))
    assert len(new_vm) == 1 and new_vm != old_vm, "one fresh VM for the restored pod"
    for cid in ("sandbox", "web", "cli"):
        assert env.state(cid)["status"] == "running", cid

    # The loopback conversation goes on (the next round trip after the
    # last one before the checkpoint; a new connection would start at 0).
    assert wait_for(lambda: len(rounds(restored)) >= 3 or "tcp broken" in restored.read_text(),
                    timeout=180), restored.read_text()
    after = rounds(restored)
    assert "tcp broken" not in restored.read_text(), restored.read_text()
    assert first + 2 <= after[0][0] <= last + 2 and all(ok for _, ok in after), (first, last, after[:3])
    if mode == "stop":
        assert after[0][0] == last + 2, (last, after[:3])
    # The pod IP from the host, and new connections on the pod's loopback.
    page = wait_for(lambda: page_at(net.ip), timeout=60)
    assert page and "hello from the pod" in page, f"no page at the pod IP {net.ip} after restore --pod: {page!r}"
    r = env.run("exec", "cli", "sh", "-c", "payload hostname; payload tcp-connect 7100; "
                "printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | busybox nc 127.0.0.1 8080")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[0] == "podhost" and "tcp-connect 42" in r.stdout, r.stdout
    assert "hello from the pod" in r.stdout, r.stdout
    for cid in ("cli", "web", "sandbox"):
        env.run("delete", "--force", cid, check=True)
    assert qemu_pids(str(env.tmp)) == []
