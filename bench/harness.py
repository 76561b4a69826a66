"""The benchmark's harness (bench.py): where cocoon is, a Bench that drives
it with --print-stats under a state root and config of its own, the
statistics every figure is reported with (median, min, max), the boot and
restore measurements the other parts share, and the host baseline (runc
and CRIU without a VM)."""
import json
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import time

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
                 cocoon=None, extra_vm=""):
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
        self.config.write_text(f"{mode}[vm]\nmemory_mib = {memory_mib}\nshared_fs = \"{shared_fs}\"\n{vmm}{extra_vm}")
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

    def delete_all(self):
        """Every container left in this bench's state root, deleted: a run's
        clean-up, also after a failure."""
        for d in (self.root.iterdir() if self.root.exists() else []):
            self.delete(d.name)


def med(d, key):
    v = d.get(key)
    return v["median"] if v else None


def ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


def fmt(d, key):
    v = d.get(key)
    if not v:
        return "-"
    return f"{v['median']:.0f} ({v['min']:.0f}-{v['max']:.0f})"


def add_restore(res, prefix, s):
    """A restore's figures (its --print-stats) into res: PREFIX_total,
    PREFIX_boot and PREFIX_criu."""
    res[prefix + "_total"].append(s["total_ms"])
    res[prefix + "_boot"].append(s["boot_ms"])
    res[prefix + "_criu"].append(s["criu_ms"])


def add_exit(res, s):
    """An exit-mode checkpoint's figures (its --print-stats) into res:
    exit_frozen, exit_total and image_bytes."""
    res["exit_frozen"].append(s["frozen_ms"])
    res["exit_total"].append(s["total_ms"])
    res["image_bytes"].append(s["bytes"])


def memhog_exit_checkpoint(b, mib, name, res=None, warm=False):
    """A memhog of mib MiB started in b and checkpointed in exit mode into
    b.work/name, then deleted; its figures into res (add_exit) when given.
    warm: a dump into guest tmpfs first, discarded, so that the measured one
    does not pay for cold caches. Returns (its id, the image path)."""
    cid, out = b.start(["payload", "memhog", str(mib)])
    p = b.work / name
    try:
        b.wait_lines(out, 1)
        if warm:
            b.checkpoint(cid, "--leave-running", "--bench-route", "floor")
        s = b.checkpoint(cid, path=p)
        if res is not None:
            add_exit(res, s)
    finally:
        b.delete(cid)
    return cid, p


def cold_and_template_restore(b, res, rid, p, mib, template=True, require_template=True):
    """CRIU checkpoint p restored as rid into a fresh VM (res's restore_*,
    add_restore), then, with template, as rid + "tmpl" into a VM started
    from the VM template of the restore's shape (tmpl_restore_*; the first
    such restore of b builds the template as rid + "warm" and is not
    measured). A template restore that did not start from a template raises
    with require_template, else is left out of res. Each restored
    container is deleted."""
    s = b.restore(rid, p)
    add_restore(res, "restore", s)
    b.delete(rid)
    if not template:
        return
    s = template_restore(b, rid + "tmpl", p, rid + "warm")
    if s.get("template"):
        add_restore(res, "tmpl_restore", s)
    elif require_template:
        raise RuntimeError(f"restore {rid}tmpl at {mib} MiB did not start from the VM template")


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


def record_run(path, key, results, argv, t_start):
    """Puts a targeted run's results (bench.py --vmsnap-only or
    --template-only with --record), whole, under key ("vmsnap_run",
    "template_run") in the results file path (bench/results.json), beside
    the full run's figures, which stay as they were: every ratio in it
    compares figures of that one run, and it says when and how it was
    made. A full `make bench` rewrites the whole file (its own run has
    these figures). Written to path.tmp, then renamed over path."""
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = {"command": "bench/bench.py " + " ".join(argv),
                 "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_start)),
                 "note": "a targeted run, separate from the full run's figures in this file",
                 "targets": {k: v[1] for k, v in TARGETS.items() if k.startswith(("vmsnap_", "template_"))},
                 **results}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


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
