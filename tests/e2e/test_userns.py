"""User namespaces with uid/gid mappings, and the filesystems the guest's
kernel mounts itself (docs/lifecycle.md, "User namespaces" and
"Filesystems"): made in the guest as runc makes them on a host, through
cocoon with a spec and through podman's --uidmap; the ids the container's
files get cross the shared filesystems to the host as the mapped ids."""
import os
import re

from conftest import qemu_pids, wait_for, write_bundle
from podman_util import podman  # noqa: F401  (the fixture)
from test_checkpoint import checkpoint, finish, lines, restored
from test_network import Net, joining

HOST_BASE = 100000
MAP = [{"containerID": 0, "hostID": HOST_BASE, "size": 65536}]


def user_ns(uid_map=MAP, gid_map=MAP):
    def extra(spec):
        spec["linux"]["namespaces"].append({"type": "user"})
        spec["linux"]["uidMappings"] = uid_map
        spec["linux"]["gidMappings"] = gid_map
    return extra


def sh(env, cid, script, *flags):
    r = env.run("exec", *flags, cid, "busybox", "sh", "-c", script)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.split("\n")


def test_user_namespace_maps_ids_and_files_reach_the_host_as_mapped_ids(env):
    b = write_bundle(env.tmp / "bundle-uns", ["payload", "counter", "300"], extra=user_ns())
    # The engine's part (podman chowns its copy of the image): a directory
    # of the rootfs that belongs to the container's root. The rest stays
    # the host's root's, which the container's does not map.
    os.chown(b.rootfs / "data", HOST_BASE, HOST_BASE)
    os.chmod(b.rootfs / "data", 0o1777)  # and the container's uid 1000 writes there too
    rc, out, err = env.create("uns", b)
    assert rc == 0, err.read_text()
    env.run("start", "uns", check=True)
    assert wait_for(lambda: len(lines(out)) >= 2)

    def check():
        got = sh(env, "uns",
                 "cat /proc/self/uid_map /proc/self/gid_map; busybox id -u; busybox id -g; "
                 "busybox stat -c '%u:%g' /data /bin/busybox; "
                 "echo r > /data/by-root && echo wrote-data; "
                 "(echo x > /etc/x) 2>/dev/null || echo etc-refused; "
                 "echo > /dev/null && echo null-ok; cat /proc/1/uid_map")
        assert [l.split() for l in got[:2]] == [["0", str(HOST_BASE), "65536"]] * 2, got
        # Root inside; the host's root's files are nobody's (overflow ids),
        # and the container's root has no rights over them.
        assert got[2:9] == ["0", "0", "0:0", "65534:65534", "wrote-data", "etc-refused",
                            "null-ok"], got
        assert got[9].split() == ["0", str(HOST_BASE), "65536"], got
        st = os.stat(b.rootfs / "data" / "by-root")
        assert (st.st_uid, st.st_gid) == (HOST_BASE, HOST_BASE)
        # An exec as another user of the namespace: mapped the same way.
        sh(env, "uns", "echo u > /data/by-1000", "--user", "1000:1000")
        st = os.stat(b.rootfs / "data" / "by-1000")
        assert (st.st_uid, st.st_gid) == (HOST_BASE + 1000, HOST_BASE + 1000)
        for f in ("by-root", "by-1000"):
            (b.rootfs / "data" / f).unlink()

    check()
    finish(env, "uns")


def mem_hashes(path):
    return [m.group(1) for m in re.finditer(r"hash (\w+)", path.read_text())] \
        if path.exists() else []


