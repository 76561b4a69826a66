"""make bench --quick still works: the harness runs end to end and records
every figure. No timing is asserted: performance is judged by make bench."""
import json
import subprocess

from conftest import REPO, qemu_pids


def test_bench_quick_runs(tmp_path):
    out = tmp_path / "results.json"
    r = subprocess.run(["/usr/bin/python3", str(REPO / "bench" / "bench.py"), "--quick", "--out", str(out)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads(out.read_text())
    size = res["sizes"]["16"]
    for key in ("floor_frozen", "lr_frozen", "lr_total", "seed_total", "exit_total", "restore_total",
                "restore_boot", "raw_restore_criu", "image_bytes"):
        assert size[key] and size[key]["median"] > 0, key
    assert res["boot"]["floor_ms"]["median"] > 0 and res["boot"]["agent_ready_ms"]["median"] > 0
    assert res["predump"]["final_frozen"]["median"] > 0
    assert set(res["ratios"]) >= {"frozen_vs_floor", "boot_vs_floor", "predump_vs_full"}
    assert "ratios at 16 MiB" in r.stdout
    # 9p and virtiofs side by side, for checkpoint and restore.
    vfs = res["virtiofs"]["16"]
    for key in ("lr_frozen", "lr_total", "exit_total", "restore_total", "restore_criu"):
        assert vfs[key] and vfs[key]["median"] > 0, key
    assert res["ratios"]["virtiofs_vs_9p"]["restore"] > 0
    assert "virtiofs / 9p" in r.stdout
    # VM templates beside the cold boot and restore (issue 18): a template
    # restore that fell back to a cold boot records nothing.
    assert res["boot"]["template_ready_ms"] and res["boot"]["template_ready_ms"]["median"] > 0
    for key in ("tmpl_restore_total", "tmpl_restore_boot", "tmpl_restore_criu"):
        assert size[key] and size[key]["median"] > 0, key
    assert res["templates"]["boot_vs_cold"] > 0 and res["templates"]["16"]["restore_vs_cold"] > 0
    assert "VM templates, side by side" in r.stdout
    # The host baseline (runc + trixie's CRIU, no VM) ran, or says why not.
    why = res["skipped"].get("host_runc_baseline")
    if why:
        assert f"skipped host_runc_baseline: {why}" in r.stdout
    else:
        for key in ("host_frozen", "host_total", "host_restore"):
            assert size[key] and size[key]["median"] > 0, key
    # Whole-VM checkpoints beside CRIU (issue 18), with the QEMU fetched by
    # scripts/fetch-vmsnap-vmm.sh, or the reason it could not be fetched.
    why = res["skipped"].get("vmsnap")
    if why:
        assert f"skipped vmsnap: {why}" in r.stdout
    else:
        for key in ("vm_lr_frozen", "vm_exit_frozen", "vm_exit_total", "vm_restore_total", "vm_image_bytes",
                    "vm_used_mib"):
            assert size[key] and size[key]["median"] > 0, key
        assert res["vmsnap_ratios"]["16"]["restore_vs_criu"] > 0
        # The same save compressed (snapshot_zstd_level 3) and restored.
        assert not size.get("vm_zstd_errors"), size.get("vm_zstd_errors")
        for key in ("vm_zstd_image_bytes", "vm_zstd_restore_total"):
            assert size[key] and size[key]["median"] > 0, key
        assert res["vmsnap_ratios"]["16"]["zstd_image_vs_used"] > 0
        assert "whole-VM checkpoints beside CRIU" in r.stdout
    assert qemu_pids("cocoon-bench.") == []


def test_bench_network_only_quick(tmp_path):
    """The network part alone (bench/netbench.py): cocoon, the tap alone and
    runc each streamed the whole payload (the sink's byte count is checked
    by the bench) and answered the ping-pong; or it says why it was skipped."""
    out = tmp_path / "net.json"
    r = subprocess.run(["/usr/bin/python3", str(REPO / "bench" / "bench.py"), "--network-only", "--quick",
                        "--out", str(out)], capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        assert "skipped network:" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
        assert "runc is not installed" in r.stdout, r.stdout  # the one reason this host may lack
        return
    net = json.loads(out.read_text())["network"]
    for path in ("runc", "cocoon", "cocoon_tap_alone"):
        assert net[path]["stream_mib_s"]["median"] > 0, path
        assert net[path]["rtt_us"]["median"] > 0 and net[path]["rtt_us"]["n"] == 200, path
    assert "cocoon (veth + tc redirect + tap)" in r.stdout
    assert qemu_pids("cocoon-bench.") == []
    assert not [l for l in subprocess.run(["ip", "netns"], capture_output=True, text=True).stdout.splitlines()
                if l.startswith("cbn-")], "a bench namespace was left behind"
