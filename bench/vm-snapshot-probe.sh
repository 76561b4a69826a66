#!/bin/sh
# bench/vm-snapshot-probe.sh: can a whole VM be snapshotted with its shares
# mounted? The question behind issue 18's second mode (docs/whole-vm.md).
# Run it under the VM lock; it boots two small VMs.
#
# Debian 12's QEMU 7.2 refuses both of cocoon's shares: a mounted 9p export
# blocks migration and vhost-user-fs is unmigratable. This probe takes
# Debian 13's QEMU and virtiofsd (scripts/fetch-vmsnap-vmm.sh; nothing is
# installed on the host) and checks, with cocoon's guest kernel and modules and a busybox
# init (no agent):
#   1. 9p: a guest with the export mounted; `migrate` must be refused.
#   2. virtiofs: a guest appends a counter to a file it holds open on the
#      share; stop, `migrate` to a file, kill QEMU and virtiofsd, start new
#      ones from the file (-incoming); the same process must carry on, through
#      the same open file, and see the share's new content.
# Prints key=value lines; exits 0 when both hold, 1 otherwise, 2 when it
# could not run (with the reason).
set -u

IMAGE=${COCOON_CACHE_DIR:-/var/cache/cocoon}/image
WORK=$(mktemp -d /tmp/cocoon-vmsnap.XXXXXX)
QPID="" VPID=""

die() {
	echo "vm-snapshot-probe: $*" >&2
	exit 2
}
cleanup() {
	for p in $QPID $VPID; do kill "$p" 2>/dev/null; done
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

[ -f "$IMAGE/vmlinux" ] || die "no guest image in $IMAGE (make image)"
command -v busybox >/dev/null || die "busybox not found"

# Debian 13's qemu-system-x86 and virtiofsd, the ones the whole-VM mode uses.
BIN=$(sh "$(dirname "$0")/../scripts/fetch-vmsnap-vmm.sh") || die "fetching trixie's QEMU and virtiofsd failed"
QEMU_VERSION=$("$BIN/qemu-system-x86_64" --version | head -1) || die "the unpacked QEMU does not run"
VFS_VERSION=$("$BIN/virtiofsd" --version) || die "the unpacked virtiofsd does not run"
echo "qemu=$QEMU_VERSION"
echo "virtiofsd=$VFS_VERSION"

# The guest: cocoon's kernel and boot modules, a busybox init.
mkdir -p "$WORK/ird/bin" "$WORK/ird/m" "$WORK/ird/dev" "$WORK/ird/proc" "$WORK/ird/mnt" "$WORK/boot"
cp "$(command -v busybox)" "$WORK/ird/bin/busybox"
(cd "$WORK/boot" && zcat -f "$IMAGE/initrd.img" | cpio -idm --quiet 'lib/cocoon/boot/*') ||
	die "no boot modules in $IMAGE/initrd.img"
MODS="virtio_ring virtio virtio_mmio fuse virtiofs netfs fscache 9pnet 9pnet_virtio 9p"
for m in $MODS; do
	cp "$WORK/boot/lib/cocoon/boot/$m.ko" "$WORK/ird/m/" || die "module $m is not in the image"
done
cat >"$WORK/ird/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t devtmpfs dev /dev
for m in $MODS; do insmod /m/\$m.ko; done
if grep -q probe.fs=9p /proc/cmdline; then mount -t 9p -o trans=virtio,version=9p2000.L share /mnt
else mount -t virtiofs share /mnt; fi && echo PROBE-MOUNTED
i=0; exec 3>>/mnt/log
while :; do i=\$((i+1)); echo "\$i \$(cat /mnt/stamp)" >&3; sleep 0.2; done
EOF
chmod +x "$WORK/ird/init"
(cd "$WORK/ird" && find . | cpio -o -H newc -R 0:0 --quiet >"$WORK/initrd") || die "packing the initrd failed"

ms() { echo $(($(date +%s%N) / 1000000)); }
qmp() { # socket, commands (one JSON each); prints each reply, events skipped
	python3 - "$@" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rw")
f.readline()
for i, c in enumerate(['{"execute":"qmp_capabilities"}'] + sys.argv[2:]):
    f.write(c + "\n")
    f.flush()
    while True:
        line = f.readline()
        if '"event"' not in line:
            break
    if i:
        print(line.strip())
PY
}
# $1 name, $2 fs (9p|virtiofs), rest: extra QEMU arguments.
qemu() {
	n=$1 fs=$2
	shift 2
	if [ "$fs" = 9p ]; then
		set -- -M microvm,accel=tcg -fsdev "local,id=f,path=$WORK/share,security_model=none" \
			-device virtio-9p-device,fsdev=f,mount_tag=share "$@"
	else
		set -- -object memory-backend-memfd,id=mem,size=256M,share=on -global virtio-mmio.force-legacy=false \
			-M microvm,accel=tcg,memory-backend=mem -chardev "socket,id=vfs,path=$WORK/vfs-$n.sock" \
			-device vhost-user-fs-device,chardev=vfs,tag=share "$@"
	fi
	"$BIN/qemu-system-x86_64" -cpu max -m 256 -smp 1 -nodefaults \
		-no-user-config -display none -no-reboot -chardev "file,id=con,path=$WORK/console-$n.log" \
		-serial chardev:con -kernel "$IMAGE/vmlinux" -initrd "$WORK/initrd" \
		-append "console=ttyS0 quiet panic=-1 probe.fs=$fs" -qmp "unix:$WORK/qmp-$n.sock,server=on,wait=off" \
		"$@" 2>>"$WORK/qemu.err" &
	QPID=$!
}
virtiofsd() {
	"$BIN/virtiofsd" --socket-path="$WORK/vfs-$1.sock" --shared-dir="$WORK/share" \
		--migration-mode=find-paths --log-level=error &
	VPID=$!
	for _ in $(seq 50); do [ -S "$WORK/vfs-$1.sock" ] && return; sleep 0.1; done
	die "virtiofsd made no socket"
}
wait_mounted() {
	for _ in $(seq 300); do grep -q PROBE-MOUNTED "$WORK/console-$1.log" 2>/dev/null && return 0; sleep 0.2; done
	echo "probe: the guest never mounted its share; console and QEMU's errors:" >&2
	tail -n 5 "$WORK/console-$1.log" "$WORK/qemu.err" >&2
	return 1
}
stop() {
	kill "$QPID" 2>/dev/null
	wait "$QPID" 2>/dev/null
	QPID=
	[ -n "$VPID" ] && kill "$VPID" 2>/dev/null && wait "$VPID" 2>/dev/null
	VPID=
}
ok=0

# 0. This host's QEMU (Debian 12: 7.2) with a vhost-user-fs device: its
# refusal, with no guest needed (the device alone blocks migration).
if [ -x /usr/lib/qemu/virtiofsd ] && command -v qemu-system-x86_64 >/dev/null; then
	mkdir "$WORK/share72"
	/usr/lib/qemu/virtiofsd --socket-path="$WORK/vfs72.sock" -o source="$WORK/share72" -o log_level=err &
	VPID=$!
	for _ in $(seq 50); do [ -S "$WORK/vfs72.sock" ] && break; sleep 0.1; done
	echo "host_qemu=$(qemu-system-x86_64 --version | head -1)"
	qemu-system-x86_64 -S -object memory-backend-memfd,id=mem,size=256M,share=on \
		-global virtio-mmio.force-legacy=false -M microvm,accel=tcg,memory-backend=mem -m 256 -nodefaults \
		-no-user-config -display none -chardev "socket,id=vfs,path=$WORK/vfs72.sock" \
		-device vhost-user-fs-device,chardev=vfs,tag=share -qmp "unix:$WORK/qmp-72.sock,server=on,wait=off" \
		2>>"$WORK/qemu.err" &
	QPID=$!
	for _ in $(seq 50); do [ -S "$WORK/qmp-72.sock" ] && break; sleep 0.1; done
	echo "host_virtiofs_migrate=$(qmp "$WORK/qmp-72.sock" \
		"{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"exec:cat >/dev/null\"}}" | tail -1)"
	stop
fi

# 1. 9p mounted in the guest.
mkdir "$WORK/share"
echo first >"$WORK/share/stamp"
qemu 9p 9p
wait_mounted 9p || die "the 9p guest did not come up"
r=$(qmp "$WORK/qmp-9p.sock" "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"file:$WORK/state-9p\"}}" | tail -1)
echo "9p_migrate=$r"
case $r in
*"Migration is disabled"*) echo "9p_blocks_migration=yes" ;;
*) echo "9p_blocks_migration=no" && ok=1 ;;
esac
stop

