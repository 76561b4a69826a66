"""Checkpoint/restore in the style of CRIU's zdtm: each case sets up state,
is checkpointed, restored into a new VM, then the state is verified."""
import json
import os
import pathlib
import re
import subprocess
import time

import pytest

from conftest import pids_mentioning, qemu_pids, wait_for, write_bundle


def lines(path):
    return path.read_text().splitlines() if path.exists() else []


def memhog_hash(path, since=0):
    for line in lines(path)[since:]:
        m = re.search(r"hash (\w+)", line)
        if m:
            return m.group(1)
    return None


def start(ctx, cid, args, **kw):
    b = write_bundle(ctx.tmp / f"bundle-{cid}", args, **kw)
    rc, out, err = ctx.create(cid, b)
    assert rc == 0, err.read_text()
    ctx.run("start", cid, check=True)
    return b, out


def checkpoint(env, cid, path, *flags, check=True):
    r = env.run("checkpoint", "--image-path", str(path), *flags, cid, timeout=600)
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


def restore(env, cid, path, bundle, *flags):
    return env.restore_detached(cid, path, bundle, *flags, check=False)


def restored(env, cid, path, bundle, *flags):
    rc, out, err = restore(env, cid, path, bundle, *flags)
    assert rc == 0, err.read_text()
    assert env.state(cid)["status"] == "running"
    return out


def finish(env, *cids):
    for cid in cids:
        env.run("delete", "--force", cid)
    assert qemu_pids(str(env.tmp)) == []


def test_counter_continues_in_a_fresh_vm(env):
    b, out = start(env, "ctr", ["payload", "counter", "100"])
    assert wait_for(lambda: len(lines(out)) >= 5)
    checkpoint(env, "ctr", env.tmp / "ck")
    assert wait_for(lambda: env.state("ctr")["status"] == "stopped"), "the original did not end"
    last = int(lines(out)[-1])
    env.run("delete", "ctr", check=True)
    assert qemu_pids(str(env.tmp)) == [], "the original VM is still there"
    # The same ID, once the original is gone.
    out2 = restored(env, "ctr", env.tmp / "ck", b)
    assert wait_for(lambda: len(lines(out2)) >= 5)
    got = [int(x) for x in lines(out2)]
    assert got[0] == last + 1, f"counter restarted at {got[0]}, expected {last + 1}"
    assert got == list(range(got[0], got[0] + len(got))), "gap or reset after restore"
    # Restored containers behave like any other.
    r = env.run("exec", "ctr", "payload", "echo", "exec after restore")
    assert r.stdout == "exec after restore\n", r.stderr
    env.run("pause", "ctr", check=True)
    env.run("resume", "ctr", check=True)
    assert json.loads(env.run("ps", "--format", "json", "ctr").stdout)
    env.run("kill", "ctr", "TERM", check=True)
    assert wait_for(lambda: env.state("ctr")["status"] == "stopped")
    assert lines(out2)[-1] == "counter: terminated"
    finish(env, "ctr")


def virtiofsds(env):
    """The directories shared by running virtiofsds of this test (each runs
    as two processes: the second is its sandbox's PID 1)."""
    shared = set()
    for pid in pids_mentioning(str(env.tmp)):
        try:
            args = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if args[0].endswith(b"virtiofsd"):
            shared |= {a[len(b"source="):].decode() for a in args if a.startswith(b"source=")}
    return shared


@pytest.mark.parametrize("vcpus,fs,route", [(1, "9p", "cocoon"), (2, "9p", "cocoon"), (1, "virtiofs", "cocoon"),
                                            (1, "9p", "stream"), (1, "virtiofs", "stream")])
