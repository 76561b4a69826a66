"""The hostile-guest tier's harness (test_hostile.py runs the cases): the
real cocoon binary (argv[1]) and the fake VMM that attacks it (argv[2],
tests/helpers/hostile-vmm.c), a state root with a canary beside it (Env),
and the case decorator, which runs a case as its module is imported and
keeps its result for the TAP report."""
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

COCOON, VMM = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
ONLY = sys.argv[3:]
SECRET = b"the host's secret\n"
results = []


def vmsnap_fakes(d):
    """[vm] lines for a host that passes the whole-VM capability check
    (vmsnap_require), which a restore makes before it reads the state: a
    QEMU that says 9.2.0 and offers mapped-ram, a virtiofsd with
    --migration-mode; run as anything else, the QEMU is the hostile VMM."""
    os.makedirs(d)
    qemu, vfsd = os.path.join(d, "qemu"), os.path.join(d, "virtiofsd")
    with open(qemu, "w") as f:
        f.write(f"""#!/bin/sh
case "$1" in --version) echo "QEMU emulator version 9.2.0"; exit 0;; esac
case " $* " in *" -M none "*) echo '{{"return": [{{"capability": "mapped-ram", "state": false}}]}}'; exit 0;; esac
exec {VMM} "$@"
""")
    with open(vfsd, "w") as f:
        f.write('#!/bin/sh\ncase "$1" in --version) echo "virtiofsd backend 1.13.2";; '
                '*) echo "  --migration-mode <MIGRATION_MODE>";; esac\n')
    for p in (qemu, vfsd):
        os.chmod(p, 0o755)
    return f'snapshot_qemu = "{qemu}"\nsnapshot_virtiofsd = "{vfsd}"\n'


