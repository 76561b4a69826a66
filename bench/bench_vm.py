"""VM templates and whole-VM checkpoints in the benchmark (issue 18), beside
the cold boot, CRIU's restore and host runc: the measurements, ratios and
reports of bench.py's --template-only and --vmsnap-only runs and of the
full run's template figures."""
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

from harness import (BUILD, REPO, TARGETS, Bench, add_host_baseline, cold_and_template_restore, fmt,
                     measure_boot, med, memhog_exit_checkpoint, new_results, ratio, record_run, stat)

def measure_template_restore(b, mib, runs):
    """The restore of one exit-mode checkpoint of a memhog into a fresh VM,
    cold and from the VM template of the restore's shape, alternated run by
    run. The first template restore of the shape builds the template and is
    not measured."""
    res = {k: [] for k in ("restore_total", "restore_boot", "restore_criu", "tmpl_restore_total",
                           "tmpl_restore_boot", "tmpl_restore_criu")}
    for run in range(runs):
        _, p = memhog_exit_checkpoint(b, mib, f"tmpl-exit-{mib}-{run}")
        cold_and_template_restore(b, res, f"t{mib}x{run}", p, mib)
        shutil.rmtree(p)
    return {k: stat(v) for k, v in res.items()}


def fetch_vmsnap_vmm():
    """(directory, None) with a QEMU and virtiofsd that can save a whole VM,
    or (None, why not)."""
    r = subprocess.run(["sh", str(REPO / "scripts" / "fetch-vmsnap-vmm.sh")], capture_output=True,
                       text=True, timeout=900)
    if r.returncode != 0:
        return None, r.stderr.strip() or "scripts/fetch-vmsnap-vmm.sh failed"
    return pathlib.Path(r.stdout.strip()), None


def guest_used_mib(b, cid):
    """The guest's used memory as the container sees /proc/meminfo (the
    VM's): total - free (what a snapshot can hold: page cache included) and
    total - available."""
    r = b.cocoon("exec", cid, "busybox", "cat", "/proc/meminfo")
    m = dict((k, int(v.split()[0])) for k, v in
             (line.split(":", 1) for line in r.stdout.splitlines() if ":" in line))
    return (m["MemTotal"] - m["MemFree"]) / 1024, (m["MemTotal"] - m["MemAvailable"]) / 1024


def measure_vmsnap(bv, b, mib, runs, with_criu):
    """Whole-VM checkpoint and restore of a memhog of mib MiB (bv: a Bench in
    checkpoint_mode "vm"), alternated run by run with the CRIU route's exit
    checkpoint and restore of the same container in b when with_criu (the
    full bench measures those in measure_size)."""
    res = {k: [] for k in ("vm_lr_frozen", "vm_lr_total", "vm_exit_frozen", "vm_exit_total",
                           "vm_image_bytes", "vm_used_mib", "vm_used_nocache_mib", "vm_restore_total",
                           "vm_zstd_lr_total", "vm_zstd_image_bytes", "vm_zstd_restore_total",
                           "exit_frozen", "exit_total", "image_bytes", "restore_total", "restore_boot",
                           "restore_criu", "tmpl_restore_total", "tmpl_restore_boot", "tmpl_restore_criu")}
    zstd_errors = []
    for run in range(runs):
        cid, out = bv.start(["payload", "memhog", str(mib)])
        p = bv.work / f"vm-exit-{mib}-{run}"
        zp = bv.work / f"vm-zstd-{mib}-{run}"
        try:
            bv.wait_lines(out, 1)
            used, nocache = guest_used_mib(bv, cid)
            res["vm_used_mib"].append(used)
            res["vm_used_nocache_mib"].append(nocache)
            lp = bv.work / f"vm-lr-{mib}-{run}"
            s = bv.checkpoint(cid, "--leave-running", path=lp)
            res["vm_lr_frozen"].append(s["frozen_ms"])
            res["vm_lr_total"].append(s["total_ms"])
            shutil.rmtree(lp)
            # The same save with the state compressed (snapshot_zstd_level
            # 3): the compression runs after the VM went on.
            try:
                s = bv.checkpoint(cid, "--leave-running", path=zp, zstd=True)
                res["vm_zstd_lr_total"].append(s["total_ms"])
                res["vm_zstd_image_bytes"].append(sum(f.stat().st_blocks * 512 for f in zp.iterdir()))
            except RuntimeError as e:
                # Recorded with the figures; the other routes go on.
                zstd_errors.append(str(e)[:300])
            s = bv.checkpoint(cid, path=p)
            res["vm_exit_frozen"].append(s["frozen_ms"])
            res["vm_exit_total"].append(s["total_ms"])
            res["vm_image_bytes"].append(sum(f.stat().st_blocks * 512 for f in p.iterdir()))
        finally:
            bv.delete(cid)
        # A whole VM comes back under the ID it was saved with.
        s = bv.restore(cid, p)
        res["vm_restore_total"].append(s["total_ms"])
        bv.delete(cid)
        shutil.rmtree(p)
        if zp.exists():
            try:
                s = bv.restore(cid, zp)
                res["vm_zstd_restore_total"].append(s["total_ms"])
            except RuntimeError as e:
                zstd_errors.append(str(e)[:300])
            bv.delete(cid)
            shutil.rmtree(zp)
        if not with_criu:
            continue
        # The same memhog through CRIU, restored into a fresh VM and into a
        # VM started from the VM template of the restore's shape: the three
        # restores of issue 18 side by side.
        cid, p = memhog_exit_checkpoint(b, mib, f"criu-exit-{mib}-{run}", res, warm=True)
        cold_and_template_restore(b, res, cid + "r", p, mib)
        shutil.rmtree(p)
    out = {k: stat(v) for k, v in res.items()}
    if zstd_errors:
        out["vm_zstd_errors"] = zstd_errors
    return out


