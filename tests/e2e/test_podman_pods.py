"""podman pods on cocoon, driven as a user does (no runtime flags): the
infra container boots the pod's VM, every container of the pod runs in it
(docs/pods.md). The infra image is mostly the test image with an
entrypoint that sleeps, as podman's default pause image does; one test runs
podman's own default infra image (built locally: no registry is reached)."""
import pathlib
import time

from conftest import pids_mentioning, qemu_pids, wait_for
from podman_util import image_tar, podman  # noqa: F401  (the fixture)
from test_podman import run_in
from test_podman_network import get

PAUSE = "localhost/cocoon-pause:latest"
PORT = 8080
SERVE = ("mkdir -p /www && echo hello from the web container > /www/index.html && "
         f"exec busybox httpd -f -p 127.0.0.1:{PORT} -h /www")
FETCH = f"printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 {PORT}"


def pause_image(podman):
    podman.image
    podman.check("import", "--change", "ENV=PATH=/bin",
                 "--change", 'ENTRYPOINT=["/bin/payload","sleep","100000"]',
                 str(image_tar(podman.tmp)), PAUSE, timeout=120)
    return PAUSE


def new_vms(before):
    return sorted(set(qemu_pids()) - before)


def pod_ps(podman):
    """name -> (status, number of containers), from `podman pod ps`."""
    out = podman.check("pod", "ps", "--format", "{{.Name}} {{.Status}} {{.NumberOfContainers}}").stdout
    return {p[0]: (p[1], int(p[2])) for p in (line.split() for line in out.splitlines()) if len(p) == 3}


def fetch(podman, pod):
    """The page, fetched over the pod's loopback from a container of its own."""
    r = podman.run("run", "--rm", "--pod", pod, podman.image, "sh", "-c", FETCH)
    return r.stdout if r.returncode == 0 and "hello from the web container" in r.stdout else None


def test_podman_pod_is_one_vm_with_localhost_and_ipc(podman):
    before = set(qemu_pids())
    pause = pause_image(podman)
    podman.check("pod", "create", "--name", "p1", "--infra-image", pause)
    podman.check("run", "-d", "--pod", "p1", "--name", "web", podman.image, "sh", "-c", SERVE)
    assert len(new_vms(before)) == 1, "the infra container boots the pod's VM, web runs in it"
    infra = podman.check("pod", "inspect", "--format", "{{.InfraContainerID}}", "p1").stdout.strip()
    assert infra

    # localhost between the pod's containers (a third one, in the pod too).
    assert wait_for(lambda: fetch(podman, "p1"), timeout=60), "no page over the pod's loopback"
    # IPC: a SysV segment and a /dev/shm file made by one, read by another.
    podman.check("exec", "web", "sh", "-c", "payload shm-put 4711 sysv-of-web && echo file-of-web > /dev/shm/f")
    r = podman.check("run", "--rm", "--pod", "p1", podman.image, "sh", "-c",
                     "payload shm-get 4711; cat /dev/shm/f")
    assert r.stdout.splitlines() == ["sysv-of-web", "file-of-web"], r.stdout + r.stderr
    # A member's own stdio and exit status reach podman (its own shim).
    r = podman.run("run", "--rm", "--pod", "p1", podman.image, "sh", "-c",
                   "echo to-stdout; echo to-stderr >&2; exit 3")
    assert (r.returncode, r.stdout, r.stderr.strip().splitlines()[-1:]) == (3, "to-stdout\n", ["to-stderr"]), r
    assert len(new_vms(before)) == 1, "one VM for the pod"

    # A second pod is a second VM: VMs == pods.
    podman.check("pod", "create", "--name", "p2", "--infra-image", pause)
    podman.check("run", "-d", "--pod", "p2", "--name", "other", podman.image, "payload", "sleep", "1000")
    assert len(new_vms(before)) == 2
    pods = pod_ps(podman)
    assert pods["p1"] == ("Running", 2), pods
    assert pods["p2"] == ("Running", 2), pods
    podman.check("pod", "rm", "--force", "p2")
    assert wait_for(lambda: len(new_vms(before)) == 1, timeout=30), "p2's VM outlived its pod"

    # stop, start: the pod's VM goes and comes back, web serves again.
    podman.check("pod", "stop", "--time", "2", "p1", timeout=120)
    assert wait_for(lambda: new_vms(before) == [], timeout=30), "a stopped pod keeps no VM"
    assert pod_ps(podman)["p1"][0] == "Exited"
    podman.check("pod", "start", "p1", timeout=120)
    assert pod_ps(podman)["p1"] == ("Running", 2)
    assert len(new_vms(before)) == 1
    assert wait_for(lambda: fetch(podman, "p1"), timeout=60), "no page after pod start"

    # rm: nothing left (VM, shim, share).
    podman.check("pod", "rm", "--force", "p1", timeout=120)
    assert "p1" not in pod_ps(podman)
    assert wait_for(lambda: new_vms(before) == [], timeout=30), "a VM outlived the pod"
    assert wait_for(lambda: not [p for p in pids_mentioning(infra) if is_cocoon(p)], timeout=30), \
        "a shim of the pod is left"
    assert not list(pathlib.Path("/proc/self/mountinfo").read_text().split(infra)[1:]), \
        "a mount of the pod is left in the host's mount table"


