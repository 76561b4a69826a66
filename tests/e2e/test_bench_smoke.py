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


def test_bench_record_keeps_the_full_run(tmp_path):
    """`bench.py --vmsnap-only --record FILE` (make bench-vmsnap) puts its
    run under "vmsnap_run" and leaves the full run's figures in FILE as they
    were (no VM: the recording alone); --record without a targeted run is
    refused before anything runs."""
    import sys
    sys.path.insert(0, str(REPO / "bench"))
    import harness
    path = tmp_path / "results.json"
    full = {"sizes": {"256": {"restore_total": {"median": 5000}}}, "ratios": {"at_mib": 256},
            "elapsed_s": 550.8}
    path.write_text(json.dumps(full))
    run = {"sizes": {"16": {"vm_restore_total": {"median": 900}}}, "vmsnap_ratios": {"16": {"restore_vs_criu": 0.2}}}
    harness.record_run(path, "vmsnap_run", run, ["--vmsnap-only", "--record", str(path)], 0)
    got = json.loads(path.read_text())
    assert {k: got[k] for k in full} == full
    rec = got["vmsnap_run"]
    assert rec["sizes"] == run["sizes"] and rec["vmsnap_ratios"] == run["vmsnap_ratios"]
    assert rec["command"] == f"bench/bench.py --vmsnap-only --record {path}"
    assert rec["started_utc"] == "1970-01-01T00:00:00Z"
    assert rec["targets"]["vmsnap_restore_vs_criu"] == 0.5 and rec["targets"]["template_boot_vs_cold"] == 0.25
    assert "frozen_vs_floor" not in rec["targets"]
    # Recorded again: replaced, not nested; another key beside it.
    harness.record_run(path, "vmsnap_run", {"sizes": {}}, [], 0)
    harness.record_run(path, "template_run", {"templates": {"boot_vs_cold": 0.04}}, [], 0)
    got = json.loads(path.read_text())
    assert got["vmsnap_run"]["sizes"] == {} and got["template_run"]["templates"] == {"boot_vs_cold": 0.04}
    assert {k: got[k] for k in full} == full and not list(tmp_path.glob("*.tmp"))
    r = subprocess.run(["/usr/bin/python3", str(REPO / "bench" / "bench.py"), "--record", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--record goes with --vmsnap-only or --template-only" in r.stderr, r.stderr
    assert json.loads(path.read_text()) == got


def test_results_json_holds_a_whole_vm_run():
    """bench/results.json, as committed: the whole-VM run (make bench-vmsnap
    or a full make bench) with its same-run ratios at 16, 64 and 256 MiB,
    so the issue 18 figures the docs quote are in the file."""
    res = json.loads((REPO / "bench" / "results.json").read_text())
    run = res.get("vmsnap_run") or res
    ratios = run.get("vmsnap_ratios", {})
    for mib in ("16", "64", "256"):
        assert ratios.get(mib, {}).get("restore_vs_criu"), (mib, ratios)
        assert ratios[mib].get("image_vs_used") and ratios[mib].get("template_restore_vs_cold"), (mib, ratios)
        s = run["sizes"][mib]
        assert s["vm_restore_total"]["median"] > 0 and s["restore_total"]["median"] > 0, mib
    assert run["vmsnap_ratios"].get("template_boot_vs_cold") or run.get("templates", {}).get("boot_vs_cold")