def test_memory_hash_survives(env, vcpus, fs, route):
    # With a spare vCPU the images are copied while CRIU writes them. With
    # virtiofs the checkpoint travels through one share and the restore reads
    # through another, each served by a virtiofsd of the VM's own.
    env.write_config("", vm=f"vcpus = {vcpus}\nmemory_mib = 512\nshared_fs = \"{fs}\"\n")
    b, out = start(env, "mem", ["payload", "memhog", "64"])
    assert virtiofsds(env) == ({str(env.root / "mem" / "shared")} if fs == "virtiofs" else set())
    assert wait_for(lambda: len(lines(out)) >= 1, timeout=60)
    before = re.search(r"hash (\w+)", lines(out)[0]).group(1)
    r = checkpoint(env, "mem", env.tmp / "ck", "--leave-running", "--print-stats", "--bench-route", route)
    stats = json.loads(r.stdout.split("stats: ", 1)[1])
    assert stats["route"] == ("stream" if route == "stream" else "tmpfs"), stats
    assert stats["copy_overlapped"] == (vcpus > 1 or route == "stream"), stats
    out2 = restored(env, "mem2", env.tmp / "ck", b)
    assert wait_for(lambda: len(lines(out2)) >= 1, timeout=60)
    after = re.search(r"hash (\w+)", lines(out2)[0]).group(1)
    assert after == before
    meta = json.loads((env.tmp / "ck" / "cocoon.json").read_text())
    assert meta["bytes"] > 64 << 20, "the image is smaller than the memory it holds"
    if fs == "virtiofs":
        assert virtiofsds(env) == {str(env.root / n / "shared") for n in ("mem", "mem2")} | {str(env.tmp / "ck")}
    finish(env, "mem", "mem2")
    assert virtiofsds(env) == set()


def test_container_using_70_percent_of_its_vm(env):
    # 358 MiB of dirty memory in a 512 MiB VM: no room for a second copy in
    # the guest, so the pages stream to the host through CRIU's page server.
    # The container keeps running, and its memory comes back whole in a
    # fresh VM. The guest memory the checkpoint took stays within the
    # target: 64 MiB plus 5% of the container's memory.
    env.write_config("", vm="memory_mib = 512\n")
    mib = 512 * 70 // 100
    b, out = start(env, "big", ["payload", "memhog", str(mib)])
    assert wait_for(lambda: len(lines(out)) >= 1, timeout=180)
    before = memhog_hash(out)
    r = checkpoint(env, "big", env.tmp / "ck", "--leave-running", "--print-stats")
    stats = json.loads(r.stdout.split("stats: ", 1)[1])
    assert stats["route"] == "stream", stats
    assert stats["container_mib"] >= mib, stats
    assert 0 < stats["guest_peak_used_mib"] <= 64 + mib * 5 // 100, stats
    assert env.state("big")["status"] == "running"
    n = len(lines(out))
    assert wait_for(lambda: len(lines(out)) > n + 1, timeout=30), "the container did not go on"
    assert memhog_hash(out, n) == before
    out2 = restored(env, "big2", env.tmp / "ck", b)
    assert wait_for(lambda: len(lines(out2)) >= 1, timeout=120)
    assert memhog_hash(out2) == before
    finish(env, "big", "big2")


@pytest.mark.parametrize("volume", [False, True])
def test_engines_layout_stages_images_beside_the_destination(env, volume):
    # containerd and podman keep their state roots on tmpfs and pass an
    # --image-path on disk. The images are written beside that path, on its
    # filesystem (a bind mount on the shared directory), not into host
    # memory under the state root; publishing is then a rename. A container
    # with a volume has a shim (and QEMU) in a mount namespace of its own:
    # the bind mount is made there.
    env.root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0700", "tmpfs", str(env.root)], check=True)
    extra = None
    if volume:
        data = env.tmp / "data"
        data.mkdir()

        def extra(spec):
            spec["mounts"].append({"destination": "/data", "type": "bind", "source": str(data),
                                   "options": ["rbind"]})
    try:
        b, out = start(env, "lay", ["payload", "memhog", "32"], extra=extra)
        assert wait_for(lambda: len(lines(out)) >= 1, timeout=60)
        before = memhog_hash(out)
        for route in ("tmpfs", "stream"):
            dest = env.tmp / f"ck-{route}"
            r = checkpoint(env, "lay", dest, "--leave-running", "--print-stats", "--bench-route", route)
            stats = json.loads(r.stdout.split("stats: ", 1)[1])
            assert stats["staging"] == "beside" and stats["route"] == route, stats
            assert (dest / "cocoon.json").exists()
            assert [p.name for p in env.tmp.iterdir() if ".tmp-" in p.name] == [], "staging left behind"
            shared = env.root / "lay" / "shared" / "checkpoints"
            assert not shared.exists() or list(shared.iterdir()) == [], list(shared.iterdir())
        for who in ["self"] + [str(p) for p in pids_mentioning(str(env.root / "lay"))]:
            try:
                mounts = pathlib.Path(f"/proc/{who}/mountinfo").read_text()
            except OSError:
                continue
            assert str(env.root / "lay" / "shared" / "checkpoints") not in mounts, \
                f"a staging bind mount was left ({who})"
        out2 = restored(env, "lay2", env.tmp / "ck-stream", b)
        assert wait_for(lambda: len(lines(out2)) >= 1, timeout=60)
        assert memhog_hash(out2) == before
        finish(env, "lay", "lay2")
    finally:
        for cid in ("lay", "lay2"):
            env.run("delete", "--force", cid)
        subprocess.run(["umount", "-l", str(env.root)])


