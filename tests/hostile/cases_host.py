"""Hostile-guest cases (test_hostile.py): check, volumes, delete, a restore
directory with entries it does not list, and the state root."""
import json
import os
import select
import subprocess
import threading
import time

from hostile_env import COCOON, SECRET, Env, alive, case, good_images


@case
def check_report_strips_guest_controls():
    """`cocoon check` prints what the agent says about itself (its version,
    the kernel release, CRIU's version, path and check lines, module
    failures, and with debug criu check's output): an owned agent fills
    them with terminal controls, none reaches the terminal."""
    env = Env("check-text")
    try:
        with open(env.config) as f:
            cfg = f.read().replace("[runtime]\n", "[runtime]\nenable_debug = true\n", 1)
        with open(env.config, "w") as f:
            f.write(cfg)
        out_path = os.path.join(env.tmp, "check.txt")
        with open(out_path, "wb") as out:
            rc, err, _ = env.cocoon("check", stdout=out)
        with open(out_path, "rb") as f:
            text = f.read()
        assert b"6.1" in text and b"3.17" in text and b"mod:" in text and b"line 2" in text, text
        for bad in (b"\x1b", b"\xc2\x9b", b"\x07", b"\r"):
            assert bad not in text + err, f"{bad!r} reached the terminal: {text!r}"
    finally:
        env.close()


@case
def volumes_share_holds_only_what_the_spec_gave():
    """The guest attacks the volumes share (src/host/lib/volumes.c) as QEMU's 9p
    server could for it: nothing beside the mount points, no write into a
    read-only volume, and what it leaves in a writable one (a symlink to the
    canary, a FIFO) is neither followed nor removed by `delete`. The binds
    never reach the host's mount table."""
    env = Env("volumes")
    try:
        rw, ro = os.path.join(env.tmp, "vol-rw"), os.path.join(env.tmp, "vol-ro")
        for d in (rw, ro):
            os.makedirs(d)
            with open(os.path.join(d, "data"), "wb") as f:
                f.write(SECRET)
        with open(os.path.join(env.bundle, "config.json")) as f:
            spec = json.load(f)
        spec["mounts"] = [
            {"destination": "/rw", "type": "bind", "source": rw, "options": ["rbind", "rw"]},
            {"destination": "/ro", "type": "bind", "source": ro, "options": ["rbind", "ro"]},
        ]
        with open(os.path.join(env.bundle, "config.json"), "w") as f:
            json.dump(spec, f)
        env.create()
        log = env.log_text()
        for what in ("mkdir in the share", "symlink in the share", "rename a mount point"):
            line = [x for x in log.splitlines() if x.startswith(f"volumes {what}: ")]
            assert line and not line[0].endswith(": OK"), f"{what}: {line or 'not tried'}"
        writes = [x.rsplit(": ", 1)[1] for x in log.splitlines() if x.startswith("volumes write ")]
        assert sorted(writes) == ["EROFS", "OK"], f"writes into the volumes: {writes}"
        assert os.listdir(ro) == ["data"], f"the read-only volume changed: {os.listdir(ro)}"
        assert os.path.islink(os.path.join(rw, "escape")), "the writable volume did not get the guest's symlink"
        with open("/proc/self/mountinfo") as f:
            assert env.tmp not in f.read(), "a volume bind reached the host's mount table"
        rc, err, _ = env.cocoon("delete", "--force", "c1")
        assert rc == 0, f"delete: {err!r}"
        assert env.canary_intact(), "the canary outside the state root was touched"
        for d in (rw, ro):
            with open(os.path.join(d, "data"), "rb") as f:
                assert f.read() == SECRET, f"{d}/data changed"
        assert sorted(os.listdir(rw)) == ["data", "escape", "fifo", "hostile"], os.listdir(rw)
        assert not os.path.exists(os.path.join(env.root, "c1")), "the state directory is still there"
    finally:
        env.close()