def test_podman_pod_with_podmans_own_infra_image_answers_on_its_pod_ip(podman):
    """`podman pod create` as a user types it, with no --infra-image:
    podman 4.3 builds its own localhost/podman-pause image from the host's
    catatonit (no registry is reached) and runs `catatonit -P` as the infra
    container, which boots the pod's VM. The pod IP (the infra container's
    address on podman's default network) answers from the host with a
    member's page, and the members reach it over localhost."""
    before = set(qemu_pids())
    podman.check("pod", "create", "--name", "dp", timeout=300)
    podman.check("run", "-d", "--pod", "dp", "--name", "dweb", podman.image, "sh", "-c",
                 SERVE.replace(f"127.0.0.1:{PORT}", str(PORT)))
    vms = new_vms(before)
    assert len(vms) == 1, "the infra container boots the pod's VM, dweb runs in it"
    infra = podman.check("pod", "inspect", "--format", "{{.InfraContainerID}}", "dp").stdout.strip()
    image = podman.check("inspect", "--format", "{{.ImageName}}", infra).stdout.strip()
    assert image.startswith("localhost/podman-pause:"), image
    assert status_of(podman, infra) == "running"
    ip = podman.check("inspect", "--format", "{{.NetworkSettings.IPAddress}}", infra).stdout.strip()
    assert ip.startswith("10.88."), f"not on podman's default network: {ip!r}"
    page = wait_for(lambda: get(ip, PORT), timeout=90)
    assert page and "hello from the web container" in page, f"no page at the pod IP {ip}: {page!r}"
    assert wait_for(lambda: fetch(podman, "dp"), timeout=60), "no page over the pod's loopback"
    assert new_vms(before) == vms, "one VM for the pod"
    podman.check("pod", "rm", "--force", "dp", timeout=120)
    assert wait_for(lambda: new_vms(before) == [], timeout=30), "a VM outlived the pod"
    assert wait_for(lambda: not [p for p in pids_mentioning(infra) if is_cocoon(p)], timeout=30), \
        "a shim or keeper of the pod is left"


def status_of(podman, name):
    return podman.check("inspect", "--format", "{{.State.Status}}", name).stdout.strip()


def test_podman_infra_stopped_first_keeps_the_pods_vm(podman):
    """The pod's VM lives until its last container is gone
    (docs/pods.md "Lifetimes"): `podman stop` of the infra container alone
    stops it (podman sees its exit), and the app containers run on in the
    VM, on the pod's loopback; removing them one by one keeps the VM until
    the last. podman itself refuses `podman rm` of an infra container (that
    order is covered with cocoon's own CLI and ctr)."""
    before = set(qemu_pids())
    pause = pause_image(podman)
    podman.check("pod", "create", "--name", "pk", "--infra-image", pause)
    podman.check("run", "-d", "--pod", "pk", "--name", "pkweb", podman.image, "sh", "-c", SERVE)
    podman.check("run", "-d", "--pod", "pk", "--name", "pkcli", podman.image, "payload", "sleep", "100000")
    infra = podman.check("pod", "inspect", "--format", "{{.InfraContainerID}}", "pk").stdout.strip()
    assert len(new_vms(before)) == 1

    podman.check("stop", "--time", "2", infra, timeout=120)
    assert status_of(podman, infra) == "exited"
    assert status_of(podman, "pkweb") == "running" and status_of(podman, "pkcli") == "running"
    assert len(new_vms(before)) == 1, "the VM went with the infra container"
    r = podman.run("exec", "pkcli", "sh", "-c", FETCH)
    assert "hello from the web container" in r.stdout, r.stdout + r.stderr
    r = podman.run("rm", "--force", infra)
    assert r.returncode != 0 and "infra" in r.stderr, r.stdout + r.stderr

    podman.check("rm", "--force", "--time", "1", "pkcli", timeout=120)
    assert len(new_vms(before)) == 1 and status_of(podman, "pkweb") == "running"
    podman.check("rm", "--force", "--time", "1", "pkweb", timeout=120)
    assert wait_for(lambda: new_vms(before) == [], timeout=10), "the VM outlived the pod's last container"
    podman.check("pod", "rm", "--force", "pk", timeout=120)
    assert wait_for(lambda: not [p for p in pids_mentioning(infra) if is_cocoon(p)], timeout=30), \
        "a shim or keeper of the pod is left"