def test_file_offset_in_rootfs(env):
    """A file held open in the rootfs keeps its offset, and writes go on.
    The original stops at the checkpoint, so the file's size still matches."""
    b, out = start(env, "fo", ["payload", "fileoffset", "/data/log"])
    assert wait_for(lambda: len(lines(out)) >= 3)
    checkpoint(env, "fo", env.tmp / "ck")
    assert wait_for(lambda: env.state("fo")["status"] == "stopped")
    last = lines(out)[-1]
    n = int(re.search(r"line (\d+)", last).group(1))
    env.run("delete", "fo", check=True)
    out2 = restored(env, "fo", env.tmp / "ck", b)
    assert wait_for(lambda: len(lines(out2)) >= 3)
    first = lines(out2)[0]
    assert int(re.search(r"line (\d+)", first).group(1)) == n + 1
    off = int(re.search(r"offset (\d+)", first).group(1))
    data = (b.rootfs / "data" / "log").read_text().splitlines()
    assert data[: n + 2] == [f"line {i}" for i in range(n + 2)]
    assert off == sum(len(f"line {i}\n") for i in range(n + 2))
    finish(env, "fo")


def test_clone_of_a_running_container_with_a_changing_rootfs_file_is_refused_clearly(env):
    b, out = start(env, "fc", ["payload", "fileoffset", "/data/log"])
    assert wait_for(lambda: len(lines(out)) >= 2)
    checkpoint(env, "fc", env.tmp / "ck", "--leave-running")
    assert wait_for(lambda: len(lines(out)) >= 6), "the original stopped writing"
    rc, out2, err = restore(env, "fc2", env.tmp / "ck", b)
    assert rc != 0
    text = err.read_text()
    assert "changed since the checkpoint" in text and "data/log" in text, text
    assert not (env.root / "fc2").exists()
    finish(env, "fc")


def test_pipes_and_socketpair_between_processes(env):
    b, out = start(env, "pp", ["payload", "pipes"])
    assert wait_for(lambda: len(lines(out)) >= 3)
    checkpoint(env, "pp", env.tmp / "ck", "--leave-running")
    out2 = restored(env, "pp2", env.tmp / "ck", b)
    assert wait_for(lambda: len(lines(out2)) >= 5)
    assert all(l.endswith(" ok") for l in lines(out2)), lines(out2)
    finish(env, "pp", "pp2")


def tcp_connect(env, cid, port):
    r = env.run("exec", cid, "payload", "tcp-connect", str(port))
    return r.stdout.strip() + r.stderr.strip()


def test_tcp_listener_survives_in_a_fresh_network_namespace(env):
    """A socket listening on loopback is kept. CRIU runs inside the
    container's network namespace and leaves it out of the images; the
    restored container gets a fresh one with lo up, and the socket takes
    new connections there."""
    b, out = start(env, "tl", ["payload", "tcp", "7070"])
    assert wait_for(lambda: lines(out)[:1] == ["listening 7070"])
    assert tcp_connect(env, "tl", 7070) == "tcp-connect 42"
    checkpoint(env, "tl", env.tmp / "ck")
    assert wait_for(lambda: env.state("tl")["status"] == "stopped")
    assert not list((env.tmp / "ck").glob("netns-*.img")), "the network namespace was dumped"
    env.run("delete", "tl", check=True)
    restored(env, "tl", env.tmp / "ck", b)
    assert tcp_connect(env, "tl", 7070) == "tcp-connect 42"
    finish(env, "tl")


