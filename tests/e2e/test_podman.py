"""podman 4.3 (Debian 12) driving cocoon as its OCI runtime, through the
shared helper tests/e2e/podman_util.py: isolated storage, a local busybox
image, this host's ulimit setting, and nothing else."""
import os
import pathlib
import shutil
import subprocess

import pytest

from conftest import wait_for
from podman_util import podman  # noqa: F401  (the fixture)


def test_podman_run_echo_and_exit_code(podman):
    r = podman.run("run", "--rm", "--network", "none", "--ipc", "none", podman.image,
                   "payload", "echo", "hi")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "hi"
    r = podman.run("run", "--rm", "--network", "none", "--ipc", "none", podman.image,
                   "payload", "exit", "7")
    assert r.returncode == 7, r.stdout + r.stderr


def test_podman_run_i_passes_stdin_and_its_eof(podman):
    """`podman run -i` without a terminal: conmon hands the runtime a pipe
    as the container's stdin; its bytes reach the process and its EOF ends
    `cat`. Before the fix the shim closed its own fd 0 at start."""
    r = podman.run("run", "--rm", "-i", "--network", "none", "--ipc", "none", podman.image,
                   "payload", "cat", input="through stdin\nand a second line\n", timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "through stdin\nand a second line\n", r.stdout + r.stderr


def test_cocoon_warnings_reach_the_runtime_log_not_the_container_output(podman):
    # podman's conmon hands `cocoon create` the container's own output pipes
    # and reads --log: a field cocoon does not apply (a memory reservation:
    # the container is alone in its VM) is a warning in that log, never a
    # line of the container's output.
    r = podman.run("run", "--name", "warn", "--network", "none", "--ipc", "none",
                   "--memory-reservation", "32m", podman.image, "payload", "echo", "hi")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hi\n" and "cocoon" not in r.stderr, r.stdout + r.stderr
    logs = podman.check("logs", "warn")
    assert logs.stdout == "hi\n" and "cocoon" not in logs.stderr, logs.stdout + logs.stderr
    oci_logs = [p.read_text() for p in pathlib.Path(podman.base).rglob("oci-log")]
    assert any("linux.resources.memory.reservation is not applied" in t for t in oci_logs), oci_logs
    podman.check("rm", "--force", "--time", "0", "warn")


def test_second_storage_root_is_separate(podman):
    other = podman.storage("other")
    assert other.base != podman.base and other.argv()[2] != podman.argv()[2]
    podman.check("create", "--name", "only-here", "--network", "none", "--ipc", "none", podman.image,
                 "payload", "echo", "x")
    names = other.check("ps", "-a", "--format", "{{.Names}}").stdout.split()
    assert "only-here" not in names
    other.image  # imports into the second root
    assert "cocoon-test" in other.check("images", "--format", "{{.Repository}}").stdout


def test_plain_podman_run(podman):
    r = podman.run("run", "--rm", podman.image, "payload", "echo", "hi")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "hi"


def running(pid):
    """Whether PID is a process that has not exited (a zombie has)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def session_members(sid):
    """pid -> name of each process in session SID (the shim's: setsid)."""
    out = {}
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{p}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[3]) == sid:
            out[int(p)] = stat.split("(", 1)[1].rsplit(")", 1)[0]
    return out


def test_uidmap_container_killed_has_its_dev_shm_unmounted_on_the_host(podman):
    """A container whose uid map leaves host root out (`--uidmap`): podman
    4.3 runs its conmon, and so the `podman container cleanup` conmon runs
    when it exits, in a copy of the mount namespace; that cleanup's unmount
    of /dev/shm (podman's tmpfs in the storage) reaches the host by mount
    propagation, as on a systemd host. Without it the host kept the mount,
    and `podman rm` failed "unlinkat .../userdata/shm: device or resource
    busy" (shmbusy: whenever the exit command did the cleanup, with runc
    too). The kill leaves the cleanup to the exit command alone. And, as
    runc's container is gone when its pid is: once the pid cocoon reported
    (the shim) has exited, nothing of its VM (keeper, QEMU, virtiofsd, all
    in the shim's session) runs on to hold what the engine then unmounts."""
    r = podman.check("run", "-d", "--name", "um2", "--uidmap", "0:100000:65536", podman.image,
                     "sh", "-c", "echo started; exec sleep 600")
    cid = r.stdout.strip()
    pid = int(podman.check("inspect", "-f", "{{.State.Pid}}", "um2").stdout)
    session = session_members(pid)
    assert any(comm.startswith("qemu") for comm in session.values()), session

    def shm_mounted():
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4].endswith(f"{cid}/userdata/shm") for line in f)

    assert wait_for(lambda: "started" in podman.run("logs", "um2").stdout, timeout=60), \
        podman.run("logs", "um2").stdout
    assert shm_mounted(), f"no /dev/shm mount of {cid} on the host while it runs"
    podman.check("kill", "um2")
    assert wait_for(lambda: running(pid) is False, timeout=60, interval=0.005), \
        f"the shim {pid} did not exit"
    left = {p: comm for p, comm in session.items() if running(p)}
    assert not left, f"running after the shim {pid} exited: {left}"
    assert wait_for(lambda: podman.run("inspect", "-f", "{{.State.Status}}", "um2").stdout.strip()
                    == "exited", timeout=60)
    assert wait_for(lambda: not shm_mounted(), timeout=15), \
        f"the host still mounts {cid}/userdata/shm after podman's cleanup"
    podman.check("rm", "um2")