def test_user_namespace_checkpoint_and_restore_into_a_fresh_vm(env):
    # A counter and 32 MiB of memory, in a user namespace; a pre-dump, then
    # the final dump on top of it, restored into a fresh VM. CRIU makes the
    # namespace again from the images, with its maps, and its tasks read
    # their images as the namespace's root (docs/checkpoint.md).
    b = write_bundle(env.tmp / "bundle-unsck",
                     ["busybox", "sh", "-c", "payload memhog 32 > /data/mem & exec payload counter 300"],
                     extra=user_ns())
    os.chown(b.rootfs / "data", HOST_BASE, HOST_BASE)
    rc, out, err = env.create("unsck", b)
    assert rc == 0, err.read_text()
    env.run("start", "unsck", check=True)
    mem = b.rootfs / "data" / "mem"
    assert wait_for(lambda: len(lines(out)) >= 2 and mem_hashes(mem), timeout=60)
    before = mem_hashes(mem)[0]
    chain = env.tmp / "chain"
    chain.mkdir()
    r = checkpoint(env, "unsck", chain / "pre", "--pre-dump")
    assert "pre-dump" in r.stdout
    checkpoint(env, "unsck", chain / "final", "--parent-path", str(chain / "pre"))
    assert wait_for(lambda: env.state("unsck")["status"] == "stopped")
    last, rounds = int(lines(out)[-1]), len(mem_hashes(mem))
    env.run("delete", "unsck", check=True)
    # The host's images stay the host root's, as for any container.
    for f in (chain / "final").iterdir():
        if not f.is_symlink():
            st = os.stat(f)
            assert (st.st_uid, st.st_mode & 0o077) == (0, 0), f
    out2 = restored(env, "unsck", chain / "final", b, "--work-path", str(env.tmp / "rwork"))
    assert wait_for(lambda: len(lines(out2)) >= 2 and len(mem_hashes(mem)) > rounds + 1,
                    timeout=60)
    assert int(lines(out2)[0]) == last + 1, (last, lines(out2)[:3])
    assert set(mem_hashes(mem)[rounds:]) == {before}, "the memory changed across the restore"
    got = sh(env, "unsck", "cat /proc/1/uid_map /proc/self/gid_map; busybox id -u; "
             "busybox awk '/^Uid:/ {print $2}' /proc/1/status; "
             "echo r > /data/after && echo wrote")
    assert [l.split() for l in got[:2]] == [["0", str(HOST_BASE), "65536"]] * 2, got
    assert got[2:5] == ["0", "0", "wrote"], got
    st = os.stat(b.rootfs / "data" / "after")
    assert (st.st_uid, st.st_gid) == (HOST_BASE, HOST_BASE)
    st = os.stat(mem)
    assert (st.st_uid, st.st_gid) == (HOST_BASE, HOST_BASE)
    finish(env, "unsck")


def test_user_namespace_on_an_engine_network_is_refused_at_checkpoint(env):
    # The engine's interface is the VM's virtio-net NIC in the container's
    # namespace, which CRIU 3.17 cannot dump; refused before anything is
    # frozen, and the container goes on.
    net = Net("uns")
    try:
        def extra(spec):
            user_ns()(spec)
            joining(net.path)(spec)
        b = write_bundle(env.tmp / "bundle-unsnet", ["payload", "counter", "200"], extra=extra)
        rc, out, err = env.create("unsnet", b)
        assert rc == 0, err.read_text()
        env.run("start", "unsnet", check=True)
        assert wait_for(lambda: len(lines(out)) >= 2)
        r = checkpoint(env, "unsnet", env.tmp / "ckn", check=False)
        assert r.returncode != 0
        assert ("checkpoint unsnet: the container has a user namespace and the engine's network "
                "interface eth0") in r.stderr, r.stderr
        assert "--network none" in r.stderr and "was not touched" in r.stderr, r.stderr
        assert not (env.tmp / "ckn").exists() or not any((env.tmp / "ckn").iterdir())
        n = len(lines(out))
        assert wait_for(lambda: len(lines(out)) >= n + 3), "the container stopped"
        assert env.state("unsnet")["status"] == "running"
        finish(env, "unsnet")
    finally:
        net.close()


