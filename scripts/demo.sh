#!/bin/sh
# make demo: the main job. A counting container in its own VM is
# checkpointed (first --leave-running, then for good), its VM destroyed, and
# it is restored in a brand-new VM where the counter carries on.
set -eu
COCOON=$(realpath "${1:-build/cocoon}")
PAYLOAD=$(dirname "$COCOON")/payload
WORK=$(mktemp -d /tmp/cocoon-demo.XXXXXX)
ROOT="$WORK/state"
C="$COCOON --root $ROOT"

cleanup() {
	$C delete --force demo >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

ms() { date +%s%3N; }
step() { printf '\n== %s\n' "$*"; }

step "host readiness"
"$COCOON" check

step "a bundle with a counting process (rootfs: busybox + the test payload)"
mkdir -p "$WORK/bundle/rootfs/bin"
cp /bin/busybox "$PAYLOAD" "$WORK/bundle/rootfs/bin/"
ln -s busybox "$WORK/bundle/rootfs/bin/sh"
(cd "$WORK/bundle" && "$COCOON" spec)
sed -i 's/"terminal": true/"terminal": false/; s/"args": \["sh"\]/"args": ["payload", "counter", "250"]/' \
	"$WORK/bundle/config.json"
echo "bundle: $WORK/bundle"

step "create + start (boots a VM)"
t=$(ms)
$C create --bundle "$WORK/bundle" demo >"$WORK/demo.out" 2>&1 </dev/null
$C start demo
echo "boot + create + start: $(( $(ms) - t )) ms"
sleep 3
echo "counter so far: $(tail -n 1 "$WORK/demo.out")"

step "checkpoint --leave-running (the container keeps counting)"
$C checkpoint --leave-running --image-path "$WORK/ck-live" demo
sleep 1
echo "still counting: $(tail -n 1 "$WORK/demo.out")"

step "checkpoint (the container stops once its images are safe)"
$C checkpoint --image-path "$WORK/ck-final" --work-path "$WORK/work" demo
last=$(grep -v terminated "$WORK/demo.out" | tail -n 1)
echo "last value before the checkpoint: $last"
echo "image size: $(du -sh "$WORK/ck-final" | cut -f1) ($(ls "$WORK/ck-final" | wc -l) files)"

step "destroy the VM"
$C delete demo
echo "qemu processes of this demo left: $(pgrep -f "qemu-system-x86_64.*$ROOT" | wc -l)"

step "restore into a new VM"
t=$(ms)
$C restore --image-path "$WORK/ck-final" --bundle "$WORK/bundle" --detach demo \
	>"$WORK/restored.out" 2>&1 </dev/null
echo "restore (boot + criu restore): $(( $(ms) - t )) ms"
sleep 3
first=$(head -n 1 "$WORK/restored.out")
echo "first value after restore: $first (expected $((last + 1)))"
echo "now: $(tail -n 1 "$WORK/restored.out")"
$C state demo | grep -E '"(status|pid)"'
if [ "$first" -ne $((last + 1)) ]; then
	echo "demo FAILED: the counter did not carry on" >&2
	exit 1
fi
echo
echo "demo OK: the counter carried on in a new VM"
