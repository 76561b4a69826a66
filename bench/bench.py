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
import statistics
import subprocess
import sys
import tempfile
import time

import netbench

REPO = pathlib.Path(__file__).resolve().parents[1]
BUILD = pathlib.Path(os.environ.get("COCOON_BUILD", REPO / "build"))
COCOON = BUILD / "cocoon"

TARGETS = {
    "frozen_vs_floor": ("frozen time / raw dump into guest tmpfs (frozen)", 1.1),
    "complete_vs_floor": ("images complete on host / raw dump into tmpfs (wall)", 1.5),
    "seed_vs_cocoon": ("seed design (dump to /tmp, cp to 9p) / cocoon, wall", 1.5),
    "restore_vs_floor": ("restore in fresh VM / (boot + 1.2 x raw restore)", 1.0),
    "boot_vs_floor": ("boot to agent-ready / trivial-init boot", 1.3),
    "predump_vs_full": ("final frozen after a pre-dump / full-dump frozen", 0.3),
    # Issue 18's targets for VM templates.
    "template_boot_vs_cold": ("boot to agent-ready: VM template / cold boot", 0.25),
    "template_restore_vs_cold": ("restore: VM from template / fresh cold VM", 0.7),
    # Issue 18's targets for whole-VM checkpoints.
    "vmsnap_restore_vs_criu": ("restore: whole VM / CRIU into a fresh VM", 0.5),
    "vmsnap_image_vs_used": ("whole-VM image / guest's used memory", 1.3),
}


def stat(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


class Bench:
    def __init__(self, work, memory_mib, shared_fs="9p", root=None, env=None, vmsnap=None,
                 cocoon=None):
        work.mkdir(exist_ok=True)
        self.work = work
        self.bin = cocoon or COCOON
        self.root = root or work / "state"
        self.env = {**os.environ, **(env or {})}
        self.config = work / "config.toml"
        # vmsnap: the directory of a QEMU and virtiofsd that can save a VM
        # (scripts/fetch-vmsnap-vmm.sh); its containers are checkpointed whole.
        mode = "[runtime]\ncheckpoint_mode = \"vm\"\n" if vmsnap else ""
        vmm = (f"snapshot_qemu = \"{vmsnap / 'qemu-system-x86_64'}\"\n"
               f"snapshot_virtiofsd = \"{vmsnap / 'virtiofsd'}\"\n") if vmsnap else ""
        self.config.write_text(f"{mode}[vm]\nmemory_mib = {memory_mib}\nshared_fs = \"{shared_fs}\"\n{vmm}")
        # The same VM started from a VM template (docs/performance.md).
        self.template_config = work / "config-template.toml"
        self.template_config.write_text(self.config.read_text() +
                                        f"template = true\ntemplate_dir = \"{work / 'templates'}\"\n")
        # The same whole-VM checkpoints with the state compressed.
        self.zstd_config = work / "config-zstd.toml"
        self.zstd_config.write_text(self.config.read_text() + "snapshot_zstd_level = 3\n")
        self.bundle = work / "bundle"
        (self.bundle / "rootfs" / "bin").mkdir(parents=True)
        for src in (BUILD / "payload", pathlib.Path("/bin/busybox")):
            shutil.copy(src, self.bundle / "rootfs" / "bin")
        (self.bundle / "rootfs" / "bin" / "sh").symlink_to("busybox")
        self.n = 0

    def cocoon(self, *args, timeout=900, out=None, template=False, zstd=False):
        config = self.template_config if template else self.zstd_config if zstd else self.config
        cmd = [str(self.bin), "--root", str(self.root), "--config", str(config), *args]
        if out:
            # The shim keeps the container's stdio open: files, never pipes
            # that we would wait on for ever.
            err = pathlib.Path(str(out) + ".err")
            with open(out, "wb") as o, open(err, "wb") as e:
                r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=o, stderr=e, timeout=timeout,
                                   env=self.env)
            r.stderr = err.read_text()
            return r
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env=self.env)

    def set_args(self, args):
        spec_path = self.bundle / "config.json"
        if not spec_path.exists():
            subprocess.run([str(COCOON), "spec", "--bundle", str(self.bundle)], check=True)
        spec = json.loads(spec_path.read_text())
        spec["process"]["args"] = args
        spec["process"]["terminal"] = False
        spec_path.write_text(json.dumps(spec))

    def start(self, args):
        self.n += 1
        cid = f"b{self.n}"
        self.set_args(args)
        out = self.work / f"{cid}.out"
        r = self.cocoon("create", "--bundle", str(self.bundle), cid, out=out)
        if r.returncode:
            raise RuntimeError(r.stderr)
        r = self.cocoon("start", cid)
        if r.returncode:
            raise RuntimeError(r.stderr)
        return cid, out

    def wait_lines(self, out, n, timeout=300):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if out.exists() and len(out.read_text().splitlines()) >= n:
                return
            time.sleep(0.2)
        raise RuntimeError(f"{out}: no output")

    def stats_line(self, text):
        m = re.search(r"^stats: (\{.*\})$", text, re.M)
        if not m:
            raise RuntimeError(f"no stats line in: {text}")
        return json.loads(m.group(1))

    def checkpoint(self, cid, *flags, path=None, zstd=False):
        args = ["checkpoint", "--print-stats", *flags]
        if path:
            args += ["--image-path", str(path)]
        # The agent frees the guest's copy of the last images after its
        # reply; a request through it (ps) waits for that, so the measured
        # command starts on an idle agent and carries no one else's cleanup.
        self.cocoon("ps", cid)
        r = self.cocoon(*args, cid, zstd=zstd)
        if r.returncode:
            raise RuntimeError(r.stderr)
        return self.stats_line(r.stdout)

    def restore(self, cid, path, *flags, template=False):
        out = self.work / f"{cid}.restore.out"
        r = self.cocoon("restore", "--print-stats", "--detach", "--image-path", str(path),
                        "--bundle", str(self.bundle), *flags, cid, out=out, template=template)
        if r.returncode:
            raise RuntimeError(r.stderr)
        return self.stats_line(out.read_text())

    def delete(self, cid):
        self.cocoon("delete", "--force", cid)