def wait_logs(podman, name, pred, timeout=60):
    return wait_for(lambda: pred(podman.run("logs", name).stdout.splitlines()), timeout=timeout)


def test_volume_read_write_from_both_sides(podman, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "in").write_text("from the host\n")
    r = podman.run("run", "-d", "--name", "v1", "-v", f"{data}:/data", podman.image,
                   "payload", "counter", "200")
    assert r.returncode == 0, r.stderr
    r = podman.check("exec", "v1", "sh", "-c", "cat /data/in; echo from the guest > /data/out")
    assert r.stdout == "from the host\n"
    assert (data / "out").read_text() == "from the guest\n"
    with open(data / "in", "a") as f:
        f.write("more\n")
    assert podman.check("exec", "v1", "cat", "/data/in").stdout == "from the host\nmore\n"
    # podman's /dev/shm is a host directory: the container's shm is in it.
    podman.check("exec", "v1", "sh", "-c", "echo shm > /dev/shm/x")
    userdata = podman.check("inspect", "--format", "{{.StaticDir}}", "v1").stdout.strip()
    assert (pathlib.Path(userdata) / "shm" / "x").read_text() == "shm\n"
    podman.check("rm", "--force", "--time", "0", "v1")


def start_volume_writer(podman, tmp_path, name, *argv):
    """Runs argv detached with a fresh host directory on /data; returns that
    directory."""
    data = tmp_path / "data"
    data.mkdir()
    r = podman.run("run", "-d", "--name", name, "-v", f"{data}:/data", podman.image, *argv)
    assert r.returncode == 0, r.stderr
    return data


def log_lines(data):
    return (data / "log").read_text().splitlines()


def assert_writer_went_on(data, n):
    """payload fileoffset wrote 3 more lines after the first n, and none was
    repeated or skipped (a restarted writer starts again at line 0)."""
    assert wait_for(lambda: len(log_lines(data)) >= n + 3)
    log = log_lines(data)
    assert log == [f"line {i}" for i in range(len(log))], "the writer restarted or skipped"


def test_checkpoint_restore_of_a_container_writing_to_a_volume(podman, tmp_path):
    data = start_volume_writer(podman, tmp_path, "w1", "payload", "fileoffset", "/data/log")
    assert wait_logs(podman, "w1", lambda l: len(l) >= 3)
    podman.check("container", "checkpoint", "w1", timeout=600)
    n = len(log_lines(data))
    podman.check("container", "restore", "w1", timeout=600)
    assert_writer_went_on(data, n)
    podman.check("rm", "--force", "--time", "0", "w1")


