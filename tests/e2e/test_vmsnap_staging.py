"""Where a whole-VM checkpoint is staged (docs/whole-vm.md, "Checkpoint")."""
import json
import os
import subprocess
import threading

from conftest import wait_for
from test_checkpoint import checkpoint, finish, lines, restored, start
from test_vmsnap import vm_mode, vmm  # noqa: F401  (the fixture)


def tmpfs(path, size):
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                   check=True)


class UsedPeak:
    """The most bytes a filesystem held while it ran, sampled every 10 ms."""

    def __init__(self, path):
        self.path, self.peak, self.done = path, 0, threading.Event()
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self):
        while not self.done.wait(0.01):
            s = os.statvfs(self.path)
            self.peak = max(self.peak, (s.f_blocks - s.f_bfree) * s.f_frsize)

    def stop(self):
        self.done.set()
        self.thread.join()
        return self.peak


def test_whole_vm_is_saved_beside_the_image_path_not_in_a_small_tmpfs_state_root(env, vmm):
    """The engines' layout: the state root on tmpfs (/run under containerd
    and podman), --image-path on disk. The saved VM (guest memory and
    device state) is larger than the 48 MiB tmpfs the state root is on
    here, so it has to be written beside the image path (one directory
    made next to it, renamed into place), never under the state root:
    staged there, the save filled host memory, and here it failed. A save
    whose destination fills up fails cleanly: the error names it, nothing
    is left beside it, and the container runs on."""
    tmpfs(env.root, "48m")
    small = env.tmp / "small"
    try:
        tmpfs(small, "16m")
        vm_mode(env, vmm)
        b, out = start(env, "big", ["payload", "counter", "100"])
        assert wait_for(lambda: len(lines(out)) >= 3)
        # A destination with no room for the VM: the save fails, the
        # container runs on, nothing is left beside the destination.
        r = checkpoint(env, "big", small / "ck", check=False)
        assert r.returncode != 0 and "big" in r.stderr, r.stdout + r.stderr
        assert os.listdir(small) == [], os.listdir(small)
        assert env.state("big")["status"] == "running"
        n = len(lines(out))
        assert wait_for(lambda: len(lines(out)) >= n + 2), "the container did not run on"
        # On disk, beside the destination: it fits, and the state root's
        # tmpfs never held the VM.
        peak = UsedPeak(env.root)
        try:
            r = checkpoint(env, "big", env.tmp / "ck")
        finally:
            held = peak.stop()
        meta = json.loads((env.tmp / "ck" / "vm.json").read_text())
        size = (env.tmp / "ck" / "vm.state").stat().st_blocks * 512
        print(f"saved VM {size >> 20} MiB; the state root's tmpfs held at most {held >> 20} MiB")
        assert size > 48 << 20, f"the saved VM ({size} bytes) would fit the state root: no test"
        assert held < 16 << 20, f"the state root held {held} bytes during the save"
        assert meta["container_id"] == "big"
        assert [p for p in os.listdir(env.tmp) if p.startswith("ck.")] == [], os.listdir(env.tmp)
        assert wait_for(lambda: env.state("big")["status"] == "stopped")
        last = int(lines(out)[-1])
        env.run("delete", "big", check=True)
        out2 = restored(env, "big", env.tmp / "ck", b)
        assert wait_for(lambda: len(lines(out2)) >= 3)
        got = [int(x) for x in lines(out2)]
        assert last - 1 <= got[0] <= last + 1, f"counter went on at {got[0]}, saved at {last}"
        assert got == list(range(got[0], got[0] + len(got)))
        finish(env, "big")
    finally:
        env.run("delete", "--force", "big")
        subprocess.run(["umount", "-l", str(small)])
        subprocess.run(["umount", "-l", str(env.root)])