def measure_boot(b, runs):
    floor_initrd = b.work / "floor.cpio"
    stage = b.work / "floor-stage"
    stage.mkdir()
    shutil.copy(BUILD / "trivial-init", stage / "init")
    (stage / "dev").mkdir()
    subprocess.run(f"cd {stage} && find . | cpio -o -H newc -R 0:0 --quiet > {floor_initrd}",
                   shell=True, check=True)
    floor, ready, tready = [], [], []
    # The first VM of a shape builds its template: not measured.
    b.cocoon("check", template=True)
    for _ in range(runs):
        r = subprocess.run([str(BUILD / "boot-floor"), str(floor_initrd)], capture_output=True,
                           text=True, env={**os.environ, "COCOON_CONFIG": str(b.config)})
        floor.append(int(r.stdout.split()[1]))
        r = b.cocoon("check")
        m = re.search(r"boot\s+(\d+) ms to agent ready", r.stdout)
        ready.append(int(m.group(1)) if m else None)
        r = b.cocoon("check", template=True)
        m = re.search(r"boot\s+(\d+) ms to agent ready \(from the VM template\)", r.stdout)
        tready.append(int(m.group(1)) if m else None)
    return {"floor_ms": stat(floor), "agent_ready_ms": stat(ready), "template_ready_ms": stat(tready)}


def add_restore(res, prefix, s):
    """A restore's figures (its --print-stats) into res: PREFIX_total,
    PREFIX_boot and PREFIX_criu."""
    res[prefix + "_total"].append(s["total_ms"])
    res[prefix + "_boot"].append(s["boot_ms"])
    res[prefix + "_criu"].append(s["criu_ms"])


def template_restore(b, rid, p, warm_id):
    """Checkpoint P restored as RID into a VM started from the VM template of
    the restore's shape, then deleted; returns its figures. The first
    template restore of a run (as WARM_ID) builds the template and is not
    measured."""
    if not getattr(b, "restore_template_built", False):
        b.restore(warm_id, p, template=True)
        b.delete(warm_id)
        b.restore_template_built = True
    s = b.restore(rid, p, template=True)
    b.delete(rid)
    return s


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
            s = b.checkpoint(cid, path=p)
            res["exit_frozen"].append(s["frozen_ms"])
            res["exit_total"].append(s["total_ms"])
            res["image_bytes"].append(s["bytes"])
        finally:
            b.delete(cid)
        rid = f"r{mib}x{run}"
        s = b.restore(rid, p)
        add_restore(res, "restore", s)
        b.delete(rid)
        if not transfer_only:
            # The same restore into a VM started from the template of the
            # restore's shape (built by a first, unmeasured restore).
            s = template_restore(b, rid + "tmpl", p, rid + "warm")
            if s.get("template"):
                add_restore(res, "tmpl_restore", s)
        if not transfer_only:
            s = b.restore(rid + "raw", p, "--bench-from-tmpfs")
            res["raw_restore_criu"].append(s["criu_ms"])
            b.delete(rid + "raw")
        shutil.rmtree(p)
    return {k: stat(v) for k, v in res.items()}


