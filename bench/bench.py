#!/usr/bin/python3
"""make bench: what checkpoint, restore and boot cost, against the floors and
the alternatives, measured side by side in one run.

Prints a table and writes bench/results.json. Every figure is the median of
several runs with min and max; every ratio compares figures of this run.
This is a benchmark, not a test: it never fails on timing.
"""
import argparse
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

import netbench
from bench_vm import (fetch_vmsnap_vmm, measure_vmsnap, report_templates, report_vmsnap, template_only,
                      template_ratios, vmsnap_only, vmsnap_ratios)
from harness import (BUILD, COCOON, REPO, TARGETS, Bench, add_exit, add_host_baseline, cold_and_template_restore,
                     fmt, measure_boot, med, new_results, ratio, stat)


def measure_size(b, mib, runs, direct9p, transfer_only=False):
    res = {k: [] for k in ("floor_frozen", "floor_criu", "lr_frozen", "lr_criu", "lr_copy", "lr_total",
                           "seed_frozen", "seed_total", "exit_frozen", "exit_total", "restore_total",
                           "restore_boot", "restore_criu", "raw_restore_criu", "image_bytes",
                           "direct9p_frozen", "direct9p_total", "floor_peak_mib", "lr_peak_mib",
                           "stream_frozen", "stream_criu", "stream_total", "stream_peak_mib",
                           "tmpl_restore_total", "tmpl_restore_boot", "tmpl_restore_criu")}
    for run in range(runs):
        cid, out = b.start(["payload", "memhog", str(mib)])
        try:
            b.wait_lines(out, 1)
            # A first dump pays for cold caches (CRIU's binary and libraries,
            # the guest's page tables); run one and discard it, so that the
            # figure measured first is not the one penalized.
            b.checkpoint(cid, "--leave-running", "--bench-route", "floor")
            s = b.checkpoint(cid, "--leave-running", "--bench-route", "floor")
            res["floor_frozen"].append(s["frozen_ms"])
            res["floor_criu"].append(s["criu_ms"])
            res["floor_peak_mib"].append(s["guest_peak_used_mib"])
            p = b.work / f"lr-{mib}-{run}"
            s = b.checkpoint(cid, "--leave-running", path=p)
            res["lr_frozen"].append(s["frozen_ms"])
            res["lr_criu"].append(s["criu_ms"])
            res["lr_copy"].append(s["copy_ms"])
            res["lr_total"].append(s["total_ms"])
            res["lr_peak_mib"].append(s["guest_peak_used_mib"])
            shutil.rmtree(p)
            if not transfer_only:
                # The streaming route, which a guest too small for a
                # second copy of the container's memory takes.
                p = b.work / f"stream-{mib}-{run}"
                s = b.checkpoint(cid, "--leave-running", "--bench-route", "stream", path=p)
                res["stream_frozen"].append(s["frozen_ms"])
                res["stream_criu"].append(s["criu_ms"])
                res["stream_total"].append(s["total_ms"])
                res["stream_peak_mib"].append(s["guest_peak_used_mib"])
                shutil.rmtree(p)
            if not transfer_only:
                p = b.work / f"seed-{mib}-{run}"
                s = b.checkpoint(cid, "--leave-running", "--bench-route", "seed", path=p)
                res["seed_frozen"].append(s["frozen_ms"])
                res["seed_total"].append(s["total_ms"])
                shutil.rmtree(p)
            if direct9p and run == 0 and not transfer_only:
                p = b.work / f"d9p-{mib}"
                s = b.checkpoint(cid, "--leave-running", "--bench-route", "direct9p", path=p)
                res["direct9p_frozen"].append(s["frozen_ms"])
                res["direct9p_total"].append(s["total_ms"])
                shutil.rmtree(p)
            p = b.work / f"exit-{mib}-{run}"
            add_exit(res, b.checkpoint(cid, path=p))
        finally:
            b.delete(cid)
        rid = f"r{mib}x{run}"
        # Into a fresh VM and, but for the transfer-only run, into a VM
        # started from the template of the restore's shape.
        cold_and_template_restore(b, res, rid, p, mib, template=not transfer_only, require_template=False)
        if not transfer_only:
            s = b.restore(rid + "raw", p, "--bench-from-tmpfs")
            res["raw_restore_criu"].append(s["criu_ms"])
            b.delete(rid + "raw")
        shutil.rmtree(p)
    return {k: stat(v) for k, v in res.items()}


