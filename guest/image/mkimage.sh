#!/bin/sh
# Builds the cocoon guest image: a Debian kernel and an initramfs holding
# cocoon-agent (as /init), CRIU with the libraries and tools it calls, and
# the kernel modules CRIU and the VM devices need. Everything comes from
# Debian's packages; nothing is downloaded from anywhere else.
#
# Run through `cocoon image build`; see docs/image.md.
#
# The pinned pair: bookworm's 6.1 kernel with bookworm's CRIU 3.17. CRIU has
# to match the kernel it runs on (3.17.1 fails on 6.18 with "vdso: Unexpected
# rt vDSO area bounds"), and this pair was measured to dump and restore.
set -eu

KERNEL_META=linux-image-amd64
KERNEL_SERIES=6.1.
CRIU_SERIES=3.17.
# What the guest loads at boot, in this order; dependencies are resolved from
# modules.dep. crc32c_generic comes before nf_tables: libcrc32c asks the
# crypto API for crc32c, which would need modprobe in the guest, and without
# it nf_tables fails with "unknown symbol".
MODULES="virtio_mmio virtio_console 9pnet_virtio 9p overlay crc32c_generic nf_tables
unix_diag inet_diag tcp_diag udp_diag af_packet_diag netlink_diag tun veth
nf_conntrack_netlink virtiofs virtio_net binfmt_misc"
# The modules the agent loads before it answers (boot_essential() in
# src/guest/modules.c): they travel in the initramfs. Everything else (CRIU,
# its libraries and tools, the other modules) goes into the tools tree,
# which the guest mounts read-only over 9p: the kernel unpacks the
# initramfs byte by byte at every boot, ~0.6 s for 25 MB under TCG.
BOOT_MODULES="virtio virtio_ring virtio_mmio virtio_console netfs fscache 9pnet 9pnet_virtio 9p fuse virtiofs"

die() { echo "cocoon image: $*" >&2; exit 1; }
say() { echo "cocoon image: $*"; }

AGENT='' OUT='' FRAGMENT='' FORCE=0
while [ $# -gt 0 ]; do
	case "$1" in
	--agent) AGENT=$2; shift 2 ;;
	--output) OUT=$2; shift 2 ;;
	--config-fragment) FRAGMENT=$2; shift 2 ;;
	--force) FORCE=1; shift ;;
	*) die "unknown argument $1" ;;
	esac
done
[ -n "$AGENT" ] && [ -x "$AGENT" ] || die "cocoon-agent not found at '$AGENT' (build first)"
[ -n "$OUT" ] || die "--output is required"
[ -r "$FRAGMENT" ] || die "kernel config fragment '$FRAGMENT' not found"
for tool in apt-cache apt-get dpkg-deb dpkg-query depmod modprobe cpio xz ldd sha256sum; do
	command -v $tool >/dev/null || die "$tool is missing (run scripts/setup-host.sh)"
done

# COCOON_GUEST_CRIU_ROOT=DIR: another CRIU for the guest, to measure it
# (docs/image.md, "Trying trixie's CRIU 4.1.1"), never the default: a root
# unpacked by `scripts/fetch-trixie.sh D criu` (DIR is D/root). Its CRIU and
# library closure go to /usr/lib/cocoon-criu with their own loader, and
# /usr/sbin/criu is a wrapper that runs it through that loader, so the
# bookworm tools beside it keep their libraries.
ALT_CRIU=${COCOON_GUEST_CRIU_ROOT:-}
ALT_LD="$ALT_CRIU/usr/lib64/ld-linux-x86-64.so.2"
ALT_LIB="$ALT_CRIU/usr/lib/x86_64-linux-gnu"
if [ -n "$ALT_CRIU" ]; then
	[ -x "$ALT_CRIU/usr/sbin/criu" ] && [ -x "$ALT_LD" ] ||
		die "COCOON_GUEST_CRIU_ROOT=$ALT_CRIU has no usr/sbin/criu with its loader (scripts/fetch-trixie.sh DIR criu)"
	CRIU_VERSION=$("$ALT_LD" --library-path "$ALT_LIB" "$ALT_CRIU/usr/sbin/criu" --version |
		awk '/^Version:/ { print $2 }')
	[ -n "$CRIU_VERSION" ] || die "$ALT_CRIU/usr/sbin/criu does not run"
	CRIU_VERSION="$CRIU_VERSION-alt"