def test_podman_pod_start_after_its_infra_stopped_first(podman):
    """`podman stop <infra>` while app containers run, then `podman pod
    start`: podman removes the stopped infra container from the runtime
    (`cocoon delete`) and creates it again under the same id. That id was
    held by the directory the pod's VM still needs, and `pod start` failed
    with "No such file or directory" (rev16b M1). Now the kept directory
    moves out of the id's way: the infra container comes back in a VM of
    its own (podman gave it a new network namespace), the app containers
    run on in theirs, as with runc they run on in the old network
    namespace (docs/pods.md "Lifetimes"); `pod stop` then ends both VMs."""
    before = set(qemu_pids())
    pause = pause_image(podman)
    podman.check("pod", "create", "--name", "ps", "--infra-image", pause)
    podman.check("run", "-d", "--pod", "ps", "--name", "psweb", podman.image, "sh", "-c", SERVE)
    podman.check("run", "-d", "--pod", "ps", "--name", "pscli", podman.image, "payload", "sleep", "100000")
    infra = podman.check("pod", "inspect", "--format", "{{.InfraContainerID}}", "ps").stdout.strip()
    first = new_vms(before)
    assert len(first) == 1

    podman.check("stop", "--time", "2", infra, timeout=120)
    assert status_of(podman, infra) == "exited"
    podman.check("pod", "start", "ps", timeout=120)
    assert status_of(podman, infra) == "running"
    assert pod_ps(podman)["ps"] == ("Running", 3)
    vms = new_vms(before)
    assert len(vms) == 2 and first[0] in vms, f"the members' VM {first}, now {vms}"
    r = podman.run("exec", "pscli", "sh", "-c", FETCH)
    assert "hello from the web container" in r.stdout, r.stdout + r.stderr

    podman.check("pod", "stop", "--time", "2", "ps", timeout=180)
    assert wait_for(lambda: new_vms(before) == [], timeout=30), "a VM outlived the stopped pod"
    podman.check("pod", "rm", "--force", "ps", timeout=120)
    assert wait_for(lambda: not [p for p in pids_mentioning(infra) if is_cocoon(p)], timeout=30), \
        "a shim or keeper of the pod is left"


def is_cocoon(pid):
    try:
        return pathlib.Path(f"/proc/{pid}/exe").resolve().name == "cocoon"
    except OSError:
        return False


