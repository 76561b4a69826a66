"""Terminals in tests: an engine's --console-socket (the test holds the pty
master it receives), and a program run on a terminal of its own, as a user
at a terminal runs `ctr run -t` or `podman exec -it` (issue 17)."""
import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time

from conftest import COCOON, qemu_pids, wait_for


def set_size(fd, rows, cols):
    """TIOCSWINSZ on a pty's master, as an engine resizes its terminal
    (runc's console.Resize); the kernel sends SIGWINCH to the foreground
    process group on the slave."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def get_size(fd):
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    return rows, cols


def read_until(fd, seen, want, timeout):
    """Reads fd into seen (a bytearray) until the regex want matches it."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = re.search(want, seen)
        if m:
            return m
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                return None
            if not chunk:
                return None
            seen += chunk
    return re.search(want, seen)


class Sizer:
    """Asks the shell on a terminal for its size: `stty size` in the
    container. Each probe has its own marker, so an earlier answer (or the
    echo of the typed line) never counts. The answer is "ROWSxCOLS", "0x0"
    for a terminal with no size yet (busybox's stty fails on one, with
    whatever errno was left: "Inappropriate ioctl for device"), "no terminal"
    when the shell's stdin is none, or None when nothing came back."""

    n = 0

    def alive(self):
        """False once the program on the terminal has ended: a probe typed
        then would fill the pty's buffer and block."""
        return True

    def size(self, fd, seen, timeout=60):
        if not self.alive():
            return None
        Sizer.n += 1
        tag = f"S{Sizer.n}"
        os.write(fd, (f"if [ -t 0 ]; then set -- $(busybox stty size 2>/dev/null); "
                      f"else set -- no tty; fi; echo {tag}=$1x$2=\n").encode())
        m = read_until(fd, seen, rf"{tag}=(\d+x\d+|x|noxtty)=".encode(), timeout)
        if not m:
            return None
        got = m.group(1).decode()
        return {"x": "0x0", "noxtty": "no terminal"}.get(got, got)

    def wait_size(self, fd, seen, want, timeout=30):
        """Probes until the shell sees want ("ROWSxCOLS"); the last answer.
        An engine may size the terminal only after the process started
        (podman exec, ctr): the first answers can be "0x0"."""
        deadline = time.time() + timeout
        got = self.size(fd, seen)
        early = []
        while got not in (want, "no terminal") and self.alive() and time.time() < deadline:
            early.append(got)
            time.sleep(0.3)
            got = self.size(fd, seen)
        if early:  # shown with -s, or with a failure
            print(f"stty size before {want}: {early}")
        return got


class Console:
    """An engine's --console-socket: receives the pty master once."""

    def __init__(self, path):
        import socket
        import threading
        self.path = str(path)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(self.path)
        self.srv.listen(1)
        self.fd = None
        self.seen = b""
        self.thread = threading.Thread(target=self._receive, daemon=True)
        self.thread.start()

    def _receive(self):
        import array
        import socket
        self.srv.settimeout(120)
        try:
            conn, _ = self.srv.accept()
        except OSError:
            return
        fds = array.array("i")
        _, anc, _, _ = conn.recvmsg(16, socket.CMSG_LEN(fds.itemsize))
        for level, typ, data in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                fds.frombytes(data[:fds.itemsize])
        conn.close()
        self.fd = fds[0] if fds else None

    def master(self):
        self.thread.join(timeout=130)
        self.srv.close()
        assert self.fd is not None, f"no pty master arrived on {self.path}"
        return self.fd

    def type_and_wait(self, text, want, timeout=60):
        """Types a line on the terminal, reads until `want` shows up."""
        import select
        fd = self.master()
        os.write(fd, text.encode())
        deadline = time.time() + timeout
        while want.encode() not in self.seen and time.time() < deadline:
            ready, _, _ = select.select([fd], [], [], 1)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                self.seen += chunk
        return self.seen

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def restore_tty(env, cid, path, bundle, *flags):
    """`cocoon restore --detach`; its stdio in files, which the shim keeps."""
    out, err = env.tmp / f"{cid}.rt.out", env.tmp / f"{cid}.rt.err"
    with open(out, "wb") as o, open(err, "wb") as e:
        r = subprocess.run([str(COCOON), "--root", str(env.root), "--config", str(env.config), "restore",
                            "--image-path", str(path), "--bundle", str(bundle.path), "--detach", *flags, cid],
                           stdin=subprocess.DEVNULL, stdout=o, stderr=e, timeout=600)
    return subprocess.CompletedProcess(r.args, r.returncode, out.read_text(), err.read_text())