def vmsnap_ratios(r):
    """Per size: whole-VM restore / CRIU restore (target <= 0.5), frozen
    times side by side, image / guest used memory (target <= 1.3), and the
    price of VM isolation left against host runc."""
    out = {}
    for mib, s in r["sizes"].items():
        if not s.get("vm_restore_total"):
            continue
        out[mib] = {"restore_vs_criu": ratio(med(s, "vm_restore_total"), med(s, "restore_total")),
                    "restore_vs_template": ratio(med(s, "vm_restore_total"), med(s, "tmpl_restore_total")),
                    "template_restore_vs_cold": ratio(med(s, "tmpl_restore_total"), med(s, "restore_total")),
                    "frozen_vs_criu": ratio(med(s, "vm_exit_frozen"), med(s, "exit_frozen")),
                    "image_vs_used": ratio(med(s, "vm_image_bytes"), (med(s, "vm_used_mib") or 0) * (1 << 20)),
                    "zstd_image_vs_used": ratio(med(s, "vm_zstd_image_bytes"),
                                                (med(s, "vm_used_mib") or 0) * (1 << 20)),
                    "zstd_restore_vs_criu": ratio(med(s, "vm_zstd_restore_total"), med(s, "restore_total")),
                    "restore_vs_host_runc": ratio(med(s, "vm_restore_total"), med(s, "host_restore")),
                    "checkpoint_vs_host_runc": ratio(med(s, "vm_lr_total"), med(s, "host_total"))}
    return out