def test_podman_pod_vm_sized_from_pod_create_memory_and_cpus(podman):
    """`podman pod create --memory/--cpus` limits the pod's cgroup, the parent
    of each container's cgroupsPath: the pod's VM is sized from it, and a
    container whose limit does not fit in what is left is refused."""
    before = set(qemu_pids())
    pause = pause_image(podman)
    podman.check("pod", "create", "--name", "sz", "--infra-image", pause, "--memory", "300m", "--cpus", "2")
    podman.check("run", "-d", "--pod", "sz", "--name", "small", "-m", "100m", podman.image,
                 "payload", "sleep", "1000")
    vms = new_vms(before)
    assert len(vms) == 1
    args = pathlib.Path(f"/proc/{vms[0]}/cmdline").read_bytes().decode().split("\0")
    # 300 MiB for the pod + the guest's 128 + 300 of checkpoint headroom.
    assert args[args.index("-m") + 1] == "728", args
    assert args[args.index("-smp") + 1] == "2", args
    r = podman.run("run", "-d", "--pod", "sz", "--name", "big", "-m", "250m", podman.image,
                   "payload", "sleep", "1000")
    assert r.returncode != 0, r.stdout
    assert "its memory limit of 250 MiB does not fit in pod" in r.stderr, r.stderr
    assert "the pod's containers have 300 MiB (the limits of its pod's cgroup" in r.stderr, r.stderr
    assert "100 MiB of it taken by the others" in r.stderr, r.stderr
    assert new_vms(before) == vms
    assert podman.check("inspect", "--format", "{{.State.Status}}", "small").stdout.strip() == "running"
    podman.check("pod", "rm", "--force", "sz", timeout=120)
    assert wait_for(lambda: new_vms(before) == [], timeout=30), "a VM outlived the pod"


def rounds(podman, name):
    """The rounds memhog has printed so far."""
    return [int(line.split()[-1]) for line in podman.run("logs", name).stdout.splitlines()
            if line.startswith("memhog ") and line.split()[-1].isdigit()]


def test_podman_pod_with_a_memory_limit_survives_a_member_that_uses_it(podman):
    """`podman pod create --memory 300m`, and a member that fills 200 MiB of
    it: the pod runs on, as under runc. conmon (so the shim and keeper) sits
    in the pod's 300 MiB host cgroup, while the pod's VM needs more than that
    (docs/pods.md "Pod sizing"): QEMU is moved out of it into cocoon's
    overhead cgroup (docs/resources.md), or the host OOM-kills the VM and the
    whole pod exits 137 (rev16c F1)."""
    before = set(qemu_pids())
    pause = pause_image(podman)
    podman.check("pod", "create", "--name", "om", "--infra-image", pause, "--memory", "300m")
    podman.check("run", "-d", "--pod", "om", "--name", "hog", "-m", "250m", podman.image,
                 "payload", "memhog", "200")
    vms = new_vms(before)
    assert len(vms) == 1
    infra = podman.check("pod", "inspect", "--format", "{{.InfraContainerID}}", "om").stdout.strip()
    assert wait_for(lambda: rounds(podman, "hog"), timeout=180), podman.run("logs", "hog").stdout
    first = rounds(podman, "hog")[-1]
    time.sleep(20)
    state = {n: podman.check("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}",
                             n).stdout.strip() for n in ("hog", infra)}
    assert state == {"hog": "running 0", infra: "running 0"}, state
    assert new_vms(before) == vms, "the pod's VM was replaced or is gone"
    assert rounds(podman, "hog")[-1] >= first + 3, podman.run("logs", "hog").stdout
    cg = pathlib.Path(f"/proc/{vms[0]}/cgroup").read_text()
    assert f"/cocoon.overhead/{infra}\n" in cg, cg
    podman.check("pod", "rm", "--force", "om", timeout=120)
    assert wait_for(lambda: new_vms(before) == [], timeout=30), "a VM outlived the pod"
    left = [pathlib.Path(f"/sys/fs/cgroup{h}/cocoon.overhead/{infra}") for h in ("", "/memory", "/cpu")]
    assert wait_for(lambda: not [d for d in left if d.exists()], timeout=10), "its overhead cgroup is left"


def numbers(podman, name):
    return [int(x) for x in podman.run("logs", name).stdout.split() if x.isdigit()]