@case
def delete_survives_bad_ids_and_any_depth():
    """`delete` of an invalid ID is a named error, never a crash (it
    segfaulted on '../x'); a shared directory nested deeper than the host's
    walk bound (a guest can make any depth) is removed entirely; and
    `delete --force` of a directory without its state.json removes it rather
    than reporting success while it stays."""
    env = Env("reply-empty")
    try:
        os.makedirs(env.root, exist_ok=True)
        for bad in ("../x", "", "a/b", ".x"):
            for force in ((), ("--force",)):
                rc, err, _ = env.cocoon("delete", *force, bad)
                assert rc == 1 and b"container ID" in err, f"delete {force} {bad!r}: rc={rc} {err!r}"
        deep = os.path.join(env.root, "deep")
        os.makedirs(os.path.join(deep, "shared", *(["d"] * 40)))
        os.symlink(env.canary, os.path.join(deep, "shared", *(["d"] * 40), "link"))
        with open(os.path.join(deep, "state.json"), "w") as f:
            json.dump({"id": "deep", "status": "stopped"}, f)
        rc, err, _ = env.cocoon("delete", "deep")
        assert rc == 0, f"delete of a 40-deep shared dir: rc={rc} {err!r}"
        assert not os.path.exists(deep), "the deep state directory is still there"
        orphan = os.path.join(env.root, "orphan")
        os.makedirs(os.path.join(orphan, "shared"))
        rc, err, _ = env.cocoon("delete", "--force", "orphan")
        assert rc == 0 and not os.path.exists(orphan), f"delete --force left {orphan}: rc={rc} {err!r}"
        assert env.canary_intact(), "the canary outside the state root was touched"
    finally:
        env.close()


@case
def restore_directory_with_unlisted_entries_starts_no_vm():
    """A restore directory holds what cocoon.json lists: an extra image
    (CRIU would read a stray pages-9.img or core-99.img unchecked), a
    symlink, a FIFO or a hard link is refused by name before any VM
    starts."""
    with Env("good") as env:
        images = good_images(env)
        started = len(env.vmm_pids())
        extra = os.path.join(images, "core-99.img")
        listed = os.path.join(images, sorted(f for f in os.listdir(images) if f.endswith(".img"))[0])
        elsewhere = os.path.join(env.tmp, "elsewhere.img")

        def plant_file():
            with open(extra, "wb") as f:
                f.write(b"x")

        for what, plant, undo, needle in (
                ("an extra file", plant_file, lambda: os.unlink(extra), "core-99.img is not listed"),
                ("a symlink", lambda: os.symlink(env.secret, extra), lambda: os.unlink(extra),
                 "core-99.img is not a regular file"),
                ("a FIFO", lambda: os.mkfifo(extra), lambda: os.unlink(extra), "core-99.img is not a regular file"),
                ("a hard link", lambda: os.link(listed, elsewhere), lambda: os.unlink(elsewhere),
                 f"{os.path.basename(listed)} has 2 links")):
            plant()
            rc, err, took = env.cocoon("restore", "--image-path", images, "--bundle", env.bundle, "-d", "r3")
            undo()
            assert rc not in (0, None) and needle.encode() in err, f"{what}: rc {rc} {err!r}"
            assert took < 10, f"{what}: took {took:.1f} s"
        assert len(env.vmm_pids()) == started, "a VM was started for a restore directory with extra entries"
        assert env.canary_intact(), "the canary was touched"


@case
def bad_state_root_corrupt_state_and_unwritable_log_are_named():
    """`--root` naming a file fails naming the root (it listed nothing and
    exited 0); a corrupt state.json is a warning naming the container, not a
    silent skip; a --log that cannot be written fails the command."""
    env = Env("good")
    try:
        rc, err, _ = env.cocoon("list", "--format", "json")  # before the root exists: empty, fine
        assert rc == 0, f"list of a missing root: rc={rc} {err!r}"
        for args in (("--root", env.secret, "list"), ("--root", env.secret, "state", "c1"),
                     ("--root", env.secret + "/x", "list")):
            p = subprocess.run([COCOON, *args], capture_output=True, env=env.env(), timeout=10)
            assert p.returncode == 1 and env.secret.encode() in p.stderr, f"{args}: {p.returncode} {p.stderr!r}"
        os.makedirs(os.path.join(env.root, "bad1"))
        with open(os.path.join(env.root, "bad1", "state.json"), "w") as f:
            f.write("{")
        os.makedirs(os.path.join(env.root, "creating"))  # no state.json yet: not named
        out = open(os.path.join(env.tmp, "list.txt"), "wb")
        rc, err, _ = env.cocoon("list", stdout=out)
        assert rc == 0 and b"warning" in err and b"bad1" in err, f"list: rc={rc} {err!r}"
        assert b"creating" not in err, f"list named a directory without state.json: {err!r}"
        log = os.path.join(env.tmp, "nonexistent", "dir", "log")
        p = subprocess.run([COCOON, "--root", env.root, "--log", log, "list"], capture_output=True,
                           env=env.env(), timeout=10)
        assert p.returncode == 1 and log.encode() in p.stderr, f"--log {log}: {p.returncode} {p.stderr!r}"
    finally:
        env.close()