def report_vmsnap(r, sizes):
    t = r.get("vmsnap_ratios") or vmsnap_ratios(r)
    sizes = [m for m in sizes if str(m) in t]
    if "vmsnap" in r.get("skipped", {}):
        print(f"skipped vmsnap: {r['skipped']['vmsnap']}")
    if not sizes:
        return
    print()
    print(f"whole-VM checkpoints beside CRIU and host runc (ms, median (min-max); target restore whole VM / CRIU "
          f"<= {TARGETS['vmsnap_restore_vs_criu'][1]}, image / used <= {TARGETS['vmsnap_image_vs_used'][1]})")
    print("".ljust(44) + "".join(f"{m} MiB".rjust(20) for m in sizes))
    for label, key in (("whole VM --leave-running: frozen", "vm_lr_frozen"),
                       ("whole VM --leave-running: total", "vm_lr_total"),
                       ("whole VM exit: frozen", "vm_exit_frozen"), ("whole VM exit: total", "vm_exit_total"),
                       ("CRIU exit: frozen", "exit_frozen"), ("CRIU exit: total", "exit_total"),
                       ("host runc + CRIU: frozen", "host_frozen"), ("host runc + CRIU: total", "host_total"),
                       ("whole VM + zstd --leave-running: total", "vm_zstd_lr_total"),
                       ("restore whole VM (no boot, no CRIU)", "vm_restore_total"),
                       ("restore whole VM from vm.state.zst", "vm_zstd_restore_total"),
                       ("restore CRIU, fresh VM: total", "restore_total"),
                       ("restore CRIU, fresh VM: boot part", "restore_boot"),
                       ("restore CRIU, VM from template: total", "tmpl_restore_total"),
                       ("restore CRIU, VM from template: boot", "tmpl_restore_boot"),
                       ("host runc + CRIU: restore", "host_restore"),
                       ("guest used MiB (total - free)", "vm_used_mib"),
                       ("guest used MiB (total - available)", "vm_used_nocache_mib")):
        print(label.ljust(44) + "".join(fmt(r["sizes"][str(m)], key).rjust(20) for m in sizes))
    print("whole-VM image MiB".ljust(44) + "".join(
        (f"{med(r['sizes'][str(m)], 'vm_image_bytes') / (1 << 20):.1f}"
         if med(r["sizes"][str(m)], "vm_image_bytes") else "-").rjust(20) for m in sizes))
    print("whole-VM image, zstd -3, MiB".ljust(44) + "".join(
        (f"{med(r['sizes'][str(m)], 'vm_zstd_image_bytes') / (1 << 20):.1f}"
         if med(r["sizes"][str(m)], "vm_zstd_image_bytes") else "-").rjust(20) for m in sizes))
    print("CRIU image MiB".ljust(44) + "".join(
        (f"{med(r['sizes'][str(m)], 'image_bytes') / (1 << 20):.1f}"
         if med(r["sizes"][str(m)], "image_bytes") else "-").rjust(20) for m in sizes))
    for label, key in (("restore: whole VM / CRIU", "restore_vs_criu"),
                       ("restore: whole VM / CRIU from template", "restore_vs_template"),
                       ("restore: CRIU from template / cold", "template_restore_vs_cold"),
                       ("frozen: whole VM / CRIU", "frozen_vs_criu"),
                       ("image / guest used memory", "image_vs_used"),
                       ("zstd image / guest used memory", "zstd_image_vs_used"),
                       ("restore: whole VM from zstd / CRIU", "zstd_restore_vs_criu"),
                       ("restore: whole VM / host runc (VM price)", "restore_vs_host_runc"),
                       ("checkpoint: whole VM / host runc", "checkpoint_vs_host_runc")):
        vals = [t.get(str(m), {}).get(key) for m in sizes]
        print(label.ljust(44) + "".join(("-" if v is None else f"{v:.2f}x").rjust(20) for v in vals))
    for m in sizes:
        for e in r["sizes"][str(m)].get("vm_zstd_errors", []):
            print(f"zstd at {m} MiB failed: {e}")


def vmsnap_only(args):
    """Issue 18's whole-VM figures alone: whole-VM checkpoint and restore
    beside the CRIU route and host runc with CRIU, in one run."""
    sizes = [int(x) for x in args.sizes.split(",")]
    t_start = time.time()
    vmm, why = fetch_vmsnap_vmm()
    if not vmm:
        print(f"skipped vmsnap: {why}")
        return 1
    work = pathlib.Path(tempfile.mkdtemp(prefix="cocoon-bench."))
    memory_mib = max(1024, 4 * max(sizes) + 512)
    b = Bench(work, memory_mib)
    bv = Bench(work / "vmsnap", memory_mib, vmsnap=vmm)
    results = new_results()
    try:
        print(f"cocoon bench --vmsnap-only: sizes {sizes} MiB, {args.runs} run(s) each, work dir {work}",
              flush=True)
        # Boot to agent ready, cold and from the VM template, alternated.
        results["boot"] = measure_boot(b, max(args.runs, 5))
        for mib in sizes:
            print(f"  whole VM and CRIU at {mib} MiB ...", flush=True)
            try:
                results["sizes"][str(mib)] = measure_vmsnap(bv, b, mib, args.runs, with_criu=True)
            except (RuntimeError, OSError, subprocess.SubprocessError, KeyError, ValueError) as e:
                # The sizes measured so far stay in the report.
                results["skipped"][f"vmsnap_{mib}"] = f"failed at {mib} MiB: {e}"
                print(f"  failed at {mib} MiB: {e}", flush=True)
                break
        add_host_baseline(results, work, sizes, args.runs)
    finally:
        for bench in (b, bv):
            bench.delete_all()
        shutil.rmtree(work, ignore_errors=True)
    results["vmsnap_ratios"] = vmsnap_ratios(results)
    if results.get("boot"):
        results["vmsnap_ratios"]["template_boot_vs_cold"] = ratio(med(results["boot"], "template_ready_ms"),
                                                                  med(results["boot"], "agent_ready_ms"))
    results["elapsed_s"] = round(time.time() - t_start, 1)
    out = pathlib.Path(args.out)
    if out == REPO / "bench" / "results.json":
        out = BUILD / "bench-vmsnap.json"
    out.write_text(json.dumps(results, indent=2))
    if args.record:
        record_run(pathlib.Path(args.record), "vmsnap_run", results, sys.argv[1:], t_start)
        print(f"recorded as \"vmsnap_run\" in {args.record}")
    if results.get("boot"):
        bv_ = results["vmsnap_ratios"].get("template_boot_vs_cold")
        print(f"boot to agent ready: cold {fmt(results['boot'], 'agent_ready_ms')} ms, from the VM template "
              f"{fmt(results['boot'], 'template_ready_ms')} ms, template/cold "
              f"{'-' if bv_ is None else f'{bv_:.3f}'} (target <= {TARGETS['template_boot_vs_cold'][1]})")
    report_vmsnap(results, [m for m in sizes if str(m) in results["sizes"]])
    for k, why in results["skipped"].items():
        print(f"skipped {k}: {why}")
    print(f"({results['elapsed_s']} s)")
    print(f"results written to {out}")
    return 0