def test_podman_checkpoint_and_restore_of_a_pod_member(podman):
    """`podman container checkpoint` / `restore` of one container of a pod
    (podman 4.3 allows it when the container's only dependency is the infra
    container): it is dumped and restored in the running pod's VM, and comes
    back in the pod's network and IPC namespaces."""
    before = set(qemu_pids())
    pause = pause_image(podman)
    podman.check("pod", "create", "--name", "cp", "--infra-image", pause)
    podman.check("run", "-d", "--pod", "cp", "--name", "web", podman.image, "sh", "-c", SERVE)
    podman.check("run", "-d", "--pod", "cp", "--name", "cnt", podman.image, "sh", "-c",
                 "payload shm-put 31 pod-sysv && exec payload counter 200")
    vms = new_vms(before)
    assert len(vms) == 1
    assert wait_for(lambda: len(numbers(podman, "cnt")) >= 3, timeout=60)
    web_pid = podman.check("inspect", "--format", "{{.State.Pid}}", "web").stdout.strip()

    r = podman.run("container", "checkpoint", "cnt", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert podman.check("inspect", "--format", "{{.State.Status}}", "cnt").stdout.strip() == "exited"
    n = len(numbers(podman, "cnt"))
    assert new_vms(before) == vms, "the pod's VM runs on"

    r = podman.run("container", "restore", "cnt", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert new_vms(before) == vms, "restored into the pod's VM"
    assert wait_for(lambda: len(numbers(podman, "cnt")) >= n + 3, timeout=60)
    got = numbers(podman, "cnt")
    assert got == list(range(got[0], got[0] + len(got))), f"the counter restarted or skipped: {got}"
    r = podman.check("exec", "cnt", "sh", "-c", "payload shm-get 31; " + FETCH)
    assert r.stdout.splitlines()[0] == "pod-sysv", r.stdout
    assert "hello from the web container" in r.stdout, r.stdout
    assert podman.check("inspect", "--format", "{{.State.Pid}}", "web").stdout.strip() == web_pid
    podman.check("pod", "rm", "--force", "cp", timeout=120)
    assert wait_for(lambda: new_vms(before) == [], timeout=30), "a VM outlived the pod"


def test_podman_pod_member_oom_kill_reaches_its_conmon_only(podman):
    """A container of a pod OOM-killed in the pod's VM (its own --memory
    there): its conmon gets the OOM event (conmon 2.1.6 marks it with a file
    `oom` in podman's working directory, docs/resources.md), the conmon of
    another member killed from the host gets none, and the pod runs on."""
    before = set(qemu_pids())
    pause = pause_image(podman)
    podman.check("pod", "create", "--name", "om", "--infra-image", pause)
    sv, hog = podman.tmp / "cwd-sv", podman.tmp / "cwd-hog"
    r = run_in(podman, sv, "run", "-d", "--pod", "om", "--name", "sv", "-m", "64m", podman.image,
               "payload", "counter", "100")
    assert r.returncode == 0, r.stderr
    r = run_in(podman, hog, "run", "--pod", "om", "--name", "hog", "-m", "64m", podman.image,
               "payload", "memhog", "200")
    assert r.returncode == 137, r.stdout + r.stderr
    assert (hog / "oom").exists(), "the member's conmon got no OOM event"
    assert len(new_vms(before)) == 1, "one VM for the pod"
    # The pod runs on ("Degraded" only as one of its containers exited).
    infra = podman.check("pod", "inspect", "--format", "{{.InfraContainerID}}", "om").stdout.strip()
    for c in (infra, "sv"):
        assert podman.check("inspect", "--format", "{{.State.Status}}", c).stdout.strip() == "running"
    podman.check("kill", "--signal", "KILL", "sv")
    podman.run("wait", "sv", timeout=120)
    assert not (sv / "oom").exists(), "an OOM mark for a member that had no OOM"
    podman.check("pod", "rm", "--force", "om", timeout=120)
    assert wait_for(lambda: new_vms(before) == [], timeout=30), "a VM outlived the pod"


def state_of(podman, name):
    return podman.check("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}",
                        name).stdout.strip()


def test_podman_pod_memory_limit_holds_for_its_containers_together(podman):
    """`podman pod create --memory 300m` is a limit on the pod's containers
    together, as under runc (the pod's cgroup), not only the size of its VM
    (728 MiB): in the guest they sit beneath a cgroup of the pod with its
    300 MiB (docs/pods.md "The pod's limits in the guest"). Two members
    without a limit of their own each fill 200 MiB: one of them is
    OOM-killed in the guest, and the VM, the infra container and the other
    member run on. Before, both got their 200 MiB (rev16c F3)."""
    before = set(qemu_pids())
    pause = pause_image(podman)
    podman.check("pod", "create", "--name", "pl", "--infra-image", pause, "--memory", "300m")
    cwd = {n: podman.tmp / f"cwd-{n}" for n in ("h1", "h2")}  # conmon's `oom` mark goes there
    r = run_in(podman, cwd["h1"], "run", "-d", "--pod", "pl", "--name", "h1", podman.image,
               "payload", "memhog", "200")
    assert r.returncode == 0, r.stderr
    vms = new_vms(before)
    assert len(vms) == 1
    infra = podman.check("pod", "inspect", "--format", "{{.InfraContainerID}}", "pl").stdout.strip()
    assert wait_for(lambda: rounds(podman, "h1"), timeout=180), podman.run("logs", "h1").stdout

    r = run_in(podman, cwd["h2"], "run", "-d", "--pod", "pl", "--name", "h2", podman.image,
               "payload", "memhog", "200")
    assert r.returncode == 0, r.stderr
    # Both filled (main: both printed a round, and ran on) or one killed.
    assert wait_for(lambda: "exited" in state_of(podman, "h1") + state_of(podman, "h2") or
                    rounds(podman, "h2"), timeout=240), podman.run("logs", "h2").stdout
    time.sleep(3)
    states = {n: state_of(podman, n) for n in ("h1", "h2")}
    killed = [n for n, s in states.items() if s == "exited 137"]
    assert len(killed) == 1, states
    alive = "h2" if killed == ["h1"] else "h1"
    assert states[alive] == "running 0", states
    assert wait_for(lambda: rounds(podman, alive), timeout=180), podman.run("logs", alive).stdout
    n = rounds(podman, alive)[-1]
    assert wait_for(lambda: rounds(podman, alive)[-1] >= n + 3, timeout=60), "the other member stopped"
    assert state_of(podman, infra) == "running 0"
    assert new_vms(before) == vms, "the pod's VM was replaced or is gone"
    # The OOM event reaches the killed member's conmon alone.
    assert [n for n in ("h1", "h2") if (cwd[n] / "oom").exists()] == killed
    # The pod's cgroup in the guest, with the pod's limit, above the member's.
    cid = podman.check("inspect", "--format", "{{.Id}}", alive).stdout.strip()
    r = podman.check("exec", alive, "cat", "/proc/self/cgroup", f"/sys/fs/cgroup/pod-{infra}/memory.max")
    assert r.stdout.split() == [f"0::/pod-{infra}/{cid}", str(300 << 20)], r.stdout
    r = podman.run("run", "--rm", "--pod", "pl", podman.image, "payload", "echo", "still-room")
    assert r.returncode == 0 and r.stdout == "still-room\n", r.stdout + r.stderr
    podman.check("pod", "rm", "--force", "pl", timeout=120)
    assert wait_for(lambda: new_vms(before) == [], timeout=30), "a VM outlived the pod"


def test_podman_pod_member_pids_limit_holds_beneath_the_pods_cgroup(podman):
    """podman 4.3's `pod create` has no --pids-limit (nor does CRI carry one:
    the kubelet's podPidsLimit is the pod cgroup's pids.max, which cocoon
    reads too); a member's own `--pids-limit 10` holds in a pod whose
    cgroup has limits, its cgroup beneath the pod's: a fork bomb stops."""
    before = set(qemu_pids())
    pause = pause_image(podman)
    podman.check("pod", "create", "--name", "pp", "--infra-image", pause, "--memory", "300m")
    podman.check("run", "-d", "--pod", "pp", "--name", "fb", "--pids-limit", "10", podman.image,
                 "payload", "forks", "30")
    assert wait_for(lambda: "forked" in podman.run("logs", "fb").stdout, timeout=120)
    line = [x for x in podman.check("logs", "fb").stdout.splitlines() if x.startswith("forked")][0]
    assert line.startswith("forked 9 "), line  # 9 children and payload itself: 10
    infra = podman.check("pod", "inspect", "--format", "{{.InfraContainerID}}", "pp").stdout.strip()
    fb = podman.check("inspect", "--format", "{{.Id}}", "fb").stdout.strip()
    r = podman.check("exec", "fb", "cat", f"/sys/fs/cgroup/pod-{infra}/{fb}/pids.max")
    assert r.stdout.strip() == "10", r.stdout
    assert len(new_vms(before)) == 1, "one VM for the pod"
    podman.check("pod", "rm", "--force", "pp", timeout=120)
    assert wait_for(lambda: new_vms(before) == [], timeout=30), "a VM outlived the pod"
    assert wait_for(lambda: not [p for p in pids_mentioning(infra) if is_cocoon(p)], timeout=30), \
        "a shim or keeper of the pod is left"
