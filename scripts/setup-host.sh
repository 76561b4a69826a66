#!/bin/sh
# Installs the Debian packages cocoon's build, guest image and tests need.
# Idempotent and quiet when everything is present. Not root: prints the
# apt-get line to run instead.
set -eu

PACKAGES="
gcc make meson ninja-build pkg-config
libprotobuf-c-dev protobuf-c-compiler libjson-c-dev libcmocka-dev libxxhash-dev libseccomp-dev
libnl-3-dev libnl-route-3-dev libzstd-dev
qemu-system-x86 criu busybox-static cpio kmod xz-utils iproute2 iptables tar gzip
python3 python3-pytest clang libclang-rt-14-dev clang-tools-14
containerd runc podman catatonit containernetworking-plugins python3-grpcio python3-grpc-tools
shellcheck codespell clang-format clang-tidy
"
# Why each group is here:
#   build:  compiler, meson/ninja, protobuf-c (agent protocol), json-c (OCI
#           JSON), cmocka (unit tests), xxhash (checkpoint image checksums),
#           libseccomp (its static library: the agent builds the container's
#           seccomp filter in the guest),
#           libnl-route-3 (links, addresses, routes and tc on both sides;
#           its .a files link into the static agent), libzstd (whole-VM
#           states compressed: [vm] snapshot_zstd_level)
#   image:  qemu (the VMM), criu (copied into the guest, and the host binary
#           containerd/podman look for before they allow a checkpoint),
#           busybox-static (guest shell and test payload helper), cpio, kmod
#           (depmod/modprobe to resolve module deps), xz-utils (vmlinux
#           extraction), iproute2 + iptables (CRIU calls them in the guest)
#   tests:  python3-pytest (e2e), containerd + runc + podman (engine tests;
#           catatonit is the init of podman's pod infra image;
#           containernetworking-plugins, python3-grpcio and python3-grpc-tools
#           drive containerd's CRI plugin as the kubelet does, test_cri.py),
#           clang +
#           libclang-rt-14-dev (libFuzzer targets: make fuzz, make fuzz-smoke)
#   lint:   shellcheck, codespell, clang-format (make lint, part of make check),
#           clang-tidy (scripts/check-results.py: results not dropped silently),
#           clang-tools-14 (analyze-build: make analyze)

missing=
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done

# The image builder resolves the kernel package through apt's lists.
need_lists=0
if ! apt-cache policy linux-image-amd64 2>/dev/null | grep -q 'Candidate: [0-9]'; then
	need_lists=1
fi

[ -z "$missing" ] && [ "$need_lists" = 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "cocoon setup: missing packages:$missing" >&2
	echo "cocoon setup: run as root:" >&2
	echo "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y$missing" >&2
	exit 1
fi

echo "cocoon setup: installing:${missing:- (package lists only)}"
apt-get update -qq
if [ -n "$missing" ]; then
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