@case
def output_flood_does_not_starve_the_shims_control():
    """The guest sends its container's output as fast as the shim takes it:
    the shim read the channel until it ran dry, which it never did, and
    answered no control request meanwhile (kill waited its whole timeout)."""
    with Env("output-flood") as env:
        env.create(stdout=open(os.devnull, "wb"))
        deadline = time.time() + 5
        while "output flood" not in env.log_text() and time.time() < deadline:
            time.sleep(0.05)
        assert "output flood" in env.log_text(), "the guest never flooded"
        time.sleep(1)
        rc, err, took = env.cocoon("kill", "c1", "KILL", timeout=40)
        assert rc == 0, f"kill failed after {took:.1f} s: {err!r}"
        assert took < 5, f"kill took {took:.1f} s under the flood"
        return f"kill answered in {took:.2f} s under the flood"


@case
def unanswered_stats_do_not_wedge_the_shim():
    """With linux.cgroupsPath the shim asks the guest for its figures every
    second and waits 2 s for them: a guest that reads and never answers
    kept the shim in those waits back to back, and it served no kill."""
    if os.geteuid() != 0 or not (os.path.exists("/sys/fs/cgroup/cgroup.controllers")
                                 or os.path.isdir("/sys/fs/cgroup/memory")):
        return "skip: the cgroup mirror needs root and a cgroup hierarchy"
    with Env("stats-silent") as env:
        cg = f"/cocoon-hostile-{os.getpid()}"
        with open(os.path.join(env.bundle, "config.json")) as f:
            spec = json.load(f)
        spec["linux"]["cgroupsPath"] = cg
        with open(os.path.join(env.bundle, "config.json"), "w") as f:
            json.dump(spec, f)
        rc, err, _ = env.cocoon("create", "--bundle", env.bundle, "c1")
        assert rc == 0, err
        deadline = time.time() + 5
        while "stats unanswered" not in env.log_text() and time.time() < deadline:
            time.sleep(0.05)
        assert "stats unanswered" in env.log_text(), "the shim never asked for figures"
        took = {}
        for cmd in (("start", "c1"), ("kill", "c1", "KILL")):
            rc, err, took[cmd[0]] = env.cocoon(*cmd, timeout=40)
            assert rc == 0, f"{cmd[0]} failed after {took[cmd[0]]:.1f} s: {err!r}"
            assert took[cmd[0]] < 5, f"{cmd[0]} took {took[cmd[0]]:.1f} s"
        return f"start answered in {took['start']:.2f} s, kill in {took['kill']:.2f} s"