def measure_routes(b, mib, runs):
    """The two ways cocoon's route can take, side by side on one container:
    the pages through guest memory (tmpfs) or streamed by CRIU's page
    server into the shared directory; with the guest memory each took
    (MemAvailable's largest drop, sampled by the agent)."""
    res = {}
    for run in range(runs):
        cid, out = b.start(["payload", "memhog", str(mib)])
        try:
            b.wait_lines(out, 1)
            b.checkpoint(cid, "--leave-running", "--bench-route", "floor")  # warm-up, discarded
            s = b.checkpoint(cid, "--leave-running", "--bench-route", "floor")
            res.setdefault("floor_frozen", []).append(s["frozen_ms"])
            res.setdefault("floor_criu", []).append(s["criu_ms"])
            res.setdefault("floor_peak_mib", []).append(s["guest_peak_used_mib"])
            for route in ("tmpfs", "stream"):
                p = b.work / f"{route}-{mib}-{run}"
                s = b.checkpoint(cid, "--leave-running", "--bench-route", route, path=p)
                for key in ("frozen_ms", "criu_ms", "copy_ms", "total_ms", "guest_peak_used_mib"):
                    res.setdefault(f"{route}_{key}", []).append(s[key])
                shutil.rmtree(p)
        finally:
            b.delete(cid)
    return {k: stat(v) for k, v in res.items()}


class TmpfsSampler:
    """The most a tmpfs held while a command ran, sampled every 10 ms: the
    host memory the images took on their way (a state root on tmpfs)."""

    def __init__(self, path):
        self.path, self.peak, self.stop = path, 0, False

    def used(self):
        st = os.statvfs(self.path)
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    def __enter__(self):
        import threading
        self.base = self.used()

        def run():
            while not self.stop:
                self.peak = max(self.peak, self.used() - self.base)
                time.sleep(0.01)
        self.t = threading.Thread(target=run)
        self.t.start()
        return self

    def __exit__(self, *a):
        self.stop = True
        self.t.join()


def measure_layout(work, mib, runs, memory_mib, baseline=None):
    """The engines' layout: the state root on tmpfs (as /run is on real
    hosts), --image-path on disk. Images staged beside the destination (a
    bind mount on the shared directory) against staged in the shared
    directory under the state root (COCOON_STAGING=shared, the way before),
    and against the state root on the same disk as the images."""
    res = {}
    tmpfs = work / "tmpfs-state"
    tmpfs.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0700", "tmpfs", str(tmpfs)], check=True)
    layouts = [("same_fs", work / "layout-disk", None, {}, None),
               ("beside", work / "layout-tmpfs", tmpfs / "a", {}, None),
               ("shared", work / "layout-tmpfs-old", tmpfs / "b", {"COCOON_STAGING": "shared"}, None)]
    if baseline:
        # Another build of cocoon (--baseline-build) beside this one, on
        # the same layouts, in the same run: what a change costs.
        layouts = [layouts[0], ("base_same_fs", work / "layout-disk-base", None, {}, baseline),
                   layouts[1], ("base_beside", work / "layout-tmpfs-base", tmpfs / "c", {}, baseline)]
    benches = []
    try:
        for name, bwork, root, env, binary in layouts:
            benches.append(Bench(bwork, memory_mib, root=root, env=env, cocoon=binary))
        # Run by run, every layout in turn: drift hits them alike.
        for run in range(runs):
            for (name, *_), b in zip(layouts, benches):
                cid, out = b.start(["payload", "memhog", str(mib)])
                try:
                    b.wait_lines(out, 1)
                    b.checkpoint(cid, "--leave-running", "--bench-route", "floor")  # warm-up
                    for mode in ("lr", "exit"):
                        p = work / f"layout-img-{name}-{run}-{mode}"
                        flags = ["--leave-running"] if mode == "lr" else []
                        with TmpfsSampler(tmpfs) as t:
                            s = b.checkpoint(cid, *flags, path=p)
                        res.setdefault(f"{name}_{mode}_total", []).append(s["total_ms"])
                        res.setdefault(f"{name}_{mode}_host_mib", []).append(t.peak / (1 << 20))
                        if name.removeprefix("base_") != "same_fs":
                            assert s["staging"] == name.removeprefix("base_"), s
                        shutil.rmtree(p)
                finally:
                    b.delete(cid)
    finally:
        for b in benches:
            b.delete_all()
        subprocess.run(["umount", "-l", str(tmpfs)])
    return {k: stat(v) for k, v in res.items()}


