"""VM templates (docs/performance.md, "VM templates"): VMs started from a
saved, booted VM instead of booting. Each test keeps its templates in a
directory of its own, so it builds them itself and sees exactly what it
built."""
import json
import pathlib
import re

from conftest import qemu_pids, wait_for, write_bundle
from podman_util import podman  # noqa: F401  (the fixture)
from test_checkpoint import checkpoint, finish, lines, restored, start, tcp_connect


def use_templates(env, enabled=True, memory=512):
    env.write_config("", vm=f"template = {'true' if enabled else 'false'}\n"
                     f"template_dir = \"{env.tmp / 'templates'}\"\nmemory_mib = {memory}\n")


def templates(env):
    d = env.tmp / "templates"
    return sorted(p for p in d.iterdir() if not p.name.startswith(".")) if d.exists() else []


def vm_cmdline(env, cid):
    """The command line of the QEMU of container cid."""
    pids = qemu_pids(str(env.root / cid))
    assert len(pids) == 1, pids
    return pathlib.Path(f"/proc/{pids[0]}/cmdline").read_bytes().split(b"\0")


def from_template(env, cid):
    cmd = vm_cmdline(env, cid)
    incoming = b"-incoming" in cmd
    if incoming:
        assert any(b"memory-backend-file" in a and b"share=off" in a for a in cmd), cmd
    return incoming


def test_create_from_template_runs_a_counter(env):
    use_templates(env)
    b, out = start(env, "c1", ["payload", "counter", "50"])
    assert from_template(env, "c1"), "the first VM did not start from the template it built"
    assert len(templates(env)) == 1
    assert wait_for(lambda: len(lines(out)) >= 5)
    got = [int(x) for x in lines(out)]
    assert got == list(range(len(got)))
    # The second VM of the same shape uses the same template.
    b2, out2 = start(env, "c2", ["payload", "counter", "50"])
    assert from_template(env, "c2")
    assert len(templates(env)) == 1
    assert wait_for(lambda: len(lines(out2)) >= 5)
    r = env.run("exec", "c2", "payload", "echo", "exec in a template VM")
    assert r.stdout == "exec in a template VM\n", r.stderr
    # The guest's clock is the host's, not the template's.
    r = env.run("exec", "c2", "busybox", "date", "+%s")
    import time
    assert abs(int(r.stdout) - time.time()) < 30, r.stdout + r.stderr
    env.run("kill", "c1", "TERM", check=True)
    assert wait_for(lambda: env.state("c1")["status"] == "stopped")
    finish(env, "c1", "c2")


def test_template_off_boots_cold(env):
    use_templates(env, enabled=False)
    start(env, "cold", ["payload", "sleep", "60"])
    assert not from_template(env, "cold")
    assert templates(env) == []
    finish(env, "cold")


def test_checkpoint_restored_into_a_template_vm_carries_on(env):
    """A counter, a 64 MiB memory hash and a TCP listener on 127.0.0.1, each
    checkpointed and restored into a VM started from the restore's template."""
    use_templates(env)
    bc, outc = start(env, "ctr", ["payload", "counter", "100"])
    bm, outm = start(env, "mem", ["payload", "memhog", "64"])
    bt, outt = start(env, "tcp", ["payload", "tcp", "7070"])
    assert wait_for(lambda: len(lines(outc)) >= 5)
    assert wait_for(lambda: len(lines(outm)) >= 1, timeout=60)
    assert wait_for(lambda: lines(outt)[:1] == ["listening 7070"])
    before = re.search(r"hash (\w+)", lines(outm)[0]).group(1)

    checkpoint(env, "ctr", env.tmp / "ck-ctr")
    checkpoint(env, "mem", env.tmp / "ck-mem", "--leave-running")
    checkpoint(env, "tcp", env.tmp / "ck-tcp")
    assert wait_for(lambda: env.state("ctr")["status"] == "stopped")
    last = int(lines(outc)[-1])
    env.run("delete", "ctr", check=True)
    env.run("delete", "--force", "tcp", check=True)

    out2 = restored(env, "ctr", env.tmp / "ck-ctr", bc)
    assert from_template(env, "ctr")
    stats = json.loads((env.root / "ctr" / "restore-stats.json").read_text())
    assert stats.get("template") is True, stats
    assert wait_for(lambda: len(lines(out2)) >= 5)
    got = [int(x) for x in lines(out2)]
    assert got[0] == last + 1, f"counter restarted at {got[0]}, expected {last + 1}"
    assert got == list(range(got[0], got[0] + len(got)))

    outm2 = restored(env, "mem2", env.tmp / "ck-mem", bm)
    assert from_template(env, "mem2")
    assert wait_for(lambda: len(lines(outm2)) >= 1, timeout=60)
    assert re.search(r"hash (\w+)", lines(outm2)[0]).group(1) == before

    restored(env, "tcp", env.tmp / "ck-tcp", bt)
    assert from_template(env, "tcp")
    assert tcp_connect(env, "tcp", 7070) == "tcp-connect 42"
    # One template for the create shape, one for the restore shape (one
    # image directory more).
    assert len(templates(env)) == 2
    finish(env, "ctr", "mem", "mem2", "tcp")