def template_only(args):
    """Issue 18's figures alone: boot and restore from a VM template beside
    the cold boot, the cold restore and host runc with CRIU, in one run."""
    sizes = [int(x) for x in args.sizes.split(",")]
    t_start = time.time()
    work = pathlib.Path(tempfile.mkdtemp(prefix="cocoon-bench."))
    b = Bench(work, max(1024, 4 * max(sizes) + 512))
    results = new_results()
    try:
        print(f"cocoon bench --template-only: sizes {sizes} MiB, {args.runs} run(s) each, work dir {work}",
              flush=True)
        results["boot"] = measure_boot(b, max(args.runs, 5))
        for mib in sizes:
            print(f"  template restore at {mib} MiB ...", flush=True)
            results["sizes"][str(mib)] = measure_template_restore(b, mib, args.runs)
        add_host_baseline(results, work, sizes, args.runs)
    finally:
        b.delete_all()
        shutil.rmtree(work, ignore_errors=True)
    results["templates"] = template_ratios(results)
    results["elapsed_s"] = round(time.time() - t_start, 1)
    pathlib.Path(args.out).write_text(json.dumps(results, indent=2))
    if args.record:
        record_run(pathlib.Path(args.record), "template_run", results, sys.argv[1:], t_start)
        print(f"recorded as \"template_run\" in {args.record}")
    report_templates(results, sizes)
    print(f"({results['elapsed_s']} s)")
    print(f"results written to {args.out}")
    return 0


def template_ratios(r):
    """Per size: the template restore against the cold restore and against
    host runc (the price of VM isolation left); the boot against the cold one."""
    out = {"boot_vs_cold": ratio(med(r["boot"], "template_ready_ms"), med(r["boot"], "agent_ready_ms"))}
    for mib, s in r["sizes"].items():
        out[mib] = {"restore_vs_cold": ratio(med(s, "tmpl_restore_total"), med(s, "restore_total")),
                    "restore_vs_host_runc": ratio(med(s, "tmpl_restore_total"), med(s, "host_restore")),
                    "cold_restore_vs_host_runc": ratio(med(s, "restore_total"), med(s, "host_restore"))}
    return out


def report_templates(r, sizes):
    t = r.get("templates") or template_ratios(r)
    print()
    print(f"VM templates, side by side (ms, median (min-max); target template/cold <= "
          f"{TARGETS['template_boot_vs_cold'][1]} for boot, <= {TARGETS['template_restore_vs_cold'][1]} for restore)")
    print("boot to agent ready".ljust(40) + "cold".rjust(20) + "from template".rjust(20) + "template/cold".rjust(16))
    bv = t.get("boot_vs_cold")
    print("".ljust(40) + fmt(r["boot"], "agent_ready_ms").rjust(20) + fmt(r["boot"], "template_ready_ms").rjust(20)
          + ("-" if bv is None else f"{bv:.3f}").rjust(16))
    print("restore into a fresh VM".ljust(40) + "".join(f"{m} MiB".rjust(20) for m in sizes))
    for label, key in (("cold VM: total (boot + CRIU)", "restore_total"), ("cold VM: boot part", "restore_boot"),
                       ("cold VM: CRIU part", "restore_criu"),
                       ("VM from template: total", "tmpl_restore_total"),
                       ("VM from template: boot part", "tmpl_restore_boot"),
                       ("VM from template: CRIU part", "tmpl_restore_criu"),
                       ("host runc + CRIU 4.1.1, no VM", "host_restore")):
        print(label.ljust(40) + "".join(fmt(r["sizes"][str(m)], key).rjust(20) for m in sizes))
    for label, key in (("template / cold restore", "restore_vs_cold"),
                       ("template / host runc (VM price left)", "restore_vs_host_runc"),
                       ("cold / host runc (VM price today)", "cold_restore_vs_host_runc")):
        vals = [t.get(str(m), {}).get(key) for m in sizes]
        print(label.ljust(40) + "".join(("-" if v is None else f"{v:.2f}x").rjust(20) for v in vals))
    for k, why in r.get("skipped", {}).items():
        print(f"skipped {k}: {why}")