def test_established_tcp_is_refused_without_the_flag_and_kept_with_it(env):
    b, out = start(env, "te", ["payload", "tcp", "7071", "pair"])
    assert wait_for(lambda: len(lines(out)) >= 3)
    r = checkpoint(env, "te", env.tmp / "ck0", "--leave-running", check=False)
    assert r.returncode != 0 and "tcp-established" in r.stderr, r.stderr
    assert not (env.tmp / "ck0" / "cocoon.json").exists(), "a refused checkpoint looks complete"
    n = len(lines(out))
    assert wait_for(lambda: len(lines(out)) >= n + 2), "the original stopped after a refused checkpoint"
    checkpoint(env, "te", env.tmp / "ck", "--leave-running", "--tcp-established")
    out2 = restored(env, "te2", env.tmp / "ck", b, "--tcp-established")
    assert wait_for(lambda: len(lines(out2)) >= 3)
    assert all(l.endswith(" ok") for l in lines(out2)), lines(out2)
    n = len(lines(out))
    assert wait_for(lambda: len(lines(out)) >= n + 2), "the original stopped"
    assert all(l.endswith(" ok") for l in lines(out)[1:]), lines(out)
    finish(env, "te", "te2")


def test_threads_all_keep_running(env):
    b, out = start(env, "th", ["payload", "threads", "4"])
    assert wait_for(lambda: len(lines(out)) >= 2)
    checkpoint(env, "th", env.tmp / "ck", "--leave-running")
    out2 = restored(env, "th2", env.tmp / "ck", b)
    assert wait_for(lambda: len(lines(out2)) >= 4)
    first = [int(x) for x in lines(out2)[0].split()[1:]]
    last = [int(x) for x in lines(out2)[-1].split()[1:]]
    assert len(first) == 4 and all(l > f for f, l in zip(first, last)), (first, last)
    finish(env, "th", "th2")


def test_env_cwd_hostname_survive(env):
    b, out = start(env, "ecw", ["payload", "counter", "200"], env=["MARK=restored-env"],
                   cwd="/tmp", hostname="ckpt-host")
    assert wait_for(lambda: len(lines(out)) >= 2)
    checkpoint(env, "ecw", env.tmp / "ck", "--leave-running")
    restored(env, "ecw2", env.tmp / "ck", b)
    r = env.run("exec", "ecw2", "sh", "-c",
                "tr '\\0' '\\n' < /proc/1/environ | grep MARK; readlink /proc/1/cwd; payload hostname")
    assert r.stdout.split() == ["MARK=restored-env", "/tmp", "ckpt-host"], r.stdout + r.stderr
    finish(env, "ecw", "ecw2")


def test_dev_is_rebuilt_and_dev_shm_kept(env):
    """/dev is external to CRIU and rebuilt from the spec at restore; what
    the container wrote to /dev/shm (a tmpfs of its own) travels in the
    images."""
    b, out = start(env, "dev", ["sh", "-c", "echo kept > /dev/shm/mark; exec payload counter 200"])
    assert wait_for(lambda: len(lines(out)) >= 2)
    checkpoint(env, "dev", env.tmp / "ck")
    tars = sorted(p.name for p in (env.tmp / "ck").glob("tmpfs-*.img"))
    assert len(tars) == 1, f"expected the /dev/shm archive alone, got {tars}"
    env.run("delete", "--force", "dev")
    restored(env, "dev", env.tmp / "ck", b)
    r = env.run("exec", "dev", "sh", "-c",
                "cat /dev/shm/mark; echo x > /dev/null && head -c 4 /dev/zero | wc -c; "
                "ls /dev | sort | tr '\\n' ' '")
    got = r.stdout.splitlines()
    assert got[:2] == ["kept", "4"], r.stdout + r.stderr
    for node in ("null", "zero", "urandom", "pts", "shm", "ptmx", "fd"):
        assert node in got[2].split(), f"/dev/{node} missing after restore: {got[2]}"
    finish(env, "dev")


def test_empty_dev_shm_is_left_out_and_made_afresh(env):
    b, out = start(env, "shm0", ["payload", "counter", "200"])
    assert wait_for(lambda: len(lines(out)) >= 2)
    checkpoint(env, "shm0", env.tmp / "ck")
    tars = sorted(p.name for p in (env.tmp / "ck").glob("tmpfs-*.img"))
    assert tars == [], f"an empty /dev/shm was archived: {tars}"
    env.run("delete", "--force", "shm0")
    restored(env, "shm0", env.tmp / "ck", b)
    r = env.run("exec", "shm0", "sh", "-c", "stat -c %a /dev/shm; echo y > /dev/shm/new && cat /dev/shm/new")
    assert r.stdout.split() == ["1777", "y"], r.stdout + r.stderr
    finish(env, "shm0")