def test_template_of_another_image_or_shape_is_not_used(env):
    use_templates(env)
    start(env, "a", ["payload", "sleep", "60"])
    [t] = templates(env)
    key = (t / "key").read_text()
    assert "memory-backend-file" in key and "initrd=" in key
    finish(env, "a")

    # Another shape: another template.
    use_templates(env, memory=384)
    start(env, "b", ["payload", "sleep", "60"])
    assert from_template(env, "b")
    assert len(templates(env)) == 2
    finish(env, "b")

    # A template whose key says it was built from another image, under the
    # name this key hashes to, is refused and rebuilt.
    use_templates(env)
    (t / "key").write_text(key.replace("initrd=", "initrd=/some/other/initrd.img "))
    (t / "state").write_bytes(b"not a migration stream")
    start(env, "c", ["payload", "sleep", "60"])
    assert from_template(env, "c")
    assert (t / "key").read_text() == key
    assert (t / "state").read_bytes() != b"not a migration stream"
    finish(env, "c")


def test_broken_template_falls_back_to_a_cold_boot(env):
    use_templates(env)
    start(env, "a", ["payload", "sleep", "60"])
    finish(env, "a")
    [t] = templates(env)
    # The key still matches, the device state does not load.
    (t / "state").write_bytes(b"QEVM garbage")
    b, out = start(env, "b", ["payload", "counter", "50"])
    assert not from_template(env, "b")
    assert wait_for(lambda: len(lines(out)) >= 3)
    # The template that failed is gone; the next VM builds it afresh.
    assert templates(env) == []
    start(env, "c", ["payload", "sleep", "60"])
    assert from_template(env, "c")
    finish(env, "b", "c")


def test_each_template_vm_has_its_own_randomness(env):
    """Clones share the template's memory, CRNG state included: the first
    request reseeds it with bytes from the host."""
    use_templates(env)
    args = ["busybox", "sh", "-c",
            "busybox od -An -tx1 -N32 /dev/urandom | busybox tr -d ' \\n'; echo;"
            " cat /proc/sys/kernel/random/boot_id; sleep 60"]
    outs = []
    for cid in ("r1", "r2"):
        _, out = start(env, cid, args)
        assert from_template(env, cid)
        assert wait_for(lambda: len(lines(out)) >= 2)
        outs.append(lines(out)[:2])
    assert len(outs[0][0]) == 64, outs
    assert outs[0][0] != outs[1][0], "two template VMs read the same random bytes"
    assert outs[0][1] != outs[1][1], "two template VMs have the same boot id"
    finish(env, "r1", "r2")


def template_config(d):
    return f"[vm]\ntemplate = true\ntemplate_dir = \"{d}\"\n"


def vm_of_is_from_template(cid):
    """Whether the one QEMU of container cid (its state directory, named
    after it, is on the command line) started from a VM template: -incoming
    with the template's memory file mapped privately (share=off). A CRIU
    container's VM has -incoming only then."""
    pids = qemu_pids(cid)
    assert len(pids) == 1, pids
    cmd = pathlib.Path(f"/proc/{pids[0]}/cmdline").read_bytes().split(b"\0")
    return b"-incoming" in cmd and any(b"memory-backend-file" in a and b"share=off" in a for a in cmd)