@case
def stdin_to_a_guest_that_reads_nothing_is_held_not_dropped():
    """rev hostile5 G5: the shim read the container's stdin and sent it on
    whatever the guest did. Once a guest stopped reading its channel, the
    first send waited out limits.channel_send_timeout_ms (the shim served
    nothing meanwhile) and every later chunk was read from the engine's
    pipe and dropped at once: the engine's writer went on writing into
    nothing, and nothing said that its data was lost. Now the shim reads
    stdin only while the channel has room: the rest waits in the pipe (the
    shim holds no byte of it), the writer blocks as it would on a process
    that does not read, the stall is reported once naming the limit, and
    the shim serves on."""
    with Env("deaf", limits="channel_send_timeout_ms = 1000") as env:
        r, w = os.pipe()
        err_path = os.path.join(env.tmp, "create-err.txt")
        with open(os.path.join(env.tmp, "create-out.txt"), "wb") as out, open(err_path, "wb") as err_f:
            p = subprocess.run([COCOON, "--root", env.root, "create", "--bundle", env.bundle, "c1"],
                               stdin=r, stdout=out, stderr=err_f, env=env.env(), timeout=30)
        os.close(r)
        assert p.returncode == 0, "create failed"
        rc, err, _ = env.cocoon("start", "c1")
        assert rc == 0, err
        fed = [0]

        def feed():
            chunk = b"x" * 65536
            try:
                while True:
                    fed[0] += os.write(w, chunk)
            except OSError:
                pass  # the shim is gone: EPIPE
        threading.Thread(target=feed, daemon=True).start()
        held = b"its stdin waits unread in its pipe"
        deadline = time.time() + 10
        while time.time() < deadline:
            with open(err_path, "rb") as f:
                logged = f.read()
            if held in logged:
                break
            time.sleep(0.1)
        assert held in logged, f"no report of the held stdin after 10 s (fed {fed[0]} bytes): {logged!r}"
        assert b"limits.channel_send_timeout_ms = 1000" in logged, logged
        at_report = fed[0]
        time.sleep(2)
        grown = fed[0] - at_report
        assert grown <= 65536, f"the shim read {grown} more bytes of stdin in 2 s after the stall, for nothing"
        rc, serr, took = env.cocoon("state", "c1", stdout=open(os.devnull, "wb"))
        assert rc == 0 and took < 1, f"state: rc {rc} in {took:.1f} s: {serr!r}"
        rc, derr, took = env.cocoon("delete", "--force", "c1", timeout=40)
        assert rc == 0 and took < 10, f"delete --force: rc {rc} in {took:.1f} s: {derr!r}"
        os.close(w)
        return f"fed {at_report >> 10} KiB before the report, {grown} bytes in the 2 s after"


@case
def a_guest_that_ignores_the_kill_is_ended_with_its_vm():
    """rev hostile5 G4: a guest that reads the kill (and the shutdown) and
    does nothing. `cocoon kill KILL` waited 30 s for the agent's answer,
    failed, and left the VM running (only delete --force, which asks the
    agent to shut down and then kills QEMU, ended it). Now a SIGKILL the
    agent does not answer within limits.channel_send_timeout_ms ends the
    container with its VM: kill returns 0, QEMU is killed at once, the
    container is recorded stopped (137), and the warning names the bound."""
    with Env("kill-deaf", limits="channel_send_timeout_ms = 1000") as env:
        err_path = os.path.join(env.tmp, "create-err.txt")
        with open(os.path.join(env.tmp, "create-out.txt"), "wb") as out, open(err_path, "wb") as err_f:
            p = subprocess.run([COCOON, "--root", env.root, "create", "--bundle", env.bundle, "c1"],
                               stdin=subprocess.DEVNULL, stdout=out, stderr=err_f, env=env.env(), timeout=30)
        assert p.returncode == 0, "create failed"
        rc, err, _ = env.cocoon("start", "c1")
        assert rc == 0, err
        vmm = env.vmm_pids()
        rc, err, took = env.cocoon("kill", "c1", "KILL", timeout=60)
        assert rc == 0, f"kill of a guest that ignores it: rc {rc} after {took:.1f} s: {err!r}"
        assert took < 5, f"kill took {took:.1f} s (bound: 1 s + teardown)"
        deadline = time.time() + 5
        while time.time() < deadline and any(alive(v) for v in vmm):
            time.sleep(0.05)
        assert not any(alive(v) for v in vmm), "the VM runs on after its container was killed"
        status, deadline = None, time.time() + 5
        while time.time() < deadline and status != "stopped":
            out = os.path.join(env.tmp, "state.json")
            with open(out, "wb") as f:
                rc, _, _ = env.cocoon("state", "c1", stdout=f)
            with open(out) as f:
                status = json.load(f)["status"] if rc == 0 else None
            time.sleep(0.1)
        assert status == "stopped", f"c1 is {status!r}"
        with open(err_path, "rb") as f:
            logged = f.read()
        assert b"its VM is stopped instead" in logged and b"limits.channel_send_timeout_ms" in logged, logged
        assert "ignored kill" in env.log_text(), "the kill never reached the guest"
        rc, derr, _ = env.cocoon("delete", "c1")
        assert rc == 0, derr
        return f"kill answered in {took:.2f} s; {logged.decode(errors='replace').strip().splitlines()[-1][:160]}"


def session_peak_rss_kib(leader, skip):
    """The largest peak RSS (VmHWM, KiB) of the processes in session LEADER
    (the shim setsid()s: its keeper is there too), but the pids in SKIP."""
    peak = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[3]) != leader or int(pid) in skip:
                continue
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except (OSError, ValueError, IndexError):
            continue
    return peak


