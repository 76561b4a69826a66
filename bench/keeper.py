#!/usr/bin/python3
"""What the pod keeper costs (docs/pods.md "Lifetimes", issue 16): every
container that may become a pod's sandbox forks a keeper at create, which
owns the VM while the shim only waits. Side by side in one run, alternating,
a plain container with the keeper (the default) and without it
(COCOON_KEEPER=off, for this comparison only):

- create_ms: `cocoon create` wall time (the VM's boot and the container's
  create in the guest, plus the fork);
- delete_ms: `cocoon delete --force` wall time of the running container;
- cocoon_rss_kib / cocoon_pss_kib: the host processes of cocoon for the
  container, shim and keeper (not QEMU), once it runs: RSS counts pages
  the keeper shares with the shim after the fork twice, PSS splits them;
- procs: how many such processes.

The same again with the hostile tier's fake VMM (tests/helpers/hostile-vmm.c,
no guest, no boot), where cocoon's own share of create is not hidden by the
boot's few seconds. Writes --out (JSON) and prints the medians and ratios.

    bench/keeper.py [--runs N] [--fake-runs N] [--out FILE]
"""
import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from harness import BUILD, Bench, med, ratio, stat  # noqa: E402

VARIANTS = {"keeper": {}, "no_keeper": {"COCOON_KEEPER": "off"}}


def kib(pid, field, path="status"):
    try:
        for line in open(f"/proc/{pid}/{path}"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def cocoon_procs(b, cid):
    """The shim (state's pid) and, when there is one, the keeper."""
    st = json.loads(b.cocoon("state", cid).stdout)
    pids = [st["pid"]]
    keeper = b.root / cid / "keeper"
    if keeper.exists():
        pids.append(int(keeper.read_text().split()[0]))
    return pids


def measure_one(b, args):
    b.n += 1
    cid = f"k{b.n}"
    b.set_args(args)
    t0 = time.monotonic()
    r = b.cocoon("create", "--bundle", str(b.bundle), cid, out=b.work / f"{cid}.out")
    create_ms = (time.monotonic() - t0) * 1000
    if r.returncode:
        raise RuntimeError(r.stderr)
    if b.cocoon("start", cid).returncode:
        raise RuntimeError(f"start {cid}")
    time.sleep(0.5)  # the shim's and keeper's start-up allocations are done
    pids = cocoon_procs(b, cid)
    rss = sum(kib(p, "VmRSS") or 0 for p in pids)
    pss = sum(kib(p, "Pss", "smaps_rollup") or 0 for p in pids)
    t0 = time.monotonic()
    b.delete(cid)
    delete_ms = (time.monotonic() - t0) * 1000
    return {"create_ms": create_ms, "delete_ms": delete_ms, "cocoon_rss_kib": rss,
            "cocoon_pss_kib": pss, "procs": len(pids)}


def fake_vmm_bench(work, env):
    """A Bench whose VMM is the hostile tier's fake (no guest)."""
    b = Bench(work, 128, env=env)
    b.config.write_text(f"""[vm]
kernel = "/dev/null"
initrd = "/dev/null"
qemu = "{BUILD / 'tests' / 'unit' / 'hostile-vmm'}"
accel = "tcg"
""")
    b.env.update(HOSTILE_MODE="good", HOSTILE_CANARY=str(work / "canary"), HOSTILE_LOG=str(work / "vmm.log"))
    (work / "canary").mkdir(exist_ok=True)
    return b


def run(kind, runs, make_bench, args):
    work = pathlib.Path(tempfile.mkdtemp(prefix=f"cocoon-bench-keeper-{kind}."))
    benches = {n: make_bench(work / n, env) for n, env in VARIANTS.items()}
    res = {n: {} for n in benches}
    try:
        for i in range(runs + 1):
            for n, b in benches.items():
                m = measure_one(b, args)
                if i == 0:
                    continue  # cold caches: not counted
                for k, v in m.items():
                    res[n].setdefault(k, []).append(v)
    finally:
        for b in benches.values():
            for d in (b.root.iterdir() if b.root.exists() else []):
                if not d.name.startswith("."):
                    b.delete(d.name)
        shutil.rmtree(work, ignore_errors=True)
    out = {n: {k: stat(v) for k, v in d.items()} for n, d in res.items()}
    out["ratios"] = {k: ratio(med(out["keeper"], k), med(out["no_keeper"], k))
                     for k in out["keeper"]}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="per variant, with real VMs")
    ap.add_argument("--fake-runs", type=int, default=20, help="per variant, with the fake VMM")
    ap.add_argument("--out", default=str(BUILD / "bench-keeper.json"))
    a = ap.parse_args()
    results = {}
    if a.fake_runs:
        results["fake_vmm"] = run("fake", a.fake_runs, fake_vmm_bench, ["sh"])
    if a.runs:
        results["vm"] = run("vm", a.runs, lambda w, env: Bench(w, 256, env=env),
                            ["/bin/payload", "sleep", "100000"])
    pathlib.Path(a.out).write_text(json.dumps(results, indent=2))
    for kind, r in results.items():
        for n in VARIANTS:
            print(f"{kind:8} {n:9} " + "  ".join(
                f"{k} {med(r[n], k):.1f} [{r[n][k]['min']:.1f}-{r[n][k]['max']:.1f}]" for k in r[n]))
        print(f"{kind:8} keeper / no_keeper: " + "  ".join(f"{k} {v}" for k, v in r["ratios"].items()))
    print(f"results written to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
