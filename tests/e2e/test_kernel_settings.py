"""Per-container kernel settings of config.json applied inside the guest as
runc applies them on a host (docs/lifecycle.md): process.oomScoreAdj,
through cocoon and through podman, kept across checkpoint and restore;
invalid values refused at create with nothing left behind."""
import json

from conftest import qemu_pids, wait_for, write_bundle
from podman_util import podman  # noqa: F401  (the fixture)
from test_checkpoint import checkpoint, finish, lines, restored, start


def spec_process(**fields):
    def extra(spec):
        spec["process"].update(fields)
    return extra


def read(env, cid, *paths):
    r = env.run("exec", cid, "cat", *paths)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.split()


def test_oom_score_adj_is_the_processes_and_kept_across_a_restore(env):
    b, out = start(env, "adj", ["payload", "counter", "200"], extra=spec_process(oomScoreAdj=500))
    assert wait_for(lambda: len(lines(out)) >= 2)
    # The init's, and an exec's without a value of its own (runc gives an
    # exec the container's).
    assert read(env, "adj", "/proc/1/oom_score_adj", "/proc/self/oom_score_adj") == ["500", "500"]
    # An exec whose process.json says otherwise gets its own.
    proc = json.loads((b.path / "config.json").read_text())["process"]
    proc.update(args=["cat", "/proc/self/oom_score_adj"], oomScoreAdj=-300, terminal=False)
    pf = env.tmp / "proc.json"
    pf.write_text(json.dumps(proc))
    r = env.run("exec", "--process", str(pf), "adj")
    assert r.returncode == 0 and r.stdout.strip() == "-300", r.stdout + r.stderr
    checkpoint(env, "adj", env.tmp / "ck")
    assert wait_for(lambda: env.state("adj")["status"] == "stopped")
    env.run("delete", "adj", check=True)
    out2 = restored(env, "adj", env.tmp / "ck", b)
    n = len(lines(out2))
    assert wait_for(lambda: len(lines(out2)) > n + 1)
    assert read(env, "adj", "/proc/1/oom_score_adj") == ["500"]
    finish(env, "adj")


def test_oom_score_adj_out_of_range_is_refused(env):
    for bad in (1001, -1001):
        b = write_bundle(env.tmp / f"bad{bad}", ["payload", "echo"], extra=spec_process(oomScoreAdj=bad))
        rc, out, err = env.create(f"bad{bad}", b)
        text = err.read_text()
        assert rc != 0 and f"process.oomScoreAdj {bad}" in text and "-1000..1000" in text, text
        assert env.run("state", f"bad{bad}").returncode != 0
    b = write_bundle(env.tmp / "str", ["payload", "echo"], extra=spec_process(oomScoreAdj="5"))
    rc, out, err = env.create("str", b)
    assert rc != 0 and "process.oomScoreAdj: expected an integer" in err.read_text(), err.read_text()
    assert qemu_pids(str(env.tmp)) == []


def test_podman_oom_score_adj(podman):
    # Lowering it needs CAP_SYS_RESOURCE, which podman's default set lacks:
    # it is written before the capabilities are dropped, as runc does.
    r = podman.run("run", "-d", "--name", "oa", "--oom-score-adj", "-500", podman.image,
                   "payload", "counter", "200")
    assert r.returncode == 0, r.stderr
    r = podman.check("exec", "oa", "cat", "/proc/1/oom_score_adj", "/proc/self/oom_score_adj")
    assert r.stdout.split() == ["-500", "-500"], r.stdout
    podman.check("rm", "--force", "--time", "0", "oa")