def measure_template_restore(b, mib, runs):
    """The restore of one exit-mode checkpoint of a memhog into a fresh VM,
    cold and from the VM template of the restore's shape, alternated run by
    run. The first template restore of the shape builds the template and is
    not measured."""
    res = {k: [] for k in ("restore_total", "restore_boot", "restore_criu", "tmpl_restore_total",
                           "tmpl_restore_boot", "tmpl_restore_criu")}
    for run in range(runs):
        cid, out = b.start(["payload", "memhog", str(mib)])
        p = b.work / f"tmpl-exit-{mib}-{run}"
        try:
            b.wait_lines(out, 1)
            b.checkpoint(cid, path=p)
        finally:
            b.delete(cid)
        rid = f"t{mib}x{run}"
        if not getattr(b, "restore_template_built", False):
            b.restore(rid + "warm", p, template=True)
            b.delete(rid + "warm")
            b.restore_template_built = True
        s = b.restore(rid, p)
        b.delete(rid)
        add_restore(res, "restore", s)
        s = template_restore(b, rid + "tmpl", p, rid + "warm")
        if not s.get("template"):
            raise RuntimeError(f"restore {rid}tmpl at {mib} MiB did not start from the VM template")
        add_restore(res, "tmpl_restore", s)
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
        cid, out = b.start(["payload", "memhog", str(mib)])
        p = b.work / f"criu-exit-{mib}-{run}"
        try:
            b.wait_lines(out, 1)
            b.checkpoint(cid, "--leave-running", "--bench-route", "floor")
            s = b.checkpoint(cid, path=p)
            res["exit_frozen"].append(s["frozen_ms"])
            res["exit_total"].append(s["total_ms"])
            res["image_bytes"].append(s["bytes"])
        finally:
            b.delete(cid)
        s = b.restore(cid + "r", p)
        add_restore(res, "restore", s)
        b.delete(cid + "r")
        # The same CRIU checkpoint restored into a VM started from the VM
        # template of the restore's shape (the first one builds it and is
        # not measured): the three restores of issue 18 side by side.
        s = template_restore(b, cid + "t", p, cid + "w")
        if not s.get("template"):
            raise RuntimeError(f"restore {cid}t at {mib} MiB did not start from the VM template")
        add_restore(res, "tmpl_restore", s)
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
            for d in (bench.root.iterdir() if bench.root.exists() else []):
                bench.delete(d.name)
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
            for d in (b.root.iterdir() if b.root.exists() else []):
                b.delete(d.name)
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


def criu_stats(path):
    """The few fields we report from a CRIU stats image: two magics, a u32
    size, then stats_entry { dump = 1 { frozen_time = 2 }, restore = 2 {
    restore_time = 4 } } in microseconds."""
    data = path.read_bytes()
    size = int.from_bytes(data[8:12], "little")
    msg = data[12:12 + size]

    def fields(buf):
        i, out = 0, {}
        while i < len(buf):
            key, i = varint(buf, i)
            if key & 7 == 2:
                n, i = varint(buf, i)
                out[key >> 3] = buf[i:i + n]
                i += n
            elif key & 7 == 0:
                out[key >> 3], i = varint(buf, i)
            else:
                break
        return out

    def varint(buf, i):
        v = shift = 0
        while True:
            b = buf[i]
            i += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return v, i

    top = fields(msg)
    dump = fields(top.get(1, b""))
    rst = fields(top.get(2, b""))
    return {"frozen_ms": dump[2] / 1000 if 2 in dump else None,
            "restore_ms": rst[4] / 1000 if 4 in rst else None}


