#!/bin/sh
# scripts/fetch-trixie.sh DIR PACKAGE...: Debian 13 (trixie) packages and
# their library closure, unpacked into DIR/root without installing anything
# on the host. Used where bookworm's version cannot do the job: the host
# baseline's CRIU (bench/host-criu.sh) and the whole-VM mode's QEMU and
# virtiofsd (scripts/fetch-vmsnap-vmm.sh). Run the binaries through the
# unpacked loader:
#   DIR/root/usr/lib64/ld-linux-x86-64.so.2 --library-path \
#       DIR/root/usr/lib/x86_64-linux-gnu DIR/root/usr/bin/...
# A private apt state under DIR fetches from $COCOON_TRIXIE_MIRROR (Debian's
# archive by default). One fetch at a time per DIR; DIR/root is replaced
# whole. Prints DIR/root; exits non-zero with the reason otherwise.
set -eu

die() {
	echo "fetch-trixie: $*" >&2
	exit 1
}

[ $# -ge 2 ] || die "usage: fetch-trixie.sh DIR PACKAGE..."
DIR=$1
shift
MIRROR=${COCOON_TRIXIE_MIRROR:-http://deb.debian.org/debian}
for t in apt-get apt-cache dpkg-deb flock; do
	command -v "$t" >/dev/null || die "$t not found"
done
mkdir -p "$DIR/lists/partial" "$DIR/archives/partial" "$DIR/debs"
exec 9>"$DIR/.lock"
flock 9
PACKAGES=$*
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR trixie main" >"$DIR/sources.list"
set -- -o "Dir::Etc::SourceList=$DIR/sources.list" -o Dir::Etc::SourceParts=/dev/null \
	-o "Dir::State::Lists=$DIR/lists" -o "Dir::Cache=$DIR" -o Dir::State::status=/dev/null
apt-get "$@" -qq update >/dev/null 2>&1 || die "apt-get update of trixie from $MIRROR failed"
# The packages and what they link against, without the base system's others.
# shellcheck disable=SC2086
PKGS=$(apt-cache "$@" depends --recurse --no-recommends --no-suggests --no-conflicts \
	--no-breaks --no-replaces --no-enhances --no-pre-depends $PACKAGES 2>/dev/null |
	grep -v '^ ' | grep -v '<' | sort -u)
[ -n "$PKGS" ] || die "trixie's $PACKAGES not found"
# shellcheck disable=SC2086
(cd "$DIR/debs" && apt-get "$@" -qq download $PKGS 2>&1 | grep -v unsandboxed || true)
rm -rf "$DIR/root.new"
mkdir "$DIR/root.new"
for deb in "$DIR"/debs/*.deb; do
	dpkg-deb -x "$deb" "$DIR/root.new" || die "unpacking $deb failed"
done
rm -rf "$DIR/root"
mv "$DIR/root.new" "$DIR/root"
echo "$DIR/root"