class Env:
    def __init__(self, mode, limits="", vm="", whole_vm=False):
        self.mode = mode
        self.tmp = tempfile.mkdtemp(prefix="cocoon-hostile-")
        if whole_vm:
            vm += "\n" + vmsnap_fakes(os.path.join(self.tmp, "vmsnap-bin"))
        self.root = os.path.join(self.tmp, "root")
        self.canary = os.path.join(self.tmp, "canary", "victim")
        os.makedirs(self.canary)
        self.secret = os.path.join(self.canary, "secret")
        with open(self.secret, "wb") as f:
            f.write(SECRET)
        os.chmod(self.secret, 0o644)
        self.log = os.path.join(self.tmp, "vmm.log")
        self.config = os.path.join(self.tmp, "config.toml")
        self.vm = vm
        self.set_limits(limits)
        self.bundle = os.path.join(self.tmp, "bundle")
        os.makedirs(os.path.join(self.bundle, "rootfs"))
        with open(os.path.join(self.bundle, "config.json"), "w") as f:
            json.dump({"ociVersion": "1.0.2", "root": {"path": "rootfs"},
                       "process": {"terminal": False, "args": ["sh"], "cwd": "/",
                                   "env": ["PATH=/bin"]},
                       "linux": {"namespaces": [{"type": "network"}, {"type": "pid"}, {"type": "mount"}]}}, f)

    def set_limits(self, limits):
        """Writes the config with these [limits] (TOML lines) for the
        commands from now on: a case's setup need not run under the limit
        it tests."""
        with open(self.config + ".new", "w") as f:
            f.write(f"""[runtime]
host_checkpoint_dir = "{self.tmp}/ckpts"
[vm]
kernel = "/dev/null"
initrd = "/dev/null"
qemu = "{VMM}"
accel = "tcg"
boot_timeout_ms = 10000
{self.vm}
{"[limits]" if limits else ""}
{limits}
""")
        os.rename(self.config + ".new", self.config)

    def env(self, mode=None):
        e = dict(os.environ)
        e.update(COCOON_CONFIG=self.config, HOSTILE_MODE=mode or self.mode,
                 HOSTILE_CANARY=self.canary, HOSTILE_LOG=self.log)
        return e

    def cocoon(self, *args, timeout=30, mode=None, stdout=None, pass_fds=()):
        """Runs cocoon; stdio goes to files, since a shim keeps what it inherits."""
        out = stdout or open(os.path.join(self.tmp, "out.txt"), "wb")
        err_path = os.path.join(self.tmp, "err.txt")
        with open(err_path, "wb") as err:
            t0 = time.time()
            try:
                p = subprocess.run([COCOON, "--root", self.root, *args], stdout=out, stderr=err,
                                   env=self.env(mode), timeout=timeout, pass_fds=pass_fds)
                rc = p.returncode
            except subprocess.TimeoutExpired:
                rc = None
        with open(err_path, "rb") as f:
            return rc, f.read(), time.time() - t0

    def create(self, cid="c1", **kw):
        rc, err, _ = self.cocoon("create", "--bundle", self.bundle, cid, **kw)
        if rc != 0:
            raise RuntimeError(f"create failed: {err!r}")
        rc, err, _ = self.cocoon("start", cid)
        if rc != 0:
            raise RuntimeError(f"start failed: {err!r}")

    def vmm_pids(self):
        try:
            with open(self.log) as f:
                return [int(line.split()[2]) for line in f if line.startswith("vmm pid ")]
        except FileNotFoundError:
            return []

    def log_text(self):
        try:
            with open(self.log) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def canary_intact(self):
        try:
            st = os.stat(self.secret)
            with open(self.secret, "rb") as f:
                return f.read() == SECRET and stat.S_IMODE(st.st_mode) == 0o644 and st.st_uid == os.geteuid()
        except OSError:
            return False

    def assert_secret_not_copied(self):
        """No regular file under the case's directory but the canary itself
        holds the host's secret (a log the guest made a link or a FIFO was
        not followed into a copy)."""
        for dirpath, _, files in os.walk(self.tmp):
            for n in files:
                p = os.path.join(dirpath, n)
                if p != self.secret and not os.path.islink(p) and os.path.isfile(p):
                    with open(p, "rb") as f:
                        assert SECRET not in f.read(), f"the canary was copied to {p}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for cid in os.listdir(self.root) if os.path.isdir(self.root) else []:
            self.cocoon("delete", "--force", cid, timeout=20)
        for pid in self.vmm_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def case(fn):
    name = fn.__name__
    if ONLY and name not in ONLY:
        return fn
    try:
        detail = fn()
        results.append((True, name, detail or ""))
    except AssertionError as e:
        results.append((False, name, str(e)))
    except Exception as e:  # noqa: BLE001 - any failure is a failed case
        results.append((False, name, f"{type(e).__name__}: {e}"))
    return fn


def refused_checkpoint(env, needle, *extra, bound=20):
    env.create()
    out = os.path.join(env.tmp, "out")
    rc, err, took = env.cocoon("checkpoint", "--image-path", out, *extra, "c1", timeout=60)
    assert rc is not None, "checkpoint hung (> 60 s)"
    assert rc != 0, "a hostile dump was published"
    assert needle.encode() in err, f"error does not name '{needle}': {err!r}"
    assert took < bound, f"took {took:.1f} s, bound {bound} s"
    assert env.canary_intact(), "the canary outside the state root was touched"
    assert not os.path.exists(out), "something was left at --image-path"
    state_out = open(os.path.join(env.tmp, "state.json"), "wb")
    rc, serr, _ = env.cocoon("state", "c1", stdout=state_out)
    with open(os.path.join(env.tmp, "state.json")) as f:
        status = json.load(f)["status"] if rc == 0 else serr
    assert status == "running", f"the container is {status!r} after the refusal"
    return err.decode(errors="replace").strip()


def good_images(env):
    env.create("src")
    out = os.path.join(env.tmp, "good")
    rc, err, _ = env.cocoon("checkpoint", "--image-path", out, "--leave-running", "src", mode="good")
    assert rc == 0, err
    return out