# 2. virtiofs mounted, a file held open on it.
rm -rf "$WORK/share"
mkdir "$WORK/share"
echo first >"$WORK/share/stamp"
virtiofsd a
qemu a virtiofs
wait_mounted a || die "the virtiofs guest did not come up"
sleep 1
t0=$(ms)
qmp "$WORK/qmp-a.sock" '{"execute":"stop"}' "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"file:$WORK/state\"}}" >/dev/null
for _ in $(seq 600); do
	r=$(qmp "$WORK/qmp-a.sock" '{"execute":"query-migrate"}' | tail -1)
	case $r in *completed* | *failed*) break ;; esac
	sleep 0.1
done
echo "virtiofs_save_ms=$(($(ms) - t0))"
echo "virtiofs_save=$(echo "$r" | grep -o '"status": "[a-z]*"')"
echo "virtiofs_state_bytes=$(stat -c %s "$WORK/state" 2>/dev/null)"
before=$(tail -1 "$WORK/share/log" | cut -d' ' -f1)
echo "counter_at_save=$before"
stop
echo second >"$WORK/share/stamp"
virtiofsd b
t0=$(ms)
qemu b virtiofs -incoming defer
for _ in $(seq 50); do [ -S "$WORK/qmp-b.sock" ] && break; sleep 0.1; done
qmp "$WORK/qmp-b.sock" "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"file:$WORK/state\"}}" >/dev/null
for _ in $(seq 600); do
	r=$(qmp "$WORK/qmp-b.sock" '{"execute":"query-status"}' | tail -1)
	case $r in *inmigrate*) sleep 0.05 ;; *) break ;; esac
done
qmp "$WORK/qmp-b.sock" '{"execute":"cont"}' >/dev/null
echo "virtiofs_restore_ms=$(($(ms) - t0))"
sleep 2
after=$(tail -1 "$WORK/share/log")
echo "after_restore=$after"
stop
n=${after%% *}
# One process counted on, never restarted (a fresh boot would count from 1
# again), through the file it opened before the save.
starts=$(grep -c '^1 ' "$WORK/share/log")
echo "counter_starts=$starts"
case $after in
*second) [ "${n:-0}" -gt "${before:-0}" ] && [ "${before:-0}" -gt 0 ] && [ "$starts" = 1 ] &&
	echo "virtiofs_snapshot_carries_on=yes" ;;
*) false ;;
esac || {
	echo "virtiofs_snapshot_carries_on=no"
	ok=1
	sed 's/^/qemu: /' "$WORK/qemu.err" >&2
}
exit $ok
