"""Host directories and files bind-mounted into containers (volumes, the
engines' /dev/shm and /etc/hosts, Kubernetes' directory binds): shared into
the VM through one volumes share, read-only or read-write as the spec says,
and kept across checkpoint and restore."""
import os
import re
import shutil
import socket

from conftest import make_rootfs, wait_for, write_bundle
from test_checkpoint import checkpoint, finish, lines, restore, restored, start


def bind(source, destination, *options):
    return {"destination": destination, "type": "bind", "source": str(source),
            "options": ["rbind", *options]}


def with_mounts(*mounts):
    def extra(spec):
        spec["mounts"] += list(mounts)
    return extra


def test_dirs_and_files_of_any_size_ro_rw_nested_both_ways(env):
    data, nested, ro = env.tmp / "data", env.tmp / "nested", env.tmp / "ro"
    for d in (data, nested, ro):
        d.mkdir()
    (data / "in").write_text("from the host\n")
    (nested / "deep").write_text("nested\n")
    (ro / "keep").write_text("keep\n")
    for d in (ro, data):
        (d / "run.sh").write_text("#!/bin/sh\necho ran\n")
        (d / "run.sh").chmod(0o755)
    big = env.tmp / "big.bin"
    big.write_bytes(os.urandom(3 << 20))  # past the old 1 MiB limit
    conf = env.tmp / "app.conf"
    conf.write_text("a=1\n")
    b, out = start(env, "vol", ["payload", "counter", "200"], extra=with_mounts(
        bind(data, "/data"), bind(nested, "/data/sub/nested"), bind(ro, "/ro", "ro", "noexec"),
        bind(big, "/big.bin", "ro", "nosuid", "nodev"), bind(conf, "/etc/app.conf")))

    def sh(cmd):
        return env.run("exec", "vol", "sh", "-c", cmd)

    r = sh("wc -c < /big.bin; cat /data/in /data/sub/nested/deep /etc/app.conf")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(3 << 20), "from", "the", "host", "nested", "a=1"]
    # The container writes; the host reads.
    assert sh("echo from the guest > /data/out; echo b=2 >> /etc/app.conf").returncode == 0
    assert (data / "out").read_text() == "from the guest\n"
    assert conf.read_text() == "a=1\nb=2\n"
    # The host appends; the container reads.
    with open(data / "in", "a") as f:
        f.write("more\n")
    assert sh("cat /data/in").stdout == "from the host\nmore\n"
    # Read-only holds, for a directory and a file.
    assert sh("echo x > /ro/new").returncode != 0
    assert sh("echo x > /big.bin").returncode != 0
    assert not (ro / "new").exists() and big.stat().st_size == 3 << 20
    # noexec holds (the same script runs from a volume without it), and
    # nosuid, nodev are on the file's mount.
    assert sh("/data/run.sh").stdout == "ran\n"
    r = sh("/ro/run.sh")
    assert r.returncode != 0 and "ran" not in r.stdout, r.stdout + r.stderr
    opts = sh("busybox awk '$5 == \"/big.bin\" {print $6}' /proc/self/mountinfo").stdout.split(",")
    assert {"ro", "nosuid", "nodev"} <= {o.strip() for o in opts}, opts
    # The nested mount point was made inside the outer volume, as runc does.
    assert (data / "sub" / "nested").is_dir()
    finish(env, "vol")


def test_a_socket_or_device_source_is_refused_naming_it(env):
    path = env.tmp / "docker.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    try:
        for source, kind in ((path, "unix socket"), ("/dev/null", "character device")):
            b = write_bundle(env.tmp / f"b-{kind[:4]}", ["payload", "echo", "x"],
                             extra=with_mounts(bind(source, "/var/run/x.sock")))
            rc, out, err = env.create(f"bad-{kind[:4]}", b)
            text = err.read_text()
            assert rc != 0
            assert str(source) in text and kind in text and "/var/run/x.sock" in text, text
    finally:
        s.close()
    assert not list(env.root.glob("bad-*"))


