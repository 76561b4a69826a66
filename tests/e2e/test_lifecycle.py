"""The runc-compatible lifecycle, through the real binary and real VMs."""
import json
import os
import re
import signal
import subprocess
import threading
import time

import pytest

from conftest import COCOON, pids_mentioning, qemu_pids, wait_for, write_bundle


def lines(path):
    return path.read_text().splitlines() if path.exists() else []


def assert_no_trace(env, cid):
    assert not (env.root / cid).exists(), f"state of {cid} left behind"
    assert qemu_pids(str(env.tmp)) == [], "a qemu process was left behind"


def run_fg(env, cid, bundle, timeout=120):
    return subprocess.run([str(COCOON), "--root", str(env.root), "--config", str(env.config),
                           "run", "--bundle", str(bundle.path), cid],
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def test_run_echo_reaches_host_stdout(env):
    b = write_bundle(env.tmp / "b", ["payload", "echo", "hello", "from", "the", "vm"])
    r = run_fg(env, "echo1", b)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello from the vm\n"
    assert env.state("echo1")["status"] == "stopped"
    assert env.run("delete", "echo1").returncode == 0
    assert_no_trace(env, "echo1")


def test_exit_code_and_signal_propagate(env):
    b = write_bundle(env.tmp / "b", ["payload", "exit", "42"])
    assert run_fg(env, "exit42", b).returncode == 42
    env.run("delete", "exit42", check=True)

    # The container's process is PID 1 of its pid namespace, so it cannot
    # kill itself with a signal; a signal from outside can.
    b = write_bundle(env.tmp / "b2", ["payload", "counter", "100"])
    proc = subprocess.Popen([str(COCOON), "--root", str(env.root), "--config", str(env.config),
                             "run", "--bundle", str(b.path), "sig"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: (env.root / "sig" / "state.json").exists()
                        and env.state("sig")["status"] == "running", timeout=60)
        env.run("kill", "sig", "KILL", check=True)
        assert proc.wait(timeout=60) == 128 + 9
    finally:
        proc.kill()
    env.run("delete", "sig", check=True)
    assert_no_trace(env, "sig")


def test_env_cwd_hostname(env):
    b = write_bundle(env.tmp / "b", ["sh", "-c", "payload env; payload cwd; payload hostname"],
                     env=["COCOON_TEST=yes it works"], cwd="/tmp", hostname="box-7")
    r = run_fg(env, "envcwd", b)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert "COCOON_TEST=yes it works" in out
    assert "/tmp" in out
    assert "box-7" in out
    env.run("delete", "envcwd", check=True)


def test_create_start_state_kill_delete(env):
    b = write_bundle(env.tmp / "b", ["payload", "counter", "100"])
    pidfile = env.tmp / "pid"
    rc, out, err = env.create("c1", b, "--pid-file", str(pidfile))
    assert rc == 0, err.read_text()
    st = env.state("c1")
    assert st["status"] == "created"
    shim = int(pidfile.read_text())
    assert st["pid"] == shim and os.path.exists(f"/proc/{shim}")
    time.sleep(1)
    assert lines(out) == [], "the process ran before start"

    env.run("start", "c1", check=True)
    assert env.state("c1")["status"] == "running"
    assert wait_for(lambda: len(lines(out)) >= 3)

    r = env.run("start", "c1")
    assert r.returncode != 0 and "not created" in r.stderr

    env.run("kill", "c1", "TERM", check=True)
    assert wait_for(lambda: env.state("c1")["status"] == "stopped")
    assert lines(out)[-1] == "counter: terminated"
    assert wait_for(lambda: not os.path.exists(f"/proc/{shim}") or
                    open(f"/proc/{shim}/stat").read().split(")")[1].split()[0] == "Z")
    r = env.run("pause", "c1")
    assert r.returncode != 0 and "stopped" in r.stderr
    env.run("delete", "c1", check=True)
    assert_no_trace(env, "c1")


def test_pause_resume_freezes_the_counter(env):
    b = write_bundle(env.tmp / "b", ["payload", "counter", "100"])
    rc, out, err = env.create("p1", b)
    assert rc == 0, err.read_text()
    env.run("start", "p1", check=True)
    assert wait_for(lambda: len(lines(out)) >= 3)
    env.run("pause", "p1", check=True)
    assert env.state("p1")["status"] == "paused"
    time.sleep(0.5)
    frozen = len(lines(out))
    time.sleep(1.5)
    assert len(lines(out)) == frozen, "the counter advanced while paused"
    r = env.run("pause", "p1")
    assert r.returncode != 0 and "paused" in r.stderr
    env.run("resume", "p1", check=True)
    assert env.state("p1")["status"] == "running"
    assert wait_for(lambda: len(lines(out)) >= frozen + 3), "the counter did not resume"
    numbers = [int(x) for x in lines(out)]
    assert numbers == list(range(len(numbers))), "the counter skipped or reset"
    r = env.run("delete", "p1")
    assert r.returncode != 0 and "--force" in r.stderr
    env.run("delete", "--force", "p1", check=True)
    assert_no_trace(env, "p1")


def test_exec_ps_and_list(env):
    b = write_bundle(env.tmp / "b", ["payload", "counter", "200"])
    rc, out, err = env.create("x1", b)
    assert rc == 0, err.read_text()
    env.run("start", "x1", check=True)
    r = env.run("exec", "x1", "payload", "echo", "exec", "works")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "exec works\n"
    r = env.run("exec", "x1", "payload", "exit", "7")
    assert r.returncode == 7
    r = env.run("exec", "--env", "EXTRA=1", "--cwd", "/bin", "x1", "sh", "-c", "echo $EXTRA; payload cwd")
    assert r.stdout.split() == ["1", "/bin"], r.stdout + r.stderr
    p = subprocess.run([str(COCOON), "--root", str(env.root), "--config", str(env.config),
                        "exec", "x1", "payload", "cat"], input="through stdin\n",
                       capture_output=True, text=True, timeout=60)
    assert p.stdout == "through stdin\n", p.stderr
    r = env.run("ps", "--format", "json", "x1")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)) >= 1
    r = env.run("list", "--format", "json")
    listed = {c["id"]: c["status"] for c in json.loads(r.stdout)}
    assert listed == {"x1": "running"}
    r = env.run("list")
    assert re.search(r"^x1\s+\d+\s+running", r.stdout, re.M)
    r = env.run("exec", "x1", "no-such-binary")
    assert r.returncode != 0 and "no-such-binary" in r.stderr
    env.run("delete", "--force", "x1", check=True)
    assert_no_trace(env, "x1")