def measure_predump(b, mib, runs):
    full, final, pre = [], [], []
    for run in range(runs):
        cid, out = b.start(["payload", "memhog", str(mib), "1", "10"])
        try:
            b.wait_lines(out, 2)
            b.checkpoint(cid, "--leave-running", "--bench-route", "floor")  # warm-up, discarded
            s = b.checkpoint(cid, "--leave-running", "--bench-route", "floor")
            full.append(s["frozen_ms"])
            chain = b.work / f"chain-{mib}-{run}"
            chain.mkdir()
            s = b.checkpoint(cid, "--pre-dump", path=chain / "pre")
            pre.append(s["frozen_ms"])
            time.sleep(1)
            s = b.checkpoint(cid, "--leave-running", "--parent-path", str(chain / "pre"), path=chain / "final")
            final.append(s["frozen_ms"])
            shutil.rmtree(chain)
        finally:
            b.delete(cid)
    return {"full_frozen": stat(full), "predump_frozen": stat(pre), "final_frozen": stat(final)}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smoke run: 16 MiB, one run, no timing claims")
    ap.add_argument("--sizes", default="16,64,256")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "bench" / "results.json"))
    ap.add_argument("--routes-only", action="store_true",
                    help="only the tmpfs and streaming routes side by side (a targeted run)")
    ap.add_argument("--network-only", action="store_true",
                    help="only the network figures, cocoon and runc side by side (a targeted run)")
    ap.add_argument("--template-only", action="store_true",
                    help="only VM templates beside cold boot, cold restore and host runc (a targeted run)")
    ap.add_argument("--vmsnap-only", action="store_true",
                    help="only whole-VM checkpoints beside the CRIU route and host runc (a targeted run)")
    ap.add_argument("--record", metavar="FILE",
                    help="with --vmsnap-only or --template-only: also put this run's results under "
                         "\"vmsnap_run\" or \"template_run\" in FILE (bench/results.json), keeping the rest")
    ap.add_argument("--layout-only", action="store_true",
                    help="only the engines' layout at the largest size (a targeted run)")
    ap.add_argument("--variants-only", action="store_true",
                    help="only boot, checkpoint and restore of the default guest beside the rootfs on "
                         "virtiofs and (--criu-image) another CRIU, alternating (a targeted run)")
    ap.add_argument("--criu-image", metavar="DIR",
                    help="with --variants-only: a guest image built with COCOON_GUEST_CRIU_ROOT")
    ap.add_argument("--baseline-build", metavar="DIR",
                    help="with --layout-only: the same layouts with DIR/cocoon too, side by side")
    args = ap.parse_args()
    if args.record and not (args.vmsnap_only or args.template_only):
        ap.error("--record goes with --vmsnap-only or --template-only (a full run writes --out whole)")
    if args.network_only:
        return network_only(args)
    if args.routes_only:
        return routes_only(args)
    if args.template_only:
        return template_only(args)
    if args.vmsnap_only:
        return vmsnap_only(args)
    if args.variants_only:
        return variants_only(args)
    if args.layout_only:
        work = pathlib.Path(tempfile.mkdtemp(prefix="cocoon-bench."))
        try:
            big = max(int(x) for x in args.sizes.split(","))
            base = pathlib.Path(args.baseline_build) / "cocoon" if args.baseline_build else None
            res = measure_layout(work, big, args.runs, max(1024, 4 * big + 512), base)
            if base:
                res["ratios"] = {f"{k}_{m}": ratio(med(res, f"{k}_{m}_total"), med(res, f"base_{k}_{m}_total"))
                                 for k in ("same_fs", "beside") for m in ("lr", "exit")}
            print(json.dumps(res, indent=1))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return 0
    sizes = [16] if args.quick else [int(x) for x in args.sizes.split(",")]
    runs = 1 if args.quick else args.runs
    t_start = time.time()
    work = pathlib.Path(tempfile.mkdtemp(prefix="cocoon-bench."))
    memory_mib = max(1024, 4 * max(sizes) + 512)
    b = Bench(work, memory_mib)
    benches = [b]
    results = new_results()
    try:
        print(f"cocoon bench: sizes {sizes} MiB, {runs} run(s) each, work dir {work}", flush=True)
        # Boot is the cheapest figure and the floor the noisiest one: more
        # alternated pairs than the other figures get.
        results["boot"] = measure_boot(b, 1 if args.quick else max(runs, 5))
        for mib in sizes:
            print(f"  measuring {mib} MiB ...", flush=True)
            results["sizes"][str(mib)] = measure_size(b, mib, runs, direct9p=mib <= 64 or args.quick)
        big = max(sizes)
        print(f"  measuring pre-dump at {big} MiB ...", flush=True)
        results["predump"] = measure_predump(b, big, runs)
        # The same checkpoints and restore with the shared directory and the
        # image directories on virtiofs instead of 9p (the rootfs stays on
        # 9p), at the largest size only: the bench must stay under 15 min.
        print(f"  measuring virtiofs at {big} MiB ...", flush=True)
        bv = Bench(work / "virtiofs", memory_mib, shared_fs="virtiofs")
        benches.append(bv)
        results["virtiofs"] = {str(big): measure_size(bv, big, runs, direct9p=False, transfer_only=True)}
        print(f"  measuring the engines' layout at {big} MiB ...", flush=True)
        results["layout"] = {str(big): measure_layout(work, big, runs, memory_mib)}
        # Whole-VM checkpoints: a QEMU that can save a VM with virtiofs
        # shares (Debian 13's, fetched privately on Debian 12).
        vmm, why = fetch_vmsnap_vmm()
        if vmm:
            bvm = Bench(work / "vmsnap", memory_mib, vmsnap=vmm)
            benches.append(bvm)
            try:
                for mib in sizes:
                    print(f"  measuring whole-VM checkpoints at {mib} MiB ...", flush=True)
                    results["sizes"][str(mib)].update(
                        {k: v for k, v in measure_vmsnap(bvm, b, mib, runs, with_criu=False).items()
                         if k.startswith("vm_")})
            except (RuntimeError, OSError, subprocess.SubprocessError, KeyError, ValueError) as e:
                results["skipped"]["vmsnap"] = f"the whole-VM figures failed: {e}"
        else:
            results["skipped"]["vmsnap"] = why
        add_host_baseline(results, work, sizes, runs)
        print("  measuring the network (cocoon and runc) ...", flush=True)
        net, why = netbench.measure_network(work, COCOON, BUILD / "payload", args.quick)
        if net:
            results["network"] = net
        else:
            results["skipped"]["network"] = why
    finally:
        for bench in benches:
            bench.delete_all()
        shutil.rmtree(work, ignore_errors=True)

    big = str(max(sizes))
    s = results["sizes"][big]
    boot = results["boot"]
    raw_restore = med(s, "raw_restore_criu")
    results["ratios"] = {
        "at_mib": int(big),
        "frozen_vs_floor": ratio(med(s, "lr_frozen"), med(s, "floor_frozen")),
        "complete_vs_floor": ratio(med(s, "lr_total"), med(s, "floor_criu")),
        "seed_vs_cocoon": ratio(med(s, "seed_total"), med(s, "lr_total")),
        "restore_vs_floor": ratio(med(s, "restore_total"),
                                  (med(s, "restore_boot") or 0) + 1.2 * (raw_restore or 0)),
        "boot_vs_floor": ratio(med(boot, "agent_ready_ms"), med(boot, "floor_ms")),
        # Issue 18's targets: <= 0.25 and <= 0.7.
        "template_boot_vs_cold": ratio(med(boot, "template_ready_ms"), med(boot, "agent_ready_ms")),
        "template_restore_vs_cold": ratio(med(s, "tmpl_restore_total"), med(s, "restore_total")),
        "vmsnap_restore_vs_criu": ratio(med(s, "vm_restore_total"), med(s, "restore_total")),
        "vmsnap_image_vs_used": ratio(med(s, "vm_image_bytes"), (med(s, "vm_used_mib") or 0) * (1 << 20)),
        "predump_vs_full": ratio(med(results["predump"], "final_frozen"), med(results["predump"], "full_frozen")),
    }
    if med(s, "host_total"):
        results["ratios"]["vm_price"] = {
            "checkpoint": ratio(med(s, "lr_total"), med(s, "host_total")),
            "frozen": ratio(med(s, "lr_frozen"), med(s, "host_frozen")),
            "restore": ratio(med(s, "restore_total"), med(s, "host_restore")),
        }
    if results.get("virtiofs"):
        v = results["virtiofs"][big]
        results["ratios"]["virtiofs_vs_9p"] = {
            "checkpoint": ratio(med(v, "lr_total"), med(s, "lr_total")),
            "restore": ratio(med(v, "restore_total"), med(s, "restore_total")),
        }
    lay = results.get("layout", {}).get(big)
    if lay:
        results["ratios"]["engines_layout_vs_same_fs"] = {
            "leave_running": ratio(med(lay, "beside_lr_total"), med(lay, "same_fs_lr_total")),
            "exit": ratio(med(lay, "beside_exit_total"), med(lay, "same_fs_exit_total")),
            "before_leave_running": ratio(med(lay, "shared_lr_total"), med(lay, "same_fs_lr_total")),
        }
    # The guest memory a checkpoint takes, against issue 12's target for
    # the route it needs at least: 64 MiB + 5% of the container's memory.
    results["guest_memory"] = {
        m: {"stream_peak_mib": med(results["sizes"][m], "stream_peak_mib"),
            "tmpfs_peak_mib": med(results["sizes"][m], "lr_peak_mib"),
            "target_mib": 64 + int(m) * 5 / 100}
        for m in results["sizes"]}
    results["templates"] = template_ratios(results)
    results["vmsnap_ratios"] = vmsnap_ratios(results)
    results["targets"] = {k: v[1] for k, v in TARGETS.items()}
    results["elapsed_s"] = round(time.time() - t_start, 1)
    pathlib.Path(args.out).write_text(json.dumps(results, indent=2))
    report(results, sizes)
    print(f"results written to {args.out}")
    return 0