else
	CRIU_VERSION=$(dpkg-query -W -f='${Version}' criu 2>/dev/null) ||
		die "the criu package is not installed (run scripts/setup-host.sh)"
	case "$CRIU_VERSION" in
	$CRIU_SERIES*) ;;
	*) die "criu $CRIU_VERSION is installed, but the guest kernel series $KERNEL_SERIES is pinned with criu $CRIU_SERIES*; see docs/image.md" ;;
	esac
fi

mkdir -p "$OUT"
WORK="$OUT/.work"
# Fetched packages are kept beside the image, shared by all outputs.
DEBS="${COCOON_DEB_CACHE:-$(dirname "$OUT")/debs}"
mkdir -p "$WORK" "$DEBS"

# The kernel package behind the bookworm meta-package, e.g. linux-image-6.1.0-56-amd64.
KPKG=$(apt-cache depends "$KERNEL_META" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
KVERSION=
if [ -n "$KPKG" ]; then
	KVERSION=$(apt-cache policy "$KPKG" | awk '/Candidate:/ { print $2 }')
fi
if [ -z "$KPKG" ] || [ -z "$KVERSION" ] || [ "$KVERSION" = "(none)" ]; then
	# Offline: fall back to a kernel package fetched earlier.
	CACHED=$(ls "$DEBS"/linux-image-*.deb 2>/dev/null | tail -n 1)
	[ -n "$CACHED" ] || die "cannot resolve $KERNEL_META (run 'apt-get update')"
	KPKG=$(dpkg-deb -f "$CACHED" Package)
	KVERSION=$(dpkg-deb -f "$CACHED" Version)
fi
case "$KVERSION" in
$KERNEL_SERIES*) ;;
*) die "$KPKG $KVERSION is not in the pinned $KERNEL_SERIES series; see docs/image.md" ;;
esac
KREL=${KPKG#linux-image-}

KEY=$( (cat "$0" "$AGENT" "$FRAGMENT"; echo "$KPKG $KVERSION criu $CRIU_VERSION $MODULES") | sha256sum | cut -c1-16)
if [ "$FORCE" = 0 ] && [ -f "$OUT/manifest" ] && grep -qx "key=$KEY" "$OUT/manifest" &&
	[ -f "$OUT/vmlinux" ] && [ -f "$OUT/initrd.img" ] && [ -d "$OUT/tools" ]; then
	say "up to date: $OUT (kernel $KREL, criu $CRIU_VERSION, initrd $(du -h "$OUT/initrd.img" | cut -f1))"
	exit 0
fi

DEB="$DEBS/${KPKG}_${KVERSION}_amd64.deb"
DEB=$(echo "$DEB" | sed 's/:/%3a/g')
if [ ! -f "$DEB" ]; then
	say "fetching $KPKG $KVERSION"
	(cd "$DEBS" && apt-get download -qq "$KPKG=$KVERSION" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
	[ -f "$DEB" ] || DEB=$(ls "$DEBS"/${KPKG}_*.deb 2>/dev/null | tail -n 1)
	[ -n "$DEB" ] && [ -f "$DEB" ] || die "apt-get download $KPKG=$KVERSION failed"
fi
KROOT="$WORK/kernel"
rm -rf "$KROOT"
mkdir -p "$KROOT"
dpkg-deb -x "$DEB" "$KROOT"
KCONFIG="$KROOT/boot/config-$KREL"
# The package ships no modules.dep; dpkg's postinst would make it.
depmod -b "$KROOT" "$KREL"
[ -f "$KCONFIG" ] || die "$DEB has no /boot/config-$KREL"

# Every option of the fragment must be in the kernel: =y as built-in, =m as
# built-in or module.
missing=
while IFS= read -r line; do
	case "$line" in CONFIG_*=y | CONFIG_*=m) ;; *) continue ;; esac
	opt=${line%%=*}
	want=${line#*=}
	have=$(grep -E "^$opt=" "$KCONFIG" | cut -d= -f2 || true)
	if [ "$have" != y ] && { [ "$want" = y ] || [ "$have" != m ]; }; then
		missing="$missing $opt"
	fi
done <"$FRAGMENT"
[ -z "$missing" ] || die "guest kernel $KREL lacks$missing (required by $(basename "$FRAGMENT"))"

STAGE="$WORK/stage"
rm -rf "$STAGE"
mkdir -p "$STAGE"
for d in dev proc sys run tmp etc lib/cocoon/boot tools usr/bin usr/sbin bin sbin; do mkdir -p "$STAGE/$d"; done
cp "$AGENT" "$STAGE/init"
mknod -m 600 "$STAGE/dev/console" c 5 1
mknod -m 666 "$STAGE/dev/null" c 1 3
printf 'root:x:0:0:root:/:/bin/sh\n' >"$STAGE/etc/passwd"
printf 'root:x:0:\n' >"$STAGE/etc/group"

# Copies a file and, for an ELF executable or library, its libraries.
copy_with_libs() {
	src=$1
	dst="$STAGE$src"
	[ -e "$dst" ] && return 0
	mkdir -p "$(dirname "$dst")"
	cp -L "$src" "$dst"
	ldd "$src" 2>/dev/null | awk '/=> \// { print $3 } /^\t\/[^ ]+ \(/ { print $1 }' |
		while read -r lib; do copy_with_libs "$lib"; done
}

if [ -n "$ALT_CRIU" ]; then
	A="$STAGE/usr/lib/cocoon-criu"
	mkdir -p "$A"
	cp -L "$ALT_CRIU/usr/sbin/criu" "$ALT_LD" "$A/"
	"$ALT_LD" --library-path "$ALT_LIB" --list "$ALT_CRIU/usr/sbin/criu" |
		awk '/=> \// { print $3 }' | while read -r lib; do cp -L "$lib" "$A/"; done
	printf '#!/bin/sh\nexec /usr/lib/cocoon-criu/ld-linux-x86-64.so.2 --library-path /usr/lib/cocoon-criu /usr/lib/cocoon-criu/criu "$@"\n' >"$STAGE/usr/sbin/criu"
	chmod 755 "$STAGE/usr/sbin/criu"
else
	copy_with_libs /usr/sbin/criu
fi
# CRIU archives tmpfs mounts (the container's /dev, /dev/shm) with GNU tar
# and gzip.
copy_with_libs /bin/tar
copy_with_libs /bin/gzip
# CRIU calls ip and iptables(-save/-restore) when it dumps a network namespace.
copy_with_libs /bin/ip
copy_with_libs /usr/sbin/xtables-nft-multi
for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
	ln -sf xtables-nft-multi "$STAGE/usr/sbin/$t"
done
# CRIU 3.17 dumps a network namespace's rules with iptables-legacy-save.
copy_with_libs /usr/sbin/xtables-legacy-multi
for t in iptables-legacy iptables-legacy-save iptables-legacy-restore ip6tables-legacy \
	ip6tables-legacy-save ip6tables-legacy-restore; do
	ln -sf xtables-legacy-multi "$STAGE/usr/sbin/$t"
done
for ext in /usr/lib/x86_64-linux-gnu/xtables/*.so; do copy_with_libs "$ext"; done
ln -sf /bin/ip "$STAGE/sbin/ip"
ln -sf /usr/sbin/criu "$STAGE/sbin/criu"
# A shell for debugging and for the tests' payloads.
cp /bin/busybox "$STAGE/bin/busybox"
ln -sf busybox "$STAGE/bin/sh"

: >"$STAGE/lib/cocoon/modules.list"
for m in $MODULES; do
	out=$(modprobe -d "$KROOT" -S "$KREL" --show-depends "$m" 2>&1) ||
		die "module $m: $out"
	echo "$out" | awk '/^insmod/ { print $2 }' | while read -r ko; do
		rel=${ko#"$KROOT"}
		name=$(basename "$rel" .ko | tr - _)
		case " $BOOT_MODULES " in *" $name "*) rel=/lib/cocoon/boot/$name.ko ;; esac
		grep -q " $rel\$" "$STAGE/lib/cocoon/modules.list" && continue
		mkdir -p "$STAGE$(dirname "$rel")"
		cp "$ko" "$STAGE$rel"
		echo "$name $rel" >>"$STAGE/lib/cocoon/modules.list"
	done
done

# Split off the tools tree: all but the agent, its boot modules and a few
# files. Symlinks in the initramfs point into /tools, where the agent mounts
# it, so paths stay those of a Debian system (/usr/sbin/criu,
# /lib/x86_64-linux-gnu/..., /lib64/ld-linux-x86-64.so.2).
TOOLS="$OUT/tools.new"
rm -rf "$TOOLS"
mkdir -p "$TOOLS/lib"
for d in usr bin sbin lib64; do
	[ -e "$STAGE/$d" ] || continue
	mv "$STAGE/$d" "$TOOLS/$d"
	ln -s "tools/$d" "$STAGE/$d"
done
for d in lib/x86_64-linux-gnu lib/modules; do
	[ -e "$STAGE/$d" ] || continue
	mv "$STAGE/$d" "$TOOLS/$d"
	ln -s "../tools/$d" "$STAGE/$d"
done
[ -z "$(find "$STAGE/lib" -mindepth 1 -maxdepth 1 ! -name cocoon ! -type l)" ] ||
	die "unexpected files left in the initramfs /lib: $(ls "$STAGE/lib")"

say "packing initramfs"
(cd "$STAGE" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$OUT/initrd.img.new"
# QEMU boots the uncompressed ELF through its PVH entry point (CONFIG_PVH).
# That skips decompressing the xz bzImage in the guest, which under TCG took
# about 5 of the 10 seconds a boot took (measured, docs/image.md).
BZ="$KROOT/boot/vmlinuz-$KREL"
OFF=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$BZ" | head -n 1 | cut -d: -f1)
[ -n "$OFF" ] || die "$BZ: no xz payload found (CONFIG_KERNEL_XZ expected)"
tail -c +$((OFF + 1)) "$BZ" | xz -dc 2>/dev/null >"$OUT/vmlinux.new" || true
head -c 4 "$OUT/vmlinux.new" | grep -q ELF || die "could not extract vmlinux from $BZ"
mv "$OUT/vmlinux.new" "$OUT/vmlinux"
mv "$OUT/initrd.img.new" "$OUT/initrd.img"
rm -rf "$OUT/tools.old"
[ ! -d "$OUT/tools" ] || mv "$OUT/tools" "$OUT/tools.old"
mv "$TOOLS" "$OUT/tools"
rm -rf "$OUT/tools.old"
cat >"$OUT/manifest" <<MANIFEST
key=$KEY
kernel_package=$KPKG
kernel_version=$KVERSION
kernel_release=$KREL
criu_version=$CRIU_VERSION
modules=$(wc -l <"$STAGE/lib/cocoon/modules.list")
initrd_bytes=$(stat -c %s "$OUT/initrd.img")
tools_bytes=$(du -sb "$OUT/tools" | cut -f1)
MANIFEST
rm -rf "$KROOT" "$STAGE"
say "built $OUT: kernel $KREL ($(du -h "$OUT/vmlinux" | cut -f1) uncompressed), initrd $(du -h "$OUT/initrd.img" | cut -f1), tools $(du -sh "$OUT/tools" | cut -f1), criu $CRIU_VERSION"