def test_dev_shm_changing_during_the_dump_is_archived(env):
    """Files come and go in /dev/shm: whichever way the agent goes (archive
    it at once, or leave it out, see it change, and have the host ask
    again), the images hold /dev/shm."""
    b, out = start(env, "shm1", ["sh", "-c", "(while :; do : > /dev/shm/t; rm -f /dev/shm/t; usleep 20000; done) & "
                                 "exec payload counter 200"])
    assert wait_for(lambda: len(lines(out)) >= 2)
    checkpoint(env, "shm1", env.tmp / "ck", "--leave-running")
    tars = sorted(p.name for p in (env.tmp / "ck").glob("tmpfs-*.img"))
    assert len(tars) == 1, f"/dev/shm was not archived: {tars}"
    restored(env, "shm2", env.tmp / "ck", b)
    finish(env, "shm1", "shm2")


def test_paused_container_checkpoint_restore_resume(env):
    b, out = start(env, "pz", ["payload", "counter", "100"])
    assert wait_for(lambda: len(lines(out)) >= 3)
    env.run("pause", "pz", check=True)
    checkpoint(env, "pz", env.tmp / "ck", "--leave-running")
    assert env.state("pz")["status"] == "paused", "a paused container must stay paused"
    frozen = len(lines(out))
    time.sleep(1)
    assert len(lines(out)) == frozen
    env.run("resume", "pz", check=True)
    assert wait_for(lambda: len(lines(out)) > frozen)
    out2 = restored(env, "pz2", env.tmp / "ck", b)
    assert wait_for(lambda: len(lines(out2)) >= 3)
    assert int(lines(out2)[0]) == frozen
    finish(env, "pz", "pz2")


def test_chain_of_three_generations(env):
    b, out = start(env, "g1", ["payload", "counter", "100"])
    assert wait_for(lambda: len(lines(out)) >= 3)
    checkpoint(env, "g1", env.tmp / "ck1")
    env.run("delete", "g1", check=True)
    out2 = restored(env, "g2", env.tmp / "ck1", b)
    assert wait_for(lambda: len(lines(out2)) >= 3)
    checkpoint(env, "g2", env.tmp / "ck2")
    last2 = int(lines(out2)[-1])
    env.run("delete", "g2", check=True)
    out3 = restored(env, "g3", env.tmp / "ck2", b)
    assert wait_for(lambda: len(lines(out3)) >= 3)
    assert int(lines(out3)[0]) == last2 + 1
    finish(env, "g3")


def test_default_location_and_logs(env):
    env.write_config(f"[runtime]\nhost_checkpoint_dir = \"{env.tmp / 'ckpts'}\"\n")
    b, out = start(env, "dl", ["payload", "counter", "100"])
    r = env.run("checkpoint", "--leave-running", "--work-path", str(env.tmp / "work"), "dl", timeout=600)
    assert r.returncode == 0, r.stderr
    ckid = re.search(r"checkpoint (ck-\S+) of dl", r.stdout).group(1)
    path = env.tmp / "ckpts" / "dl" / ckid
    assert (path / "pstree.img").exists() and (path / "cocoon.json").exists()
    assert (env.tmp / "work" / "dump.log").stat().st_size > 0
    assert (env.tmp / "work" / "stats-dump").exists()
    r = env.run("checkpoint", "--help")
    assert r.returncode == 0
    finish(env, "dl")


def test_pre_dump_then_incremental_dump(env):
    b, out = start(env, "pd", ["payload", "memhog", "64"])
    assert wait_for(lambda: len(lines(out)) >= 1, timeout=60)
    before = re.search(r"hash (\w+)", lines(out)[0]).group(1)
    chain = env.tmp / "chain"
    chain.mkdir()
    r = checkpoint(env, "pd", chain / "pre", "--pre-dump")
    assert "pre-dump" in r.stdout
    assert env.state("pd")["status"] == "running"
    checkpoint(env, "pd", chain / "final", "--leave-running", "--parent-path", str(chain / "pre"))
    size = lambda d: sum(f.stat().st_size for f in d.glob("pages-*.img"))
    assert size(chain / "pre") > 60 << 20
    assert size(chain / "final") < size(chain / "pre") // 10, "the final dump is not incremental"
    assert os.readlink(chain / "final" / "parent") == "../pre"
    out2 = restored(env, "pd2", chain / "final", b)
    assert wait_for(lambda: len(lines(out2)) >= 1, timeout=90)
    assert re.search(r"hash (\w+)", lines(out2)[0]).group(1) == before
    finish(env, "pd", "pd2")