def test_podman_starts_and_restores_from_a_vm_template(podman):
    """podman, cocoon's `template = true`: a container without a network
    (`--network none`) has its VM started from the template `podman run`
    builds, and `podman container checkpoint` / `restore` bring the counter
    back in a VM from the restore shape's template, carrying on (a fresh
    start would print 0 again); exec works in it. podman's default network
    through templates: test_template_network.py."""
    from vmsnap_util import carried_on, counted
    tdir = podman.tmp / "templates"
    podman.cocoon_config.write_text(template_config(tdir))
    r = podman.run("run", "-d", "--network", "none", "--name", "t1", podman.image, "payload", "counter", "100")
    assert r.returncode == 0, r.stderr
    cid = podman.check("inspect", "--format", "{{.Id}}", "t1").stdout.strip()
    assert vm_of_is_from_template(cid), "podman run's VM booted cold"
    logs = lambda: counted(podman.run("logs", "t1").stdout)  # noqa: E731
    assert wait_for(lambda: len(logs()) >= 3, timeout=60)
    podman.check("container", "checkpoint", "t1", timeout=600)
    at = len(logs())
    assert qemu_pids(cid) == []
    podman.check("container", "restore", "t1", timeout=600)
    assert podman.check("inspect", "--format", "{{.State.Status}}", "t1").stdout.strip() == "running"
    assert vm_of_is_from_template(cid), "the restore's VM booted cold"
    assert wait_for(lambda: carried_on(logs(), at), timeout=60), (at, logs())
    r = podman.check("exec", "t1", "payload", "echo", "exec in a restored template VM")
    assert r.stdout.strip() == "exec in a restored template VM"
    # The create shape's template and the restore shape's.
    assert len([p for p in tdir.iterdir() if not p.name.startswith(".")]) == 2, list(tdir.iterdir())
    podman.check("rm", "--force", "--time", "0", "t1")
    assert qemu_pids(cid) == []


def test_ctr_checkpoint_restored_live_into_a_template_vm(tmp_path):
    """containerd's runc shim through `ctr`, cocoon's `template = true`:
    `ctr run` starts the VM from the template, and `ctr containers
    checkpoint --task` / `restore --live` bring the counter back in a VM
    from the restore shape's template, carrying on."""
    import os
    from containerd_util import IMAGE, Containerd, build_image, gone_then_restored_live, run_args, task_status
    from vmsnap_util import carried_on, counted
    cd = Containerd(tmp_path)
    try:
        assert cd.ctr("images", "import", "--snapshotter", "native",
                      str(build_image(tmp_path))).returncode == 0
        cd.cocoon_config.write_text(template_config(tmp_path / "templates"))
        cid = f"tpl{os.urandom(4).hex()}"
        r = cd.ctr(*run_args("-d", IMAGE, cid, "sh", "-c", "payload counter 100 > /tmp/count"))
        assert r.returncode == 0, r.stderr
        assert wait_for(lambda: task_status(cd, cid) == "RUNNING", timeout=60)
        assert vm_of_is_from_template(cid), "ctr run's VM booted cold"
        count = lambda: counted(cd.ctr("tasks", "exec", "--exec-id", f"c{os.urandom(4).hex()}",  # noqa: E731
                                       cid, "cat", "/tmp/count").stdout)
        assert wait_for(lambda: len(count()) >= 3)
        r = cd.ctr("containers", "checkpoint", "--rw", "--task", cid, f"cocoon/{cid}:ck", timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        at = len(count())
        gone_then_restored_live(cd, cid, f"cocoon/{cid}:ck")
        assert vm_of_is_from_template(cid), "the restore's VM booted cold"
        assert wait_for(lambda: carried_on(count(), at - 1), timeout=60), (at, count())
    finally:
        cd.stop()  # it unmounts the restored task's rootfs too
    assert qemu_pids(cid) == []