def test_export_and_import_into_a_second_storage_root(podman, tmp_path):
    data = start_volume_writer(podman, tmp_path, "e1", "sh", "-c",
                               "echo $$ > /tmp/pid; echo kept > /dev/shm/f; exec payload fileoffset /data/log")
    assert wait_for(lambda: (data / "log").exists() and len(log_lines(data)) >= 3)
    archive = tmp_path / "e1.tar.gz"
    podman.check("container", "checkpoint", "--export", str(archive), "e1", timeout=600)
    podman.check("rm", "--force", "--time", "0", "e1")
    n = len(log_lines(data))

    other = podman.storage("other")
    other.image  # the image the checkpoint was made from, in the other root
    other.check("container", "restore", "--import", str(archive), timeout=600)
    assert other.check("ps", "--format", "{{.Names}} {{.Status}}").stdout.startswith("e1 Up")
    assert_writer_went_on(data, n)
    r = other.check("exec", "e1", "cat", "/tmp/pid")
    assert r.stdout.strip(), "the rootfs changes (rootfs-diff.tar) came along"
    # The guest's /dev/shm is podman's shm directory: podman's own
    # devshm-checkpoint.tar carries it into the other root.
    r = other.check("exec", "e1", "cat", "/dev/shm/f")
    assert r.stdout == "kept\n", r.stdout + r.stderr
    other.check("rm", "--force", "--time", "0", "e1")


# The container's own cgroup in the guest, from inside it: the guest has no
# cgroup namespace, so /proc/self/cgroup names it ("0::/<id>").
CGROUP = "/sys/fs/cgroup$(sed 's/^0:://' /proc/self/cgroup)"


def test_memory_limit_oom_killed_inside(podman):
    r = podman.run("run", "--rm", "--memory", "64m", podman.image, "sh", "-c",
                   f"cat {CGROUP}/memory.max; payload memhog 200; echo rc=$?; "
                   f"grep oom_kill {CGROUP}/memory.events", timeout=300)
    # The hog dies (SIGKILL, 137); the shell, the VM and the agent carry on.
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout.split("\n")
    assert out[0] == str(64 << 20), r.stdout
    assert "rc=137" in out and "oom_kill 1" in out, r.stdout + r.stderr
    # conmon's OOM mark lands in podman's working directory: the test's, not
    # the directory pytest runs in (it used to litter the repository).
    assert (podman.tmp / "oom").exists(), "conmon got no OOM event"


def run_in(podman, cwd, *args, timeout=300):
    cwd.mkdir()
    return subprocess.run(podman.argv(*args), capture_output=True, text=True, timeout=timeout,
                          env=podman.env, cwd=cwd, stdin=subprocess.DEVNULL)


def test_oom_kill_in_the_guest_reaches_conmon_as_runcs_does(podman):
    """conmon learns of an OOM kill from the container's memory cgroup on
    the host (an eventfd on memory.oom_control through cgroup.event_control
    on v1, inotify on memory.events on v2) and marks it by creating a file
    `oom`; a kill inside the guest reaches it through the shim's relay
    (cgroup-oom.h). conmon 2.1.6 creates that file in its working directory,
    which podman 4.3.1 does not set (conmon inherits podman's), while podman
    reads <bundle>/oom for .State.OOMKilled: so on Debian 12 OOMKilled reads
    false for runc's OOM kills too. The test checks conmon's mark, and that
    podman reports the same as for runc."""
    r = run_in(podman, podman.tmp / "cwd-oom", "run", "--name", "oomk", "--memory", "64m",
               podman.image, "payload", "memhog", "200")
    assert r.returncode == 137, r.stdout + r.stderr
    assert (podman.tmp / "cwd-oom" / "oom").exists(), "conmon got no OOM event"
    # Killed from outside, with no OOM: the same exit, no mark.
    r = run_in(podman, podman.tmp / "cwd-kill", "run", "-d", "--name", "killed", "--memory", "64m",
               podman.image, "payload", "counter", "100")
    assert r.returncode == 0, r.stderr
    podman.check("kill", "--signal", "KILL", "killed")
    podman.run("wait", "killed", timeout=120)
    assert podman.check("inspect", "--format", "{{.State.ExitCode}}", "killed").stdout.strip() == "137"
    assert not (podman.tmp / "cwd-kill" / "oom").exists(), "an OOM mark without an OOM"
    cocoon = podman.check("inspect", "--format", "{{.State.OOMKilled}}", "oomk").stdout.strip()
    runc = shutil.which("runc")
    if runc:
        r = run_in(podman, podman.tmp / "cwd-runc", "--runtime", runc, "run", "--name", "oomr",
                   "--memory", "64m", podman.image, "payload", "memhog", "200")
        assert r.returncode == 137, r.stdout + r.stderr
        assert (podman.tmp / "cwd-runc" / "oom").exists(), "conmon got no OOM event from runc"
        assert podman.check("inspect", "--format", "{{.State.OOMKilled}}", "oomr").stdout.strip() == cocoon
    podman.check("rm", "--force", "--time", "0", "oomk", "killed", *(["oomr"] if runc else []))
    assert not list(pathlib.Path("/sys/fs/cgroup/memory/cocoon-oom").rglob("*oomk*"))
