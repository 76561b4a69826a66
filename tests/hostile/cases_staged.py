"""Hostile-guest cases (test_hostile.py): the images staged beside
--image-path. On a host whose state root and image path are on two
filesystems (the engines' layout: tmpfs and disk), the guest's
checkpoints/CKID is a bind mount of a directory the host made beside the
image path, outside the 0700 state root, for as long as the dump takes."""
import os
import stat
import subprocess
import tempfile
import time

from hostile_env import COCOON, Env, case


def other_filesystem(than):
    """A directory on another filesystem than `than`, or None."""
    dev = os.stat(than).st_dev
    for base in ("/dev/shm", "/var/tmp", "/tmp"):
        if os.path.isdir(base) and os.stat(base).st_dev != dev:
            return tempfile.mkdtemp(prefix="cocoon-hostile-beside-", dir=base)
    return None


def reachable_by_others(top, path):
    """Whether every directory from top down to path's parent lets others
    through (o+x), so that a user of the host reaches path."""
    d = os.path.dirname(path)
    while True:
        if not os.stat(d).st_mode & stat.S_IXOTH:
            return False
        if d == top:
            return True
        d = os.path.dirname(d)


@case
def staged_images_are_not_reachable_by_host_users():
    """The guest made the staging directory (its mount root) 0755 and put a
    setuid-root file and a device node in it: any user of the host could
    run the one and open the other beside --image-path while the dump ran.
    What the host makes beside the image path is 0700, and the guest's
    mount is below it."""
    if os.geteuid() != 0:
        return "skip: staging needs mount rights (root)"
    with Env("staged-setuid") as env:
        beside = other_filesystem(env.tmp)
        if not beside:
            return "skip: no second filesystem for --image-path (/dev/shm, /var/tmp)"
        try:
            os.chmod(beside, 0o755)
            env.create()
            out = os.path.join(beside, "out")
            err_path = os.path.join(env.tmp, "ck.err")
            with open(err_path, "wb") as err:
                p = subprocess.Popen([COCOON, "--root", env.root, "checkpoint", "--image-path", out,
                                      "--leave-running", "c1"], stdout=subprocess.DEVNULL,
                                     stderr=err, env=env.env())
            seen, exposed, deadline = [], [], time.time() + 30
            while p.poll() is None and time.time() < deadline:
                for dirpath, dirs, files in os.walk(beside):
                    for n in files + dirs:
                        q = os.path.join(dirpath, n)
                        try:
                            st = os.lstat(q)
                        except OSError:
                            continue
                        if st.st_mode & stat.S_ISUID or stat.S_ISBLK(st.st_mode):
                            seen.append(q)
                            if reachable_by_others(beside, q):
                                exposed.append(f"{q} ({oct(st.st_mode)})")
                time.sleep(0.05)
            rc = p.wait(timeout=60)
            with open(err_path, "rb") as f:
                err = f.read()
            assert "staged planted" in env.log_text(), "the guest planted nothing"
            assert seen, "the guest's files were never staged beside the image path (no staging?)"
            assert not exposed, f"reachable by every host user while the dump ran: {exposed[:3]}"
            assert rc == 0, err
            left = [n for n in os.listdir(beside) if n != "out"]
            assert not left, f"left beside the image path: {left}"
            return f"{len(set(seen))} planted files seen staged, none reachable by others"
        finally:
            subprocess.run(["rm", "-rf", beside])
