"""A container's output that its engine does not read (issue 11 L1): the
shim asks the guest to hold the stream, the container's writer waits as it
would on runc with a full pipe, the shim keeps answering, and once the
engine reads, every byte arrives in order. By cocoon itself, and through
containerd's runc shim and `ctr`."""
import hashlib
import json
import os
import subprocess
import threading
import time

import pytest

from conftest import COCOON, wait_for, write_bundle
from containerd_util import IMAGE, remove_task, run_args, start_containerd, task_status

LINES = 4 << 20  # 16 bytes each: 64 MiB


def expected_output():
    return b"".join(b"%015d\n" % i for i in range(LINES))


def session_peak_rss_kib(leader):
    """The largest peak RSS (KiB) in the shim's session but QEMU's: the
    shim and its keeper, which holds the output queues."""
    peak = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                qemu = b"qemu-system" in f.read()
            if int(fields[3]) != leader or qemu:
                continue
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except (OSError, ValueError, IndexError):
            continue
    return peak


def test_output_the_engine_does_not_read_is_held_then_arrives_whole(env):
    env.write_config("[limits]\nchannel_send_timeout_ms = 2000\n")
    b = write_bundle(env.tmp / "b", ["payload", "lines", str(LINES)])
    r, w = os.pipe()
    err_path = env.tmp / "flood.err"
    with open(err_path, "wb") as e:
        p = subprocess.run([str(COCOON), "--root", str(env.root), "--config", str(env.config),
                            "create", "--bundle", str(b.path), "flood"],
                           stdin=subprocess.DEVNULL, stdout=w, stderr=e, timeout=180)
    os.close(w)
    try:
        assert p.returncode == 0, err_path.read_text()
        shim = json.loads((env.root / "flood" / "state.json").read_text())["shim_pid"]
        base = session_peak_rss_kib(shim)
        env.run("start", "flood", check=True)

        # 10 s of nobody reading: the pipe (64 KiB) and the shim's queue
        # fill, the guest is asked to hold, and the shim still answers.
        worst = {"state": 0.0, "ps": 0.0}
        until = time.time() + 10
        while time.time() < until:
            for cmd in worst:
                t0 = time.time()
                res = env.run(cmd, "flood", timeout=60)
                worst[cmd] = max(worst[cmd], time.time() - t0)
                assert res.returncode == 0, f"{cmd}: {res.stderr}"
            assert env.state("flood")["status"] == "running", "the writer did not wait"
            time.sleep(0.5)
        assert worst["state"] < 1 and worst["ps"] < 5, f"slowest answers: {worst}"
        peak = session_peak_rss_kib(shim)
        logged = err_path.read_bytes()
        assert b"the engine has not read its stdout" in logged, logged[-800:]
        assert b"dropped" not in logged, logged[-800:]

        # Now the engine reads: every byte, in order.
        chunks = []
        reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(r, 1 << 20), b"")),
                                  daemon=True)
        t0 = time.time()
        reader.start()
        reader.join(timeout=300)
        took = time.time() - t0
        assert not reader.is_alive(), f"no EOF on the container's stdout after {took:.0f} s"
        got = b"".join(chunks)
        want = expected_output()
        assert len(got) == len(want), f"{len(got)} bytes arrived, {len(want)} were written"
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(want).hexdigest(), \
            "the output arrived changed or out of order"
        assert wait_for(lambda: env.state("flood")["status"] == "stopped", timeout=60)
        assert b"lines: done" in err_path.read_bytes()
        # The queue stops near its high-water mark (1 MiB), far below
        # limits.output_queue_max_bytes (16 MiB), let alone 64 MiB.
        assert peak - base < 8 << 10, f"the shim's peak RSS grew {base >> 10} -> {peak >> 10} MiB"
        print(f"held 10 s: state <= {worst['state']:.2f} s, ps <= {worst['ps']:.2f} s; "
              f"shim peak RSS {base >> 10} -> {peak >> 10} MiB; 64 MiB read in {took:.1f} s, "
              "in order")
    finally:
        os.close(r)
    env.run("delete", "--force", "flood", check=True)


@pytest.fixture(scope="module")
def cd(tmp_path_factory):
    yield from start_containerd(tmp_path_factory.mktemp("containerd"))


def test_ctr_run_whose_stdout_is_not_read_waits_then_arrives_whole(cd):
    """The same through containerd's runc shim: `ctr run` copies the task's
    stdout into a pipe nobody reads for 10 s, so containerd's fifo, and then
    cocoon's shim, are not read either; `ctr tasks ps` (a `cocoon ps`
    through the shim) answers meanwhile, and then every byte arrives."""
    cid = f"flow-{os.getpid()}"
    ctr = subprocess.Popen(["ctr", "--address", str(cd.sock), "--namespace", cd.ns,
                            *run_args("--rm", IMAGE, cid, "payload", "lines", str(LINES))],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: task_status(cd, cid) == "RUNNING", timeout=120), "the task never ran"
        worst = 0.0
        until = time.time() + 10
        while time.time() < until:
            t0 = time.time()
            r = cd.ctr("tasks", "ps", cid, timeout=60)
            worst = max(worst, time.time() - t0)
            assert r.returncode == 0, r.stderr
            assert task_status(cd, cid) == "RUNNING", "the writer did not wait"
            time.sleep(0.5)
        assert worst < 5, f"ctr tasks ps took {worst:.1f} s"
        t0 = time.time()
        got, err = ctr.communicate(timeout=300)
        took = time.time() - t0
        assert ctr.returncode == 0, err[-2000:]
        want = expected_output()
        assert len(got) == len(want), f"{len(got)} bytes arrived, {len(want)} were written"
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(want).hexdigest(), \
            "the output arrived changed or out of order"
        print(f"ctr: tasks ps <= {worst:.2f} s while unread; 64 MiB read in {took:.1f} s, in order")
    finally:
        ctr.kill()
        ctr.wait()
        remove_task(cd, cid)
        cd.ctr("containers", "delete", cid, timeout=60)