def test_open_file_offset_and_mapping_in_a_volume_survive_a_restore_under_a_new_id(env):
    data = env.tmp / "data"
    data.mkdir()
    b, out = start(env, "vf", ["sh", "-c", "payload mmapfile /data/map & exec payload fileoffset /data/log"],
                   extra=with_mounts(bind(data, "/data")))

    def offsets(path):
        return [l for l in lines(path) if l.startswith("offset")]

    def maps(path):
        return [int(l.split()[1]) for l in lines(path) if l.startswith("mmap")]
    assert wait_for(lambda: len(offsets(out)) >= 3 and len(maps(out)) >= 3)
    checkpoint(env, "vf", env.tmp / "ck")
    assert wait_for(lambda: env.state("vf")["status"] == "stopped")
    n = int(re.search(r"line (\d+)", offsets(out)[-1]).group(1))
    m = maps(out)[-1]
    env.run("delete", "vf", check=True)
    out2 = restored(env, "vf-new", env.tmp / "ck", b)
    assert wait_for(lambda: len(offsets(out2)) >= 3 and len(maps(out2)) >= 3)
    first = offsets(out2)[0]
    assert int(re.search(r"line (\d+)", first).group(1)) == n + 1
    log = (data / "log").read_text().splitlines()
    assert log[: n + 2] == [f"line {i}" for i in range(n + 2)]
    assert int(re.search(r"offset (\d+)", first).group(1)) == sum(len(f"line {i}\n") for i in range(n + 2))
    assert maps(out2)[0] == m + 1, "the mapping's counter did not carry on"
    assert wait_for(lambda: int((data / "map").read_bytes().split(b"\n")[0]) > m + 1)
    finish(env, "vf-new")


def test_restore_into_a_fresh_rootfs_with_many_binds_and_nested_ones(env):
    """podman --import on another host, in small: the rootfs has none of the
    mount points of the engine's file binds, and an outer volume lacks the
    mount point of the volume nested in it. More bind mounts than the old
    limits (6 at restore, 8 at dump)."""
    outer, inner = env.tmp / "outer", env.tmp / "inner"
    outer.mkdir()
    inner.mkdir()
    (inner / "f").write_text("inner\n")
    files = []
    for i in range(10):
        f = env.tmp / f"file{i}"
        f.write_text(f"{i}\n")
        files.append(bind(f, f"/etc/cocoon/file{i}"))
    mounts = [bind(outer, "/test"), bind(inner, "/test/for/nested"), *files]
    b, out = start(env, "mb", ["payload", "counter", "100"], extra=with_mounts(*mounts))
    assert wait_for(lambda: len(lines(out)) >= 3)
    r = env.run("exec", "mb", "sh", "-c", "cat /etc/cocoon/file9 /test/for/nested/f")
    assert r.stdout.split() == ["9", "inner"], r.stdout + r.stderr
    checkpoint(env, "mb", env.tmp / "ck")
    assert wait_for(lambda: env.state("mb")["status"] == "stopped")
    last = int(lines(out)[-1])
    env.run("delete", "mb", check=True)

    # Another host: a fresh rootfs, and a fresh outer volume.
    fresh = env.tmp / "fresh"
    fresh.mkdir()
    shutil.copy(b.config, fresh / "config.json")
    make_rootfs(fresh / "rootfs")
    shutil.rmtree(outer)
    outer.mkdir()
    assert not (fresh / "rootfs" / "etc" / "cocoon").exists()
    fb = type(b)(fresh)
    out2 = restored(env, "mb", env.tmp / "ck", fb)
    assert wait_for(lambda: len(lines(out2)) >= 3)
    assert int(lines(out2)[0]) == last + 1
    r = env.run("exec", "mb", "sh", "-c", "cat /etc/cocoon/file9 /test/for/nested/f")
    assert r.stdout.split() == ["9", "inner"], r.stdout + r.stderr
    finish(env, "mb")


def test_restore_fails_clearly_when_a_volume_is_gone(env):
    data = env.tmp / "data"
    data.mkdir()
    b, out = start(env, "vg", ["payload", "counter", "100"], extra=with_mounts(bind(data, "/data")))
    assert wait_for(lambda: len(lines(out)) >= 2)
    checkpoint(env, "vg", env.tmp / "ck")
    env.run("delete", "--force", "vg")
    shutil.rmtree(data)
    rc, out2, err = restore(env, "vg", env.tmp / "ck", b)
    assert rc != 0
    assert str(data) in err.read_text(), err.read_text()
    finish(env, "vg")