def tty_shell(env, bundle):
    """Container "tty": a shell on a pty whose master comes to c1.sock, with
    a variable set (X=kept-42) to find again after a restore. Returns the
    console."""
    con = Console(env.tmp / "c1.sock")
    rc, _, err = env.create("tty", bundle, "--console-socket", con.path)
    assert rc == 0, err.read_text()
    env.run("start", "tty", check=True)
    seen = con.type_and_wait("X=kept-$((6*7)); echo ready-$X-$$\n", "ready-kept-42-1")
    assert b"ready-kept-42-1" in seen, seen
    return con


def tty_restore_needs_console_socket(env, path, bundle):
    """A terminal's restore without --console-socket: refused before
    anything starts."""
    r = restore_tty(env, "tty", path, bundle)
    assert r.returncode != 0 and "--console-socket" in r.stderr, r.stderr
    assert not (env.root / "tty").exists() and qemu_pids(str(env.tmp)) == []


def tty_shell_carries_on(env, path, bundle, ps):
    """tty_shell's checkpoint at PATH restored with a new console socket
    (c2.sock): the same shell (its variable, pid 1, stdin a terminal)
    answers on the new pty, and ^C reaches its foreground job (PS lists the
    container's processes). The shell then exits. Returns the console."""
    con = Console(env.tmp / "c2.sock")
    r = restore_tty(env, "tty", path, bundle, "--console-socket", con.path)
    assert r.returncode == 0, r.stderr
    seen = con.type_and_wait("echo after-$X-$$-$(test -t 0 && echo tty)\n", "after-kept-42-1-tty")
    assert b"after-kept-42-1-tty" in seen, seen
    # Input reaches the line discipline: ^C interrupts the foreground job.
    con.type_and_wait("sleep 1000\n", "sleep 1000")
    assert wait_for(lambda: "sleep 1000" in ps().stdout), (ps(), con.seen)
    seen = con.type_and_wait("\x03echo status-$?\n", "status-130")
    assert b"status-130" in seen, seen
    os.write(con.master(), b"exit 7\n")
    assert wait_for(lambda: env.state("tty")["status"] == "stopped")
    return con


class Term(Sizer):
    """A program on a pty of its own, that pty its controlling terminal (so
    that it gets SIGWINCH when the test resizes it), as at a user's terminal."""

    def __init__(self, argv, rows, cols, env=None):
        self.master, slave = pty.openpty()
        set_size(self.master, rows, cols)

        def controlling_tty():
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     preexec_fn=controlling_tty, close_fds=True)
        os.close(slave)
        self.seen = bytearray()

    def type_and_wait(self, text, want, timeout=60):
        os.write(self.master, text.encode())
        return read_until(self.master, self.seen, want.encode(), timeout)

    def alive(self):
        return self.proc.poll() is None

    def probe(self, timeout=60):
        return self.size(self.master, self.seen, timeout)

    def wait_for_size(self, want, timeout=30):
        return self.wait_size(self.master, self.seen, want, timeout)

    def resize(self, rows, cols):
        set_size(self.master, rows, cols)

    def wait(self, timeout=60):
        """Exit status, reading the output meanwhile (a full pty blocks it)."""
        deadline = time.time() + timeout
        while self.proc.poll() is None and time.time() < deadline:
            read_until(self.master, self.seen, b"\x00never\x00", 0.5)
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.master >= 0:
            os.close(self.master)
            self.master = -1
