#!/bin/sh
# scripts/fetch-vmsnap-vmm.sh: a QEMU and a virtiofsd that can save a whole
# VM with its virtiofs shares mounted (docs/whole-vm.md):
# Debian 13 (trixie)'s qemu-system-x86 (10.0) and virtiofsd
# (1.13, --migration-mode). Debian 12's QEMU 7.2 cannot: its vhost-user-fs
# device is unmigratable and a mounted 9p share blocks migration.
#
# Nothing is installed on the host: scripts/fetch-trixie.sh unpacks the two
# packages and their library closure under $DIR, and $DIR/bin/qemu-system-x86_64 and
# $DIR/bin/virtiofsd are wrappers that run them through their own loader
# (as bench/host-criu.sh does for CRIU). Point cocoon at them with
#   [vm] snapshot_qemu = "$DIR/bin/qemu-system-x86_64"
#        snapshot_virtiofsd = "$DIR/bin/virtiofsd"
# On a host whose own QEMU is >= 9.0 with virtiofsd >= 1.11 none of this is
# needed. Prints $DIR/bin; exits non-zero with the reason otherwise.
set -eu

DIR=${COCOON_VMSNAP_DIR:-/var/cache/cocoon/vmsnap-vmm}
BIN=$DIR/bin

die() {
	echo "fetch-vmsnap-vmm: $*" >&2
	exit 1
}

if [ -x "$BIN/qemu-system-x86_64" ] && [ -x "$BIN/virtiofsd" ] &&
	"$BIN/qemu-system-x86_64" --version >/dev/null 2>&1 && "$BIN/virtiofsd" --version >/dev/null 2>&1; then
	echo "$BIN"
	exit 0
fi
mkdir -p "$DIR"
# One at a time (tests and bench may ask at once); then look again.
exec 8>"$DIR/.bin-lock"
flock 8
if [ -x "$BIN/qemu-system-x86_64" ] && "$BIN/qemu-system-x86_64" --version >/dev/null 2>&1; then
	echo "$BIN"
	exit 0
fi
L=$(sh "$(dirname "$0")/fetch-trixie.sh" "$DIR" qemu-system-x86 virtiofsd) ||
	die "fetching trixie's qemu-system-x86 and virtiofsd failed"
rm -rf "$BIN.new"
mkdir "$BIN.new"
# -L: QEMU's own data (option ROMs, keymaps) from the same package.
cat >"$BIN.new/qemu-system-x86_64" <<W
#!/bin/sh
exec "$L/usr/lib64/ld-linux-x86-64.so.2" --library-path "$L/usr/lib/x86_64-linux-gnu" "$L/usr/bin/qemu-system-x86_64" -L "$L/usr/share/qemu" "\$@"
W
cat >"$BIN.new/virtiofsd" <<W
#!/bin/sh
exec "$L/usr/lib64/ld-linux-x86-64.so.2" --library-path "$L/usr/lib/x86_64-linux-gnu" "$L/usr/libexec/virtiofsd" "\$@"
W
chmod 755 "$BIN.new/qemu-system-x86_64" "$BIN.new/virtiofsd"
rm -rf "$BIN"
mv "$BIN.new" "$BIN"
"$BIN/qemu-system-x86_64" --version >/dev/null 2>&1 || die "the unpacked QEMU does not run"
"$BIN/virtiofsd" --version >/dev/null 2>&1 || die "the unpacked virtiofsd does not run"
echo "$BIN"