def measure_variant(b, mib):
    """One boot to agent ready, and one checkpoint of a MIB memhog (the
    container ends) with its restore into a fresh VM."""
    m = re.search(r"boot\s+(\d+) ms to agent ready", b.cocoon("check").stdout)
    boot = int(m.group(1)) if m else None
    cid, out = b.start(["payload", "memhog", str(mib)])
    p = b.work / f"v-{cid}"
    try:
        b.wait_lines(out, 1)
        s = b.checkpoint(cid, path=p)
    finally:
        b.delete(cid)
    r = b.restore("r" + cid, p)
    b.delete("r" + cid)
    shutil.rmtree(p)
    return {"agent_ready_ms": boot, "ckpt_frozen": s["frozen_ms"], "ckpt_criu": s["criu_ms"],
            "ckpt_total": s["total_ms"], "restore_total": r["total_ms"], "restore_boot": r["boot_ms"],
            "restore_criu": r["criu_ms"]}


def variants_only(args):
    """The default guest (CRIU 3.17, rootfs on 9p) beside the rootfs on
    virtiofs (rootfs_fs) and, with --criu-image, a guest image carrying
    another CRIU (docs/image.md), in one run: the variants alternate, so
    the host's load falls on each alike. Ratios are against the default."""
    mib = max(int(x) for x in args.sizes.split(","))
    work = pathlib.Path(tempfile.mkdtemp(prefix="cocoon-bench."))
    variants = {"default": Bench(work / "default", 512),
                "rootfs_virtiofs": Bench(work / "rootfs-vfs", 512, extra_vm='rootfs_fs = "virtiofs"\n')}
    if args.criu_image:
        img = pathlib.Path(args.criu_image)
        variants["criu_image"] = Bench(work / "criu-image", 512,
                                       extra_vm=f'kernel = "{img / "vmlinux"}"\ninitrd = "{img / "initrd.img"}"\n')
    res = {name: {} for name in variants}
    try:
        for b in variants.values():
            b.cocoon("check")  # cold caches: not measured
        for run in range(args.runs):
            for name, b in variants.items():
                print(f"  {name}, run {run + 1} ...", flush=True)
                for k, v in measure_variant(b, mib).items():
                    res[name].setdefault(k, []).append(v)
    finally:
        for b in variants.values():
            b.delete_all()
        shutil.rmtree(work, ignore_errors=True)
    out = {"at_mib": mib, "runs": args.runs, "criu_image": args.criu_image,
           "variants": {n: {k: stat(v) for k, v in d.items()} for n, d in res.items()}}
    base = out["variants"]["default"]
    out["ratios"] = {n: {k: ratio(med(d, k), med(base, k)) for k in d}
                     for n, d in out["variants"].items() if n != "default"}
    pathlib.Path(args.out).write_text(json.dumps(out, indent=2))
    for n, d in out["variants"].items():
        print(f"{n:16} " + "  ".join(f"{k} {fmt(d, k)}" for k in d))
    for n, d in out["ratios"].items():
        print(f"{n} / default: " + "  ".join(f"{k} {v}" for k, v in d.items()))
    print(f"results written to {args.out}")
    return 0