class HostRunc:
    """The price of VM isolation: runc with CRIU 4.1.1 on the host, no VM,
    the same payload. runc keeps the container's stdio as pipes, which a
    thread drains (a file as stdout cannot be checkpointed by CRIU)."""

    def __init__(self, work, criu):
        import threading
        self.threading = threading
        self.work = work / "runc"
        self.root = self.work / "state"
        self.bundle = self.work / "bundle"
        (self.bundle / "rootfs" / "bin").mkdir(parents=True)
        shutil.copy(BUILD / "payload", self.bundle / "rootfs" / "bin")
        subprocess.run(["runc", "spec", "--bundle", str(self.bundle)], check=True)
        self.criu = criu
        self.lines = {}

    def runc(self, *args, capture=True, timeout=300):
        return subprocess.run(["runc", "--root", str(self.root), "--criu", self.criu, *args],
                              capture_output=capture, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def detached(self, cid, *args):
        # runc exits at once; the container keeps the pipe's write end.
        p = subprocess.Popen(["runc", "--root", str(self.root), "--criu", self.criu, *args],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             cwd=self.bundle)
        got = self.lines[cid] = []
        self.threading.Thread(target=lambda: [got.append(l) for l in iter(p.stdout.readline, b"")],
                              daemon=True).start()
        if p.wait(timeout=300) != 0:
            raise RuntimeError(f"runc {args[0]} {cid} failed: {b''.join(got).decode(errors='replace')}")

    def start(self, cid, mib):
        spec_path = self.bundle / "config.json"
        spec = json.loads(spec_path.read_text())
        spec["process"]["args"] = ["/bin/payload", "memhog", str(mib)]
        spec["process"]["terminal"] = False
        spec_path.write_text(json.dumps(spec))
        self.detached(cid, "run", "--detach", "--bundle", str(self.bundle), cid)
        deadline = time.time() + 120
        while not self.lines[cid] and time.time() < deadline:
            time.sleep(0.05)
        if not self.lines[cid]:
            raise RuntimeError(f"host container {cid} printed nothing")

    def checkpoint(self, cid, img, work):
        t0 = time.monotonic()
        r = self.runc("checkpoint", "--leave-running", "--image-path", str(img), "--work-path", str(work), cid)
        total = (time.monotonic() - t0) * 1000
        if r.returncode != 0:
            raise RuntimeError(f"runc checkpoint {cid}: {r.stderr.strip()}")
        return total, criu_stats(work / "stats-dump")["frozen_ms"]

    def restore(self, cid, img, work):
        t0 = time.monotonic()
        self.detached(cid, "restore", "--detach", "--image-path", str(img), "--work-path", str(work),
                      "--bundle", str(self.bundle), cid)
        return (time.monotonic() - t0) * 1000

    def delete(self, cid):
        self.runc("delete", "--force", cid)


def new_results():
    """The skeleton every bench mode fills in: the machine, then figures per size."""
    return {"machine": {"accel_note": "TCG here (nested KVM cannot boot a stock guest); real hosts use KVM",
                        "cores": os.cpu_count(), "kernel": os.uname().release},
            "sizes": {}, "skipped": {}}


def add_host_baseline(results, work, sizes, runs):
    """Adds runc + CRIU on the host, no VM, beside cocoon's figures of each size,
    or the reason it was skipped."""
    print("  measuring the host baseline (runc + CRIU 4.1.1, no VM) ...", flush=True)
    host, why = measure_host(work, sizes, runs)
    if host:
        for mib, figures in host.items():
            if mib in results["sizes"]:  # a size cocoon failed at has no figures
                results["sizes"][mib].update(figures)
    else:
        results["skipped"]["host_runc_baseline"] = why


def measure_host(work, sizes, runs):
    """Returns (results, None) or (None, the reason it was skipped)."""
    if not shutil.which("runc"):
        return None, "runc is not installed"
    r = subprocess.run(["sh", str(REPO / "bench" / "host-criu.sh")], capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr.strip() or "bench/host-criu.sh failed"
    h = HostRunc(work, r.stdout.strip())
    out = {}
    try:
        for mib in sizes:
            res = {"host_frozen": [], "host_total": [], "host_restore": []}
            for run in range(runs):
                cid = f"host{mib}x{run}"
                h.start(cid, mib)
                try:
                    base = h.work / cid
                    # Warm-up, as for the VM figures; then the measured one.
                    h.checkpoint(cid, base / "warm", base / "warm-work")
                    total, frozen = h.checkpoint(cid, base / "img", base / "work")
                    res["host_total"].append(total)
                    res["host_frozen"].append(frozen)
                finally:
                    h.delete(cid)
                res["host_restore"].append(h.restore(cid, base / "img", base / "rwork"))
                h.delete(cid)
                shutil.rmtree(base, ignore_errors=True)
            out[str(mib)] = {k: stat(v) for k, v in res.items()}
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        for c in list(h.lines):
            h.delete(c)
        return None, f"the host baseline failed: {e}"
    return out, None


def med(d, key):
    v = d.get(key)
    return v["median"] if v else None


def ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


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
    ap.add_argument("--layout-only", action="store_true",
                    help="only the engines' layout at the largest size (a targeted run)")
    ap.add_argument("--baseline-build", metavar="DIR",
                    help="with --layout-only: the same layouts with DIR/cocoon too, side by side")
    args = ap.parse_args()
    if args.network_only:
        return network_only(args)
    if args.routes_only:
        return routes_only(args)
    if args.template_only:
        return template_only(args)
    if args.vmsnap_only:
        return vmsnap_only(args)
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
            for d in (bench.root.iterdir() if bench.root.exists() else []):
                bench.delete(d.name)
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
        for d in (b.root.iterdir() if b.root.exists() else []):
            b.delete(d.name)
        shutil.rmtree(work, ignore_errors=True)
    results["templates"] = template_ratios(results)
    results["elapsed_s"] = round(time.time() - t_start, 1)
    pathlib.Path(args.out).write_text(json.dumps(results, indent=2))
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
        for d in (b.root.iterdir() if b.root.exists() else []):
            b.delete(d.name)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=1))
    return 0


def fmt(d, key):
    v = d.get(key)
    if not v:
        return "-"
    return f"{v['median']:.0f} ({v['min']:.0f}-{v['max']:.0f})"


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