@case
def output_nobody_reads_leaves_the_shim_serving_and_bounded():
    """issue 11 L1: the shim wrote the container's output to the engine's
    pipe with a blocking write. An engine that stopped reading (or a guest
    that wrote faster than it read) held the shim in that write, and kill
    got no answer. Now the shim writes without blocking, queues what the
    engine has not taken, asks the guest to hold the stream past its
    high-water mark, and drops (once reported, naming the limit) what a
    guest that ignores the hold sends past limits.output_queue_max_bytes:
    kill and state answer at once, the shim's memory stays bounded, and
    once the container is killed the shim ends within
    limits.channel_send_timeout_ms although its engine never read."""
    cap = 4 << 20
    with Env("output-flood", limits=f"channel_send_timeout_ms = 1000\n"
                                    f"output_queue_max_bytes = {cap}") as env:
        r, w = os.pipe()  # the engine's stdout, never read
        err_path = os.path.join(env.tmp, "create-err.txt")
        # Under ASan (make asan) freed memory waits in a 256 MiB quarantine,
        # and each of the flood's events would count as held: the shim,
        # forked by create, takes a small one from its environment.
        asan = (os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=1").lstrip(":")
        with open(err_path, "wb") as err_f:
            p = subprocess.run([COCOON, "--root", env.root, "create", "--bundle", env.bundle, "c1"],
                               stdin=subprocess.DEVNULL, stdout=w, stderr=err_f,
                               env={**env.env(), "ASAN_OPTIONS": asan}, timeout=30)
        os.close(w)
        assert p.returncode == 0, "create failed"
        with open(os.path.join(env.root, "c1", "state.json")) as f:
            shim = json.load(f)["shim_pid"]
        base = session_peak_rss_kib(shim, set(env.vmm_pids()))
        rc, err, _ = env.cocoon("start", "c1")
        assert rc == 0, err
        deadline = time.time() + 5
        while "output flood" not in env.log_text() and time.time() < deadline:
            time.sleep(0.05)
        assert "output flood" in env.log_text(), "the guest never flooded"
        time.sleep(3)  # the pipe is full, and the shim's queue too
        rc, serr, state_took = env.cocoon("state", "c1", stdout=open(os.devnull, "wb"))
        assert rc == 0 and state_took < 1, f"state: rc {rc} in {state_took:.1f} s: {serr!r}"
        rc, err, took = env.cocoon("kill", "c1", "KILL", timeout=40)
        assert rc == 0, f"kill failed after {took:.1f} s: {err!r}"
        assert took < 5, f"kill took {took:.1f} s while the engine read nothing"
        peak = session_peak_rss_kib(shim, set(env.vmm_pids()))
        assert "output_flow hold=1" in env.log_text(), "the shim never asked the guest to hold"
        with open(err_path, "rb") as f:
            logged = f.read()
        drop = b"container c1: "
        assert drop in logged and b"of its stdout dropped" in logged and \
            f"limits.output_queue_max_bytes = {cap}".encode() in logged, logged[-600:]
        assert logged.count(b"of its stdout dropped") == 1, "the drop was reported more than once"
        # The queue's cap, twice over for realloc's copy, and slack.
        assert peak - base < 2 * (cap >> 10) + 8192, \
            f"the shim's peak RSS grew by {(peak - base) >> 10} MiB under the flood"
        status, deadline = None, time.time() + 10
        while time.time() < deadline and status != "stopped":
            out = os.path.join(env.tmp, "state.json")
            with open(out, "wb") as f:
                rc, _, _ = env.cocoon("state", "c1", stdout=f)
            with open(out) as f:
                status = json.load(f)["status"] if rc == 0 else None
            time.sleep(0.1)
        assert status == "stopped", f"c1 is {status!r} 10 s after its kill"
        with open(err_path, "rb") as f:
            logged = f.read()
        assert b"container c1: ended, and the engine has not read its stdout" in logged and \
            b"are dropped" in logged, logged[-600:]
        os.set_blocking(r, False)
        got = os.read(r, 1 << 20)
        os.close(r)
        assert got and got == b"F" * len(got), "the pipe holds something else than the guest's output"
        return (f"state in {state_took:.2f} s, kill in {took:.2f} s; the shim's peak RSS "
                f"{base >> 10} -> {peak >> 10} MiB (cap {cap >> 20} MiB)\n"
                + logged.decode(errors="replace").strip())


@case
def an_exec_exit_the_shim_keeps_is_its_own_copy():
    """The exit of an exec whose output the engine has not read yet waits
    in the shim until that output is written. The shim kept the guest's
    event by value, with the pointer to what protobuf-c keeps of fields it
    does not know, and the event was freed: once the output was read, the
    shim packed the exit for `cocoon exec` from freed memory. The guest
    sends 2 MiB of the exec's output, then its exit with 20000 unknown
    fields (about 480 KiB kept by protobuf-c)."""
    with Env("exec-exit-unknown") as env:
        env.create()
        r, w = os.pipe()
        with open(os.path.join(env.tmp, "exec.err"), "wb") as errf:
            p = subprocess.Popen([COCOON, "--root", env.root, "exec", "c1", "true"], stdout=w,
                                 stderr=errf, env=env.env())
        os.close(w)
        try:
            deadline = time.time() + 20
            while "exec exit sent" not in env.log_text() and time.time() < deadline:
                time.sleep(0.05)
            assert "exec exit sent" in env.log_text(), "the guest never ran the exec"
            time.sleep(1)  # the exit is handled, and its event freed, with the output unread
            got, deadline = 0, time.time() + 30
            while time.time() < deadline:
                if not select.select([r], [], [], 1)[0]:
                    continue
                chunk = os.read(r, 1 << 20)
                if not chunk:
                    break
                got += len(chunk)
            rc = p.wait(timeout=20)
        finally:
            os.close(r)
            if p.poll() is None:
                p.kill()
        with open(os.path.join(env.tmp, "exec.err"), "rb") as f:
            err = f.read()
        assert got == 2 << 20, f"{got} bytes of the exec's 2 MiB output: {err!r}"
        assert rc == 0, f"exec: rc {rc}: {err!r}"
        out = open(os.path.join(env.tmp, "state.json"), "wb")
        rc, serr, _ = env.cocoon("state", "c1", stdout=out)
        assert rc == 0, f"the shim is gone: {serr!r}"
        return f"{got} bytes, then the exit (status 0)"


@case
def the_shims_warnings_to_an_engine_that_reads_nothing_do_not_block_it():
    """issue 11, its last gap: without --log the shim's warnings go to its
    stderr, the container's, which is the engine's pipe. With that pipe
    full (a container that floods its stderr, an engine that reads
    nothing), the first warning (the report of the stall) was a blocking
    write: the shim served nothing more, and `kill` got no answer. Now the
    shim's lines go with the container's stderr, queued, never blocking."""
    with Env("stderr-flood", limits="channel_send_timeout_ms = 1000") as env:
        r, w = os.pipe()  # the engine's stderr, never read
        p = subprocess.run([COCOON, "--root", env.root, "create", "--bundle", env.bundle, "c1"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=w,
                           env=env.env(), timeout=30)
        os.close(w)
        assert p.returncode == 0, "create failed"
        rc, err, _ = env.cocoon("start", "c1")
        assert rc == 0, err
        deadline = time.time() + 5
        while "output flood" not in env.log_text() and time.time() < deadline:
            time.sleep(0.05)
        assert "output flood" in env.log_text(), "the guest never flooded"
        time.sleep(2.5)  # the pipe is full; the stall is reported at 1 s
        rc, err, took = env.cocoon("kill", "c1", "KILL", timeout=40)
        os.set_blocking(r, False)
        head = os.read(r, 1 << 16)
        assert head and head == b"F" * len(head), "the pipe holds something else than the guest's output"
        assert rc == 0, f"kill failed after {took:.1f} s: {err!r}"
        assert took < 5, f"kill took {took:.1f} s: the shim was held in a write of its warning"
        status, deadline = None, time.time() + 10
        while time.time() < deadline and status != "stopped":
            out = os.path.join(env.tmp, "state.json")
            with open(out, "wb") as f:
                rc, _, _ = env.cocoon("state", "c1", stdout=f)
            with open(out) as f:
                status = json.load(f)["status"] if rc == 0 else None
            time.sleep(0.1)
        assert status == "stopped", f"c1 is {status!r} 10 s after its kill"
        os.close(r)
        return f"kill answered in {took:.2f} s"
