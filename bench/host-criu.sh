#!/bin/sh
# bench/host-criu.sh: CRIU 4.1.1 from Debian 13 (trixie) for the host
# baseline of `make bench`, unpacked into a private directory and run through
# its own loader. Bookworm's CRIU 3.17 fails on this host's kernel ("vdso:
# Unexpected rt vDSO area bounds"; DESIGN.md); the guest keeps its own 3.17.
#
# Nothing is installed on the host: scripts/fetch-trixie.sh unpacks the
# package and its library closure under $DIR, and $DIR/criu is a wrapper runc
# can be pointed at (runc --criu).
# Prints the wrapper's path; exits non-zero with the reason otherwise.
set -eu

DIR=${COCOON_HOST_CRIU_DIR:-/var/cache/cocoon/trixie}
WRAPPER="$DIR/criu"

die() {
	echo "host-criu: $*" >&2
	exit 1
}

if [ -x "$WRAPPER" ] && "$WRAPPER" --version >/dev/null 2>&1; then
	echo "$WRAPPER"
	exit 0
fi
L=$(sh "$(dirname "$0")/../scripts/fetch-trixie.sh" "$DIR" criu) || die "fetching trixie's criu failed"
cat >"$WRAPPER.new" <<EOF
#!/bin/sh
L=$L
exec "\$L/usr/lib64/ld-linux-x86-64.so.2" --library-path "\$L/usr/lib/x86_64-linux-gnu" "\$L/usr/sbin/criu" "\$@"
EOF
chmod +x "$WRAPPER.new"
mv "$WRAPPER.new" "$WRAPPER"
"$WRAPPER" --version >/dev/null 2>&1 || die "the unpacked criu does not run"
echo "$WRAPPER"
