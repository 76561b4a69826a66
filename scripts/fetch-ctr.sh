#!/bin/sh
# scripts/fetch-ctr.sh: ctr 1.7 from Debian 13 (trixie)'s containerd
# package, a client for the containerd 1.6 daemon of Debian 12
# (docs/containerd.md). ctr 1.6's `containers restore` gives a restored
# task plain stdio, so containerd's runc shim passes no --console-socket
# and a checkpoint of a `ctr run -t` task cannot be restored with it; ctr
# 1.7 restores it onto the terminal it runs on (containerd commit
# 5d0457df9), and its `tasks delete -f` takes a task whose restore failed
# (containerd issue 10441, fixed in 1.7.21). The tests use it for both.
#
# Nothing is installed on the host: scripts/fetch-trixie.sh unpacks the
# package and its library closure under $DIR, and $DIR/bin/ctr is a wrapper
# that runs trixie's ctr through its own loader (as bench/host-criu.sh does
# for CRIU). Prints $DIR/bin/ctr; exits non-zero with the reason otherwise.
set -eu

DIR=${COCOON_TRIXIE_CTR_DIR:-/var/cache/cocoon/trixie-ctr}
CTR=$DIR/bin/ctr

die() {
	echo "fetch-ctr: $*" >&2
	exit 1
}

if [ -x "$CTR" ] && "$CTR" --version >/dev/null 2>&1; then
	echo "$CTR"
	exit 0
fi
mkdir -p "$DIR"
# One at a time (several tests may ask at once); then look again.
exec 8>"$DIR/.bin-lock"
flock 8
if [ -x "$CTR" ] && "$CTR" --version >/dev/null 2>&1; then
	echo "$CTR"
	exit 0
fi
L=$(sh "$(dirname "$0")/fetch-trixie.sh" "$DIR" containerd) || die "fetching trixie's containerd failed"
rm -rf "$DIR/bin.new"
mkdir "$DIR/bin.new"
cat >"$DIR/bin.new/ctr" <<W
#!/bin/sh
exec "$L/usr/lib64/ld-linux-x86-64.so.2" --library-path "$L/usr/lib/x86_64-linux-gnu" "$L/usr/bin/ctr" "\$@"
W
chmod 755 "$DIR/bin.new/ctr"
rm -rf "${DIR:?}/bin"
mv "$DIR/bin.new" "$DIR/bin"
"$CTR" --version 2>/dev/null | grep -q " 1\.7\." || die "the unpacked ctr does not run, or is not 1.7"
echo "$CTR"