def network_only(args):
    work = pathlib.Path(tempfile.mkdtemp(prefix="cocoon-bench."))
    try:
        net, why = netbench.measure_network(work, COCOON, BUILD / "payload", args.quick)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not net:
        print(f"skipped network: {why}")
        return 1
    # A targeted run never overwrites the full run's bench/results.json.
    out = pathlib.Path(args.out)
    if out == REPO / "bench" / "results.json":
        out = BUILD / "bench-network.json"
    out.write_text(json.dumps({"network": net}, indent=2))
    netbench.report(net)
    print(f"results written to {out}")
    return 0


def routes_only(args):
    sizes = [int(x) for x in args.sizes.split(",")]
    work = pathlib.Path(tempfile.mkdtemp(prefix="cocoon-bench."))
    b = Bench(work, max(1024, 4 * max(sizes) + 512))
    out = {}
    try:
        for mib in sizes:
            print(f"  routes at {mib} MiB ...", flush=True)
            out[str(mib)] = measure_routes(b, mib, args.runs)
    finally:
        b.delete_all()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=1))
    return 0


def report(r, sizes):
    print()
    print(f"boot: agent ready {fmt(r['boot'], 'agent_ready_ms')} ms; trivial-init floor "
          f"{fmt(r['boot'], 'floor_ms')} ms; from a VM template {fmt(r['boot'], 'template_ready_ms')} ms")
    rows = [("raw dump into guest tmpfs: frozen", "floor_frozen"), ("raw dump into guest tmpfs: criu wall", "floor_criu"),
            ("cocoon --leave-running: frozen", "lr_frozen"), ("cocoon --leave-running: criu", "lr_criu"),
            ("cocoon --leave-running: copy to host", "lr_copy"), ("cocoon --leave-running: total", "lr_total"),
            ("seed (tmp + cp): frozen", "seed_frozen"), ("seed (tmp + cp): total", "seed_total"),
            ("dump straight into 9p: frozen", "direct9p_frozen"), ("dump straight into 9p: total", "direct9p_total"),
            ("cocoon exit mode: frozen", "exit_frozen"), ("cocoon exit mode: total", "exit_total"),
            ("streaming route (page server): frozen", "stream_frozen"),
            ("streaming route: total", "stream_total"),
            ("guest memory taken, MiB: tmpfs route", "lr_peak_mib"),
            ("guest memory taken, MiB: streaming", "stream_peak_mib"),
            ("restore, fresh VM: total", "restore_total"), ("restore: boot part", "restore_boot"),
            ("restore: criu part (from 9p)", "restore_criu"), ("raw criu restore from tmpfs", "raw_restore_criu"),
            ("restore, VM from template: total", "tmpl_restore_total"),
            ("restore, VM from template: boot part", "tmpl_restore_boot"),
            ("host runc+CRIU 4.1.1, no VM: frozen", "host_frozen"),
            ("host runc+CRIU 4.1.1, no VM: total", "host_total"),
            ("host runc+CRIU 4.1.1: restore", "host_restore")]
    head = "ms, median (min-max)".ljust(40) + "".join(f"{m} MiB".rjust(20) for m in sizes)
    print(head)
    for label, key in rows:
        print(label.ljust(40) + "".join(fmt(r["sizes"][str(m)], key).rjust(20) for m in sizes))
    print("image size / dirty memory".ljust(40) + "".join(
        f"{(r['sizes'][str(m)]['image_bytes']['median'] / (m << 20)):.2f}x".rjust(20) for m in sizes))
    p = r["predump"]
    print(f"pre-dump ({max(sizes)} MiB, 10% dirtied/s): full frozen {fmt(p, 'full_frozen')}, pre-dump frozen "
          f"{fmt(p, 'predump_frozen')}, final frozen {fmt(p, 'final_frozen')} ms")
    print()
    print(f"ratios at {r['ratios']['at_mib']} MiB (this run)          value   target")
    for k, (label, target) in TARGETS.items():
        v = r["ratios"].get(k)
        print(f"  {label[:52].ljust(52)} {('-' if v is None else f'{v:.2f}').rjust(6)}   "
              f"{'>=' if k == 'seed_vs_cocoon' else '<='}{target}")
    host = r["ratios"].get("vm_price")
    if host:
        print(f"  price of VM isolation (cocoon / host runc), checkpoint wall {host['checkpoint']:.1f}x, "
              f"frozen {host['frozen']:.1f}x, restore {host['restore']:.1f}x (not a target)")
    v = r.get("virtiofs")
    if v:
        mib = next(iter(v))
        nine, vfs = r["sizes"][mib], v[mib]
        print()
        print(f"shared filesystem at {mib} MiB (the rootfs is 9p in both)".ljust(40) + "9p".rjust(20)
              + "virtiofs".rjust(20))
        for label, key in (("--leave-running: frozen", "lr_frozen"), ("--leave-running: copy to host", "lr_copy"),
                           ("--leave-running: total", "lr_total"), ("exit mode: total", "exit_total"),
                           ("restore, fresh VM: total", "restore_total"), ("restore: criu part", "restore_criu")):
            print(label.ljust(40) + fmt(nine, key).rjust(20) + fmt(vfs, key).rjust(20))
        fs = r["ratios"].get("virtiofs_vs_9p", {})
        print(f"  virtiofs / 9p: checkpoint total {fs.get('checkpoint') or 0:.2f}, restore total "
              f"{fs.get('restore') or 0:.2f} (not a target)")
    report_templates(r, sizes)
    report_vmsnap(r, sizes)
    lay = r.get("layout")
    if lay:
        mib = next(iter(lay))
        l = lay[mib]
        print()
        print(f"engines' layout at {mib} MiB: state root on tmpfs, images on disk".ljust(60))
        print("".ljust(40) + "same disk".rjust(20) + "tmpfs, beside".rjust(20) + "tmpfs, before".rjust(20))
        for label, key in (("--leave-running: total ms", "lr_total"), ("exit mode: total ms", "exit_total"),
                           ("host memory (state tmpfs peak), MiB", "lr_host_mib")):
            print(label.ljust(40) + "".join(fmt(l, f"{n}_{key}").rjust(20) for n in ("same_fs", "beside", "shared")))
    if r.get("network"):
        netbench.report(r["network"])
    for k, why in r["skipped"].items():
        print(f"skipped {k}: {why}")
    print(f"({r['elapsed_s']} s)")


if __name__ == "__main__":
    sys.exit(main())
