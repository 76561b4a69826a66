"""The foundation: a VM boots, its agent answers, CRIU works inside it, and
bad input fails clearly without leaving anything behind."""
import os
import re
import subprocess

from conftest import AGENT, BUILD, REPO, pids_mentioning, qemu_pids


def assert_clean(env):
    assert qemu_pids(str(env.tmp)) == [], "a qemu process outlived the command"
    if env.root.exists():
        left = [p.name for p in env.root.iterdir()]
        assert left == [], f"state left behind in {env.root}: {left}"


def test_check_boots_and_reports_ready(env):
    r = env.run("check")
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    assert re.search(r"accel\s+(kvm|tcg)", out)
    boot = re.search(r"boot\s+(\d+) ms to agent ready", out)
    assert boot and int(boot.group(1)) > 0
    assert re.search(r"guest kernel\s+6\.1\.\d+", out)
    assert re.search(r"criu\s+3\.17\.\d+ at /usr/sbin/criu", out)
    assert re.search(r"criu check\s+ok$", out, re.M)
    assert re.search(r"shared dir\s+ok \(9p, read and write\)", out)
    assert out.rstrip().endswith("result: ready")
    assert_clean(env)


def test_check_with_virtiofs_reports_the_share_and_leaves_no_virtiofsd(env):
    env.write_config("", vm='shared_fs = "virtiofs"\n')
    r = env.run("check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"shared dir\s+ok \(virtiofs, read and write\)", r.stdout), r.stdout
    assert [p for p in pids_mentioning(str(env.tmp)) if b"virtiofsd" in open(f"/proc/{p}/cmdline", "rb").read()] == []
    assert_clean(env)


def test_unknown_shared_fs_is_refused(env):
    env.write_config("", vm='shared_fs = "nfs"\n')
    r = env.run("check")
    assert r.returncode != 0 and "shared_fs" in r.stderr and "nfs" in r.stderr, r.stderr
    assert_clean(env)


def test_agent_survives_garbage_frames_in_a_real_vm(env):
    """Garbage, oversized and undecodable frames and restores outside the
    contract get error replies, and the
    agent (PID 1 in a real VM) keeps answering."""
    helper = BUILD / "tests" / "unit" / "agent-frames"
    r = subprocess.run([str(helper), "--config", str(env.config), str(env.tmp / "vm")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("\nok ") == 12, r.stdout
    assert "not ok" not in r.stdout
    assert qemu_pids(str(env.tmp)) == []


def test_misspelled_key_is_refused_with_line(env):
    env.write_config("[runtime]\nenable_checkpoint = true\nenable_chekpoint = false\n")
    r = env.run("check")
    assert r.returncode != 0
    assert f"{env.config}:3: unknown key 'runtime.enable_chekpoint'" in r.stderr
    assert_clean(env)


def test_wrong_type_and_syntax_errors(env):
    env.write_config("", vm="memory_mib = \"big\"\n")
    r = env.run("check")
    assert r.returncode != 0
    assert f"{env.config}:2: vm.memory_mib: expected an integer" in r.stderr

    env.write_config("[vm\n")
    r = env.run("check")
    assert r.returncode != 0
    assert f"{env.config}:1: malformed section header" in r.stderr

    r = subprocess.run([str(BUILD / "cocoon"), "--config", str(env.tmp / "nope.toml"), "check"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "nope.toml" in r.stderr
    assert_clean(env)


def test_config_from_environment_variable(env):
    env.write_config("[vm]\naccel = \"warp\"\n")
    r = subprocess.run([str(BUILD / "cocoon"), "--root", str(env.root), "check"],
                       capture_output=True, text=True,
                       env={**os.environ, "COCOON_CONFIG": str(env.config)})
    assert r.returncode != 0
    assert "vm.accel: \"warp\" is not one of \"auto\", \"kvm\", \"tcg\"" in r.stderr


def test_missing_qemu_is_named(env):
    env.write_config("", vm="qemu = \"qemu-does-not-exist\"\naccel = \"tcg\"\n")
    r = env.run("check")
    assert r.returncode != 0
    assert "qemu-does-not-exist not found in PATH" in r.stdout + r.stderr
    assert_clean(env)


def test_vm_that_never_gets_ready_times_out_and_cleans_up(env):
    # Booted: a VM from a template is ready in ~0.1 s (docs/performance.md).
    env.write_config("", vm="boot_timeout_ms = 500\naccel = \"tcg\"\ntemplate = false\n")
    r = env.run("check")
    assert r.returncode != 0
    assert "agent not ready after 500 ms" in r.stdout
    assert_clean(env)


def test_missing_image_names_the_file(env):
    env.write_config("", vm="kernel = \"/nonexistent/vmlinux\"\n")
    r = env.run("check")
    assert r.returncode != 0
    assert "/nonexistent/vmlinux" in r.stdout + r.stderr
    assert "cocoon image build" in r.stdout + r.stderr
    assert_clean(env)


def test_image_build_is_cached(env):
    r = subprocess.run([str(BUILD / "cocoon"), "image", "build"], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "up to date" in r.stdout
    assert re.search(r"initrd \d", r.stdout)


def test_kernel_config_fragment_is_enforced(env):
    """A kernel that lacks a required option fails the build, naming it."""
    fragment = env.tmp / "needs.conf"
    fragment.write_text("CONFIG_CHECKPOINT_RESTORE=y\nCONFIG_COCOON_DOES_NOT_EXIST=y\n")
    r = subprocess.run(["sh", str(REPO / "guest/image/mkimage.sh"), "--agent", str(AGENT),
                        "--output", str(env.tmp / "img"), "--config-fragment", str(fragment)],
                       capture_output=True, text=True, timeout=600,
                       env={**os.environ, "COCOON_DEB_CACHE": "/var/cache/cocoon/debs"})
    assert r.returncode != 0
    assert "lacks CONFIG_COCOON_DOES_NOT_EXIST" in r.stderr
    assert "CHECKPOINT_RESTORE" not in r.stderr
    assert not (env.tmp / "img" / "vmlinux").exists()