def test_short_lived_exec_reaped_before_its_start_is_read(env):
    # A process that exits at once can be reaped by the agent before the
    # agent reads the EOF that says it exec'd; that is still a start.
    # After a pause/resume this raced in about 4 of 10 detached execs.
    b = write_bundle(env.tmp / "b", ["payload", "counter", "100"])
    rc, out, err = env.create("q1", b)
    assert rc == 0, err.read_text()
    env.run("start", "q1", check=True)
    failures = []
    for i in range(15):
        env.run("pause", "q1", check=True)
        env.run("resume", "q1", check=True)
        r = env.run("exec", "--detach", "--pid-file", str(env.tmp / f"e{i}.pid"), "q1",
                    "payload", "echo", "hi")
        if r.returncode != 0:
            failures.append(r.stderr.strip())
    assert failures == [], failures
    env.run("delete", "--force", "q1", check=True)
    assert_no_trace(env, "q1")


def test_four_containers_at_once(env):
    ids = [f"many{i}" for i in range(4)]
    results = {}

    def one(cid):
        b = write_bundle(env.tmp / cid, ["payload", "echo", f"I am {cid}"])
        results[cid] = run_fg(env, cid, b, timeout=300)

    threads = [threading.Thread(target=one, args=(c,)) for c in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for cid in ids:
        assert results[cid].returncode == 0, results[cid].stderr
        assert results[cid].stdout == f"I am {cid}\n"
        env.run("delete", cid, check=True)
    assert qemu_pids(str(env.tmp)) == []


# ---- bad input: a clear error, a non-zero exit, nothing left behind ---------

def expect_create_error(env, cid, bundle, needle):
    rc, out, err = env.create(cid, bundle)
    text = err.read_text()
    assert rc != 0, f"create {cid} succeeded"
    assert needle in text, text
    assert not (env.root / cid).exists()
    assert qemu_pids(str(env.tmp)) == []
    assert pids_mentioning(str(env.root / cid)) == []
    return text


def test_malformed_config_names_the_field(env):
    b = write_bundle(env.tmp / "b", ["payload", "echo"])
    spec = json.loads(b.config.read_text())
    spec["process"]["args"] = "payload echo"
    b.config.write_text(json.dumps(spec))
    expect_create_error(env, "bad1", b, "process.args: expected array")
    spec["process"]["args"] = ["payload"]
    spec["process"]["cwd"] = "relative"
    b.config.write_text(json.dumps(spec))
    expect_create_error(env, "bad2", b, "process.cwd 'relative' must be absolute")
    b.config.write_text("{ not json")
    expect_create_error(env, "bad3", b, "not valid JSON")


def test_missing_rootfs_and_missing_bundle(env):
    b = write_bundle(env.tmp / "b", ["payload", "echo"])
    spec = json.loads(b.config.read_text())
    spec["root"]["path"] = "no-such-rootfs"
    b.config.write_text(json.dumps(spec))
    expect_create_error(env, "nr", b, "no-such-rootfs")

    class Missing:
        path = env.tmp / "nowhere"
    expect_create_error(env, "nb", Missing, "nowhere")


@pytest.mark.parametrize("cid,needle", [
    ("a/b", "contains '/'"),
    ("..", "must start with a letter or digit"),
    ("x..y", "contains '..'"),
    ("a" * 65, "the limit is 64"),
])
def test_bad_ids(env, cid, needle):
    b = write_bundle(env.tmp / "b", ["payload", "echo"])
    rc, out, err = env.create(cid, b)
    assert rc != 0 and needle in err.read_text()
    assert not env.root.exists() or list(env.root.iterdir()) == []


def test_duplicate_id(env):
    b = write_bundle(env.tmp / "b", ["payload", "counter"])
    rc, _, err = env.create("dup", b)
    assert rc == 0, err.read_text()
    rc, _, err2 = env.create("dup", b)
    assert rc != 0 and "container dup already exists" in err2.read_text()
    assert env.state("dup")["status"] == "created", "the original was harmed"
    env.run("delete", "dup", check=True)
    assert_no_trace(env, "dup")


def test_unknown_signal_and_unknown_container(env):
    b = write_bundle(env.tmp / "b", ["payload", "counter"])
    rc, _, err = env.create("sig1", b)
    assert rc == 0, err.read_text()
    env.run("start", "sig1", check=True)
    r = env.run("kill", "sig1", "SIGNOPE")
    assert r.returncode != 0 and "unknown signal 'SIGNOPE'" in r.stderr
    assert env.state("sig1")["status"] == "running"
    r = env.run("state", "ghost")
    assert r.returncode != 0 and "container ghost does not exist" in r.stderr
    env.run("delete", "--force", "sig1", check=True)
    assert_no_trace(env, "sig1")


def test_qemu_missing_from_path(env):
    env.write_config("", vm="qemu = \"qemu-not-installed\"\n")
    b = write_bundle(env.tmp / "b", ["payload", "echo"])
    expect_create_error(env, "noqemu", b, "qemu-not-installed not found in PATH")


def test_vm_never_ready_times_out(env):
    # Booted: a VM from a template is ready in ~0.1 s (docs/performance.md).
    env.write_config("", vm="boot_timeout_ms = 500\ntemplate = false\n")
    b = write_bundle(env.tmp / "b", ["payload", "echo"])
    expect_create_error(env, "slow", b, "agent not ready after 500 ms")


def test_json_log_for_engines(env):
    log = env.tmp / "log.json"
    r = subprocess.run([str(COCOON), "--root", str(env.root), "--log", str(log),
                        "--log-format", "json", "state", "ghost"], capture_output=True, text=True)
    assert r.returncode != 0
    last = json.loads(log.read_text().splitlines()[-1])
    assert last["level"] == "error" and "ghost" in last["msg"]


def test_help_and_features(env):
    for cmd in ("create", "start", "run", "state", "list", "kill", "pause", "resume", "exec",
                "ps", "delete", "spec", "features", "check", "checkpoint", "restore", "update"):
        r = subprocess.run([str(COCOON), cmd, "--help"], capture_output=True, text=True)
        assert r.returncode == 0 and "Usage: cocoon" in r.stdout, cmd
    r = subprocess.run([str(COCOON), "features"], capture_output=True, text=True)
    assert json.loads(r.stdout)["linux"]["namespaces"]


def test_terminal_through_console_socket(env):
    """process.terminal: the pty master reaches --console-socket, as with runc."""
    import array
    import socket
    b = write_bundle(env.tmp / "b", ["sh", "-c", "payload echo on a tty; test -t 1 && echo is-a-tty"],
                     terminal=True)
    sock_path = str(env.tmp / "console.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock_path)
    srv.listen(1)
    got = {}

    def receive():
        conn, _ = srv.accept()
        fds = array.array("i")
        msg, anc, _, _ = conn.recvmsg(16, socket.CMSG_LEN(fds.itemsize))
        for level, typ, data in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                fds.frombytes(data[:fds.itemsize])
        got["fd"] = fds[0]

    t = threading.Thread(target=receive)
    t.start()
    rc, out, err = env.create("tty1", b, "--console-socket", sock_path)
    t.join(timeout=30)
    assert rc == 0, err.read_text()
    master = got["fd"]
    env.run("start", "tty1", check=True)
    data = b""
    deadline = time.time() + 30
    while b"is-a-tty" not in data and time.time() < deadline:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    os.close(master)
    assert b"on a tty" in data and b"is-a-tty" in data, data
    assert wait_for(lambda: env.state("tty1")["status"] == "stopped")
    env.run("delete", "tty1", check=True)
    assert_no_trace(env, "tty1")


def test_bind_file_readonly_root_and_rlimits(env):
    host_file = env.tmp / "greeting"
    host_file.write_text("bound from the host\n")

    def extra(spec):
        spec["mounts"].append({"destination": "/etc/greeting", "type": "bind",
                               "source": str(host_file), "options": ["rbind", "ro"]})
        spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 321, "soft": 123}]

    b = write_bundle(env.tmp / "b", ["sh", "-c",
                                     "cat /etc/greeting; ulimit -n; touch /x 2>/dev/null || echo ro-root"],
                     readonly=True, extra=extra)
    r = run_fg(env, "bind1", b)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["bound from the host", "123", "ro-root"]
    env.run("delete", "bind1", check=True)