def test_pids_limit(podman):
    r = podman.run("run", "-d", "--name", "pl", "--pids-limit", "10", podman.image,
                   "payload", "forks", "30")
    assert r.returncode == 0, r.stderr
    assert wait_logs(podman, "pl", lambda l: any(x.startswith("forked") for x in l))
    line = [x for x in podman.check("logs", "pl").stdout.splitlines() if x.startswith("forked")][0]
    assert line.startswith("forked 9 "), line  # 9 children and payload itself: 10
    # No shell: at the limit it could not fork cat. The exec'd process
    # itself joins the cgroup (a move, which pids.max does not refuse).
    cid = podman.check("inspect", "--format", "{{.Id}}", "pl").stdout.strip()
    r = podman.check("exec", "pl", "cat", f"/sys/fs/cgroup/{cid}/pids.max")
    assert r.stdout.strip() == "10", r.stdout
    podman.check("rm", "--force", "--time", "0", "pl")


def test_podman_update(podman):
    r = podman.run("run", "-d", "--name", "up", "--memory", "64m", "--pids-limit", "10", podman.image,
                   "payload", "counter", "200")
    assert r.returncode == 0, r.stderr
    cid = podman.check("inspect", "--format", "{{.Id}}", "up").stdout.strip()
    # podman 4.3's update has no --pids-limit; it hands cocoon the JSON form.
    podman.check("update", "--memory", "100m", "--cpu-shares", "512", "up")
    r = podman.check("exec", "up", "cat", f"/sys/fs/cgroup/{cid}/memory.max", f"/sys/fs/cgroup/{cid}/pids.max",
                     f"/sys/fs/cgroup/{cid}/cpu.weight")
    assert r.stdout.split() == [str(100 << 20), "10", "20"], r.stdout
    # The VM was sized for 64 MiB (64 + 128 + 64): 200 MiB cannot fit.
    r = podman.run("update", "--memory", "200m", "up")
    assert r.returncode != 0 and "exceeds what the VM can give" in r.stderr, r.stderr
    podman.check("rm", "--force", "--time", "0", "up")


def vm_rss(needle):
    """QEMU's resident memory in bytes: what the host pays for the VM."""
    from conftest import qemu_pids
    pids = qemu_pids(needle)
    assert len(pids) == 1, pids
    for line in pathlib.Path(f"/proc/{pids[0]}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def host_cgroup(pid, controller):
    for line in pathlib.Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        if controller in names.split(","):
            return path
    raise AssertionError(f"{pid} is in no {controller} cgroup")


def test_podman_stats_show_the_container_not_the_vm(podman):
    r = podman.run("run", "-d", "--name", "ms", "--memory", "96m", podman.image, "payload", "memhog", "40")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    assert wait_logs(podman, "ms", lambda l: any(x.startswith("memhog") for x in l))

    def stats():
        r = podman.check("stats", "--no-stream", "--format",
                         "{{.ContainerStats.MemUsage}} {{.ContainerStats.MemLimit}} "
                         "{{.ContainerStats.PIDs}} {{.ContainerStats.CPUNano}}", "ms")
        return [int(x) for x in r.stdout.split()]
    # The figures reach the host every second: the hog's 40 MiB show.
    assert wait_for(lambda: stats()[0] >= 40 << 20, timeout=30), stats()
    usage, limit, pids, cpu = stats()
    assert 40 << 20 <= usage < 96 << 20, usage
    assert limit == 96 << 20 and pids == 1 and cpu > 0, (limit, pids, cpu)
    # Not QEMU's memory, which the old route showed (hundreds of MiB).
    assert vm_rss(str(podman.base)) > usage + (64 << 20)
    # The shim (the pid podman knows) is in the container's own host cgroup
    # (linux.cgroupsPath), which goes with the container.
    shim = podman.check("inspect", "--format", "{{.State.Pid}}", "ms").stdout.strip()
    path = host_cgroup(shim, "memory")
    assert path.endswith(f"/libpod-{cid}"), path
    podman.check("rm", "--force", "--time", "0", "ms")
    assert not pathlib.Path(f"/sys/fs/cgroup/memory{path}").exists()
    assert cid not in pathlib.Path("/proc/self/mountinfo").read_text()
