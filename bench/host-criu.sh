#!/bin/sh
# bench/host-criu.sh: CRIU 4.1.1 from Debian 13 (trixie) for the host
# baseline of `make bench`, unpacked into a private directory and run through
# its own loader. Bookworm's CRIU 3.17 fails on this host's kernel ("vdso:
# Unexpected rt vDSO area bounds"; DESIGN.md); the guest keeps its own 3.17.
#
# Nothing is installed on the host: a private apt state under $DIR fetches the
# package and its library closure from Debian's archive, dpkg-deb unpacks
# them, and $DIR/criu is a wrapper runc can be pointed at (runc --criu).
# Prints the wrapper's path; exits non-zero with the reason otherwise.
set -eu

DIR=${COCOON_HOST_CRIU_DIR:-/var/cache/cocoon/trixie}
MIRROR=${COCOON_TRIXIE_MIRROR:-http://deb.debian.org/debian}
WRAPPER="$DIR/criu"

die() {
	echo "host-criu: $*" >&2
	exit 1
}

if [ -x "$WRAPPER" ] && "$WRAPPER" --version >/dev/null 2>&1; then
	echo "$WRAPPER"
	exit 0
fi
for t in apt-get apt-cache dpkg-deb; do
	command -v "$t" >/dev/null || die "$t not found"
done
mkdir -p "$DIR/lists/partial" "$DIR/archives/partial" "$DIR/debs"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR trixie main" >"$DIR/sources.list"
set -- -o "Dir::Etc::SourceList=$DIR/sources.list" -o Dir::Etc::SourceParts=/dev/null \
	-o "Dir::State::Lists=$DIR/lists" -o "Dir::Cache=$DIR" -o Dir::State::status=/dev/null
apt-get "$@" -qq update >/dev/null 2>&1 || die "apt-get update of trixie from $MIRROR failed"
# criu and what it links against, without the base system's other packages.
PKGS=$(apt-cache "$@" depends --recurse --no-recommends --no-suggests --no-conflicts \
	--no-breaks --no-replaces --no-enhances --no-pre-depends criu 2>/dev/null |
	grep -v '^ ' | grep -v '<' | sort -u)
[ -n "$PKGS" ] || die "trixie's criu package was not found"
# shellcheck disable=SC2086
(cd "$DIR/debs" && apt-get "$@" -qq download $PKGS 2>&1 | grep -v unsandboxed || true)
rm -rf "$DIR/root.new"
mkdir "$DIR/root.new"
for deb in "$DIR"/debs/*.deb; do
	dpkg-deb -x "$deb" "$DIR/root.new" || die "unpacking $deb failed"
done
rm -rf "$DIR/root"
mv "$DIR/root.new" "$DIR/root"
cat >"$WRAPPER.new" <<EOF
#!/bin/sh
L=$DIR/root
exec "\$L/usr/lib64/ld-linux-x86-64.so.2" --library-path "\$L/usr/lib/x86_64-linux-gnu" "\$L/usr/sbin/criu" "\$@"
EOF
chmod +x "$WRAPPER.new"
mv "$WRAPPER.new" "$WRAPPER"
"$WRAPPER" --version >/dev/null 2>&1 || die "the unpacked criu does not run"
echo "$WRAPPER"
