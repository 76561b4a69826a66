"""A container that owns its guest (issue 11), with the real QEMU, guest
kernel, 9p server and virtiofsd: what it can still do to the host once it is
root in the guest's own namespaces.

The container is privileged, and takes the guest the classic way: it points
core_pattern at its own binary and crashes a child, so the kernel runs
`payload hold-images` as root in the guest's initial namespaces, beside the
agent (tests/payload/payload.c)."""
import hashlib
import json
import os
import re
import subprocess

import pytest

from conftest import privileged, wait_for, write_bundle


def digests(d):
    return {p.name: (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(d.iterdir()) if p.is_file() and not p.is_symlink()}


@pytest.mark.parametrize("layout", ["same-fs", "engines", "virtiofs"])
def test_handles_the_guest_kept_cannot_change_published_images(env, layout):
    """A process that owns the guest opens every image file in the shared
    directory while the dump is written, and keeps the handles (a 9p fid is
    an open descriptor in QEMU; virtiofsd keeps its own). After the
    checkpoint is published it writes through each of them, at offset 0 and
    12 MiB past the end. The files under --image-path must not change or
    grow. Before the fix the 9p routes published by rename(): those handles
    named the very inodes in --image-path, and the writes landed there.
    Layouts: state root and images on one disk (the images go through the
    shared directory); the engines' layout (state root on tmpfs, images
    staged beside --image-path through a bind mount); virtiofs."""
    if layout == "engines":
        env.root.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0700", "tmpfs", str(env.root)], check=True)
    if layout == "virtiofs":
        env.write_config("", vm='shared_fs = "virtiofs"\n')
    b = write_bundle(env.tmp / "bundle", ["sh", "-c", "payload own-guest && exec payload memhog 32"],
                     extra=privileged)
    hold = b.rootfs / "hold.log"
    try:
        rc, out, err = env.create("own", b)
        assert rc == 0, err.read_text()
        env.run("start", "own", check=True)
        assert wait_for(lambda: "own-guest: " in out.read_text(), timeout=120), out.read_text()
        assert "own-guest: OK" in out.read_text(), out.read_text()
        assert wait_for(lambda: len(out.read_text().splitlines()) >= 2, timeout=120), out.read_text()

        ck = env.tmp / "ck"
        r = env.run("checkpoint", "--leave-running", "--print-stats", "--image-path", str(ck), "own",
                    timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        stats = json.loads(r.stdout.split("stats: ", 1)[1])
        if layout == "engines":
            assert stats["staging"] == "beside", stats
        published = digests(ck)
        assert "cocoon.json" in published and len(published) > 3, published

        (b.rootfs / "go").write_text("")
        assert wait_for(lambda: hold.exists() and "done" in hold.read_text(), timeout=120), \
            hold.read_text() if hold.exists() else "no hold.log"
        log = hold.read_text()
        held = int(re.search(r"held (\d+) files", log).group(1))
        wrote = int(re.search(r"wrote (\d+) bytes", log).group(1))
        # The attack happened: image files were held and written through.
        assert held > 0, log
        assert wrote > 0, log
        assert digests(ck) == published, "a handle the guest kept changed the published images"
        assert env.state("own")["status"] == "running"
    finally:
        env.run("delete", "--force", "own")
        if layout == "engines":
            subprocess.run(["umount", "-l", str(env.root)])


def test_extended_attributes_count_against_the_shared_directory_cap(env):
    """The guest's root sets user.* extended attributes on a file of its
    shared directory, through the real 9p server (passthrough: they land on
    the host's inode). On a tmpfs state root, the engines' layout, they are
    host memory while the file stores no block: the guard counted the file
    as 4 KiB, and the guest stored 64 MiB against a cap of 8. Now the VM is
    stopped past the cap, with an error naming it."""
    env.root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0700", "tmpfs", str(env.root)], check=True)
    env.write_config("[limits]\nshared_max_bytes = 8388608\n")
    b = write_bundle(env.tmp / "bundle", ["sh", "-c", "payload own-guest fill-xattrs; exec sleep 600"],
                     extra=privileged)
    hold = b.rootfs / "hold.log"
    try:
        rc, out, err = env.create("fill", b)
        assert rc == 0, err.read_text()
        env.run("start", "fill", check=True)
        assert wait_for(lambda: env.state("fill")["status"] == "stopped"
                        or (hold.exists() and ("done" in hold.read_text() or "refused" in hold.read_text())),
                        timeout=240), out.read_text() + (hold.read_text() if hold.exists() else "")
        log = hold.read_text() if hold.exists() else ""
        # The attack happened: the guest's root set attributes through 9p.
        assert "xattrs " in log, out.read_text() + log
        assert wait_for(lambda: env.state("fill")["status"] == "stopped", timeout=10), \
            f"the container runs on after the guest stored attributes past the cap: {log}"
        stored = [p for p in (env.root / "fill" / "shared").rglob("*") if p.is_file()]
        held = sum(len(n) + 1 + len(os.getxattr(p, n, follow_symlinks=False))
                   for p in stored for n in os.listxattr(p, follow_symlinks=False))
        assert 4 << 20 < held < 32 << 20, f"{held} bytes of attributes stored (cap 8 MiB)"
        assert "limits.shared_max_bytes" in err.read_text(), err.read_text()
    finally:
        env.run("delete", "--force", "fill")
        subprocess.run(["umount", "-l", str(env.root)])


def test_a_file_removed_but_held_open_counts_against_the_shared_directory_cap(env):
    """The guest's root opens a file of its shared directory, removes it,
    and writes 64 MiB into it: QEMU's 9p server keeps the guest's handle,
    so the inode stays on the state root's filesystem (host memory on
    tmpfs), though no walk of the directory sees it. The guard counted
    nothing of it. Now the VM is stopped past the cap, naming it."""
    env.write_config("[limits]\nshared_max_bytes = 8388608\n")
    b = write_bundle(env.tmp / "bundle", ["sh", "-c", "payload own-guest fill-unlinked; exec sleep 600"],
                     extra=privileged)
    hold = b.rootfs / "hold.log"
    try:
        rc, out, err = env.create("held", b)
        assert rc == 0, err.read_text()
        env.run("start", "held", check=True)
        assert wait_for(lambda: env.state("held")["status"] == "stopped"
                        or (hold.exists() and ("done" in hold.read_text() or "refused" in hold.read_text())),
                        timeout=240), out.read_text() + (hold.read_text() if hold.exists() else "")
        log = hold.read_text() if hold.exists() else ""
        # The attack happened: the guest's root wrote into the removed file.
        assert "unlinked " in log, out.read_text() + log
        assert wait_for(lambda: env.state("held")["status"] == "stopped", timeout=10), \
            f"the container runs on after the guest wrote past the cap into a removed file: {log}"
        assert "done" not in log, log
        assert "limits.shared_max_bytes" in err.read_text() and "holds open" in err.read_text(), \
            err.read_text()
    finally:
        env.run("delete", "--force", "held")