def test_unsupported_fields_are_named(env):
    def extra(spec):
        spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW"}
        spec["mounts"].append({"destination": "/data", "type": "xfs", "source": "/dev/sdz9"})

    b = write_bundle(env.tmp / "b", ["payload", "echo"], extra=extra)
    text = expect_create_error(env, "unsup", b, "filesystem type 'xfs' lives on a block device")
    assert "mounts[6] (/data)" in text
    # Applied in the guest now (docs/confinement.md, docs/lifecycle.md's
    # kernel settings): no warning. A field that is not still gets one.
    def applied_and_not(spec):
        spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW"}
        spec["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
        spec["linux"].setdefault("resources", {})["memory"] = {"reservation": 32 << 20}
    b = write_bundle(env.tmp / "b2", ["payload", "echo", "ok"], extra=applied_and_not)
    r = run_fg(env, "seccomp", b)
    assert r.returncode == 0 and r.stdout == "ok\n"
    assert "seccomp" not in r.stderr and "sysctl" not in r.stderr, r.stderr
    assert "linux.resources.memory.reservation is not applied inside the VM" in r.stderr, r.stderr
    env.run("delete", "seccomp", check=True)
    # An engine gives --log, and cocoon's stderr is the container's output
    # stream there (podman's conmon): the warning goes to the log only.
    log = env.tmp / "log.json"
    r = subprocess.run([str(COCOON), "--root", str(env.root), "--config", str(env.config), "--log", str(log),
                        "--log-format", "json", "run", "--bundle", str(b.path), "seccomp2"],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and r.stdout == "ok\n" and r.stderr == "", r.stdout + r.stderr
    lines = [json.loads(l) for l in log.read_text().splitlines()]
    assert any(l["level"] == "warning" and "memory.reservation is not applied" in l["msg"]
               for l in lines), lines
    env.run("delete", "seccomp2", check=True)


def test_foreground_run_forwards_signals(env):
    b = write_bundle(env.tmp / "b", ["payload", "counter", "100"])
    proc = subprocess.Popen([str(COCOON), "--root", str(env.root), "--config", str(env.config),
                             "run", "--bundle", str(b.path), "fg"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: (env.root / "fg" / "state.json").exists()
                        and env.state("fg")["status"] == "running", timeout=60)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + 15
        assert proc.stdout.read().decode().splitlines()[-1] == "counter: terminated"
    finally:
        proc.kill()
    env.run("delete", "fg", check=True)
    assert_no_trace(env, "fg")


def test_update_bad_input_is_refused_clearly(env, tmp_path):
    # update applies what the VM allows (test_resources.py); what it cannot
    # read is refused by name, before any container is looked up.
    bad = tmp_path / "resources.json"
    bad.write_text("[1, 2]")
    r = env.run("update", "--resources", str(bad), "anything")
    assert r.returncode != 0 and "--resources" in r.stderr and "not a JSON object" in r.stderr, r.stderr
    r = env.run("update", "--resources", str(tmp_path / "missing.json"), "anything")
    assert r.returncode != 0 and "missing.json" in r.stderr, r.stderr
    r = env.run("update", "--pids-limit", "10", "nosuch")
    assert r.returncode != 0 and "nosuch" in r.stderr, r.stderr