def test_bad_user_namespaces_are_refused_at_create(env):
    cases = {
        "nomap": (user_ns(gid_map=[]), "linux.gidMappings is missing or empty"),
        "overlap": (user_ns(uid_map=MAP + [{"containerID": 100, "hostID": 500000, "size": 1}]),
                    "linux.uidMappings[1] overlaps linux.uidMappings[0]"),
        # Container id 0 unmapped: the init cannot become the namespace's root.
        "noroot": (user_ns(uid_map=[{"containerID": 1, "hostID": HOST_BASE, "size": 10}]),
                   "becoming its root"),
    }
    for cid, (extra, want) in cases.items():
        b = write_bundle(env.tmp / cid, ["payload", "echo"], extra=extra)
        rc, out, err = env.create(cid, b)
        assert rc != 0 and want in err.read_text(), (cid, err.read_text())
        assert env.run("state", cid).returncode != 0
    assert qemu_pids(str(env.tmp)) == []


def test_podman_uidmap(podman):
    # --network none: with a user namespace, podman 4.3 configures the
    # container's network after create, in /proc/<pid>/ns/net of the pid
    # the runtime gave it, which is cocoon's shim on the host
    # (docs/lifecycle.md, "User namespaces").
    r = podman.run("run", "--rm", "--network", "none", "--uidmap", f"0:{HOST_BASE}:65536",
                   "--gidmap", f"0:{HOST_BASE}:65536", podman.image, "sh", "-c",
                   "cat /proc/self/uid_map; id -u; stat -c %u:%g /bin /etc/hosts; "
                   "touch /new && echo wrote; cat /sys/fs/cgroup/cgroup.procs >/dev/null && echo cg")
    assert r.returncode == 0, r.stdout + r.stderr
    got = r.stdout.split("\n")
    # podman chowned its copy of the image (and its /etc/hosts) to the
    # mapped ids: the container's root owns its files.
    assert got[0].split() == ["0", str(HOST_BASE), "65536"], got
    assert got[1:6] == ["0", "0:0", "0:0", "wrote", "cg"], got


def test_filesystems_the_guest_mounts_and_block_devices_refused(env):
    def mounts(spec):
        spec["mounts"] += [
            {"destination": "/r", "type": "ramfs", "source": "ramfs"},
            {"destination": "/huge", "type": "hugetlbfs", "source": "none",
             "options": ["pagesize=2M"]},
            {"destination": "/bm", "type": "binfmt_misc", "source": "binfmt_misc"},
        ]
    b = write_bundle(env.tmp / "bfs", ["busybox", "sh", "-c",
                                       "echo hi > /r/f && cat /r/f; "
                                       "busybox awk '$2 ~ /^\\/(r|huge|bm)$/ {print $2, $3}' "
                                       "/proc/self/mounts; ls /bm"],
                     extra=mounts)
    r = env.run("run", "--bundle", str(b.path), "fs1")
    assert r.returncode == 0, r.stdout + r.stderr
    got = r.stdout.split("\n")
    assert got[:4] == ["hi", "/r ramfs", "/huge hugetlbfs", "/bm binfmt_misc"], got
    assert "register" in got[4:], got
    env.run("delete", "fs1", check=True)

    # A filesystem on a block device: the host refuses it, naming why.
    def ext4(spec):
        spec["mounts"].append({"destination": "/disk", "type": "ext4", "source": "/dev/vdz1"})
    b = write_bundle(env.tmp / "bext4", ["payload", "echo"], extra=ext4)
    rc, out, err = env.create("ext4", b)
    assert rc != 0, err.read_text()
    assert ("mounts[6] (/disk): filesystem type 'ext4' lives on a block device, which cannot "
            "cross the VM boundary") in err.read_text(), err.read_text()

    # A type the guest's kernel does not have: its error, naming the mount.
    def nosuch(spec):
        spec["mounts"].append({"destination": "/n", "type": "nosuchfs", "source": "x"})
    b = write_bundle(env.tmp / "bn", ["payload", "echo"], extra=nosuch)
    rc, out, err = env.create("nosuch", b)
    assert rc != 0 and "mount /n (nosuchfs): the guest's kernel has no such filesystem type" \
        in err.read_text(), err.read_text()
    assert qemu_pids(str(env.tmp)) == []
