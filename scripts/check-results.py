#!/usr/bin/env python3
"""make lint: no result of a call that can fail is dropped without a word.

Under src/, a call whose result is not used must say so with a (void) cast,
and a comment when the reason is not plain: a cast marks a result that is
ignored on purpose (best-effort clean-up, a call that cannot fail with
these arguments), so that an ignored result without one is a finding.
GCC cannot check this (a (void) cast does not silence warn_unused_result),
so clang-tidy's bugprone-unused-return-value does (Debian's clang-tidy),
on every C file under src/ in the build's compile_commands.json.

Checked:
  - cocoon's own functions: every function a header under src/ declares
    returning int, ssize_t, long or bool (found here, so new ones are
    checked too), except error_set/error_setx/error_wrap, whose result is
    only the code for `return error_set(...)`;
  - the system calls and libc functions below, whose failure leaves state
    other than the caller expects: data written, descriptors (fcntl's
    flags among them), mounts, names, identity, capabilities, signals,
    sockets, the environment a child inherits.
Left out on purpose: close, unlink, rmdir, mkdir, kill, waitpid, munmap
and fflush/fprintf (clean-up and reporting paths, where a failure has no
better answer than the one already taken; a mkdir that fails shows in the
open or mount of the path next), snprintf (a cut path is the caller's to
check: path_fmt in fdio.h), and calls that cannot fail with valid
arguments (sigemptyset, sigaddset).

clang-tidy 14 does not look at the statement right after a label
(`fail: f();`), so those are matched here by their text.

Usage: check-results.py BUILD_DIR. Exit 1 with each finding (file:line and
the call) when there is one; exit 1 too when clang-tidy did not run.
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys

LIBC = """
write pwrite read pread readv writev ftruncate fallocate posix_fallocate
fchmod fchmodat chmod fchown fchownat chown lchown chdir fchdir chroot
pivot_root setsid setuid setgid setresuid setresgid setgroups dup dup2 dup3
pipe pipe2 mount umount umount2 move_mount rename renameat renameat2
symlink symlinkat link linkat mknod mkfifo fsync fdatasync syncfs setrlimit
prlimit prctl sethostname setdomainname setns unshare sigaction sigprocmask
pthread_sigmask setsockopt bind listen connect send sendmsg sendto fwrite
fread utimensat futimens truncate asprintf vasprintf timerfd_settime
epoll_ctl seccomp_load seccomp_rule_add capset mprotect setenv unsetenv fcntl
""".split()

NOT_CHECKED = {"error_set", "error_setx", "error_wrap"}

DECL = re.compile(
    r"^(?:static\s+inline\s+)?(?:int|ssize_t|long|long long|bool)\s+\*?"
    r"([a-z_][a-z0-9_]*)\s*\(",
    re.M,
)


def project_functions(root):
    names = set()
    for h in glob.glob(os.path.join(root, "src", "**", "*.h"), recursive=True):
        text = re.sub(r"/\*.*?\*/", "", open(h, encoding="utf-8").read(), flags=re.S)
        names.update(DECL.findall(text))
    return sorted(names - NOT_CHECKED)


LABEL_CALL = re.compile(r"^\s*[A-Za-z_]\w*:\s*\n\s*([A-Za-z_]\w*)\s*\(", re.M)


def after_labels(files, checked, root):
    """Calls of a checked function that are a label's statement, whose
    result is dropped: {(path, line, col): source line}."""
    found = {}
    for f in files:
        text = open(f, encoding="utf-8").read()
        for m in LABEL_CALL.finditer(text):
            if m.group(1) not in checked or m.group(1) in ("case", "default"):
                continue
            lineno = text.count("\n", 0, m.start(1)) + 1
            line = text.splitlines()[lineno - 1]
            found[(os.path.relpath(f, root), lineno, 0)] = line.strip()
    return found


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tidy = shutil.which("clang-tidy") or shutil.which("clang-tidy-14")
    if not tidy:
        print("check-results: clang-tidy is missing (scripts/setup-host.sh)", file=sys.stderr)
        return 1
    cdb = os.path.join(build, "compile_commands.json")
    if not os.path.exists(cdb):
        print(f"check-results: no {cdb}: build first", file=sys.stderr)
        return 1
    files = sorted(
        {
            os.path.normpath(os.path.join(e["directory"], e["file"]))
            for e in json.load(open(cdb, encoding="utf-8"))
            if os.path.normpath(os.path.join(e["directory"], e["file"])).startswith(
                os.path.join(root, "src") + os.sep
            )
        }
    )
    if not files:
        print(f"check-results: no file under src/ in {cdb}", file=sys.stderr)
        return 1
    names = LIBC + project_functions(root)
    checked = ";".join("::" + f for f in names)
    config = json.dumps(
        {
            "Checks": "-*,bugprone-unused-return-value",
            "CheckOptions": [
                {"key": "bugprone-unused-return-value.CheckedFunctions", "value": checked}
            ],
        }
    )
    run = subprocess.run(
        [tidy, "-p", build, "--quiet", "--extra-arg=-Wno-error", "--extra-arg=-Wno-unknown-warning-option",
            "--extra-arg=-Wno-format-nonliteral",
            "--config=" + config]
        + files,
        capture_output=True,
        text=True,
        check=False,
    )
    found = {}
    pat = re.compile(r"^(.*?):(\d+):(\d+): warning: .*\[bugprone-unused-return-value\]$")
    for line in run.stdout.splitlines():
        m = pat.match(line)
        if not m:
            continue
        path = os.path.relpath(os.path.normpath(m.group(1)), root)
        lineno = int(m.group(2))
        src = open(os.path.join(root, path), encoding="utf-8").read().splitlines()[lineno - 1]
        found[(path, lineno, int(m.group(3)))] = src.strip()
    found.update(after_labels(files, set(names), root))
    errors = [l for l in run.stderr.splitlines() if ": error:" in l]
    if errors or (run.returncode != 0 and not found):
        print("\n".join(errors) or run.stderr, file=sys.stderr)
        print("check-results: clang-tidy did not run cleanly (see above)", file=sys.stderr)
        return 1
    for (path, lineno, _), src in sorted(found.items()):
        print(f"{path}:{lineno}: result dropped: {src}")
    if found:
        print(
            f"check-results: {len(found)} result(s) dropped: use it, or cast to (void) "
            "with the reason when ignoring it is meant",
            file=sys.stderr,
        )
        return 1
    print(f"check-results: every checked result is used or (void) ({len(files)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
