#!/usr/bin/env bash
# chdb.sh — fetch libchdb.so (the ClickHouse engine as a library, used by the embedded
# storage transport) once into ${XDG_CACHE_HOME:-~/.cache}/flowwatch/chdb/<version>/.
#
# The library ships inside the npm package @chdb/lib-linux-x64-gnu. The script `npm pack`s
# the tarball (no install scripts run, nothing else is installed), checks it against the
# integrity value pinned below, and unpacks libchdb.so only. When the library is already in
# place it does nothing, instantly. storage.OpenEmbedded looks in the same folder when
# CHDB_LIB_PATH is unset.
set -euo pipefail

PKG="@chdb/lib-linux-x64-gnu"
VERSION="26.7.3-stable.1"
# npm's "integrity" of the tarball (sha512, base64), as `npm view $PKG@$VERSION dist.integrity`
# prints it. A tarball that does not match is refused.
INTEGRITY="sha512-XP97mMqnc5tZpKQywR8N7cLTsHNiTmHr30pC5mzo3jWmukjKn2IBa60c2B/gWUNcuFjOMjWoorQICCqBVj5wpw=="

DEST="${XDG_CACHE_HOME:-$HOME/.cache}/flowwatch/chdb/$VERSION"
LIB="$DEST/libchdb.so"

if [ -s "$LIB" ] && [ -f "$DEST/.verified" ]; then
	exit 0
fi

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
	echo "chdb.sh: $PKG is built for Linux x86_64 only; set CHDB_LIB_PATH to a libchdb.so for $(uname -s)-$(uname -m)" >&2
	exit 1
fi
if ! command -v npm >/dev/null; then
	# npm (and node) come from Debian; install them as the other test dependencies are.
	sudo_cmd=""
	[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
	if command -v apt-get >/dev/null; then
		echo "chdb.sh: installing npm to fetch $PKG" >&2
		DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q npm >/dev/null ||
			{ DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q npm >/dev/null; }
	fi
	command -v npm >/dev/null || { echo "chdb.sh: npm is needed to fetch $PKG" >&2; exit 1; }
fi

mkdir -p "$DEST"
work="$(mktemp -d "$DEST/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "chdb.sh: fetching $PKG@$VERSION (about 180 MB) into $DEST" >&2
(cd "$work" && npm pack --silent --ignore-scripts "$PKG@$VERSION" >/dev/null)
tgz="$(ls "$work"/*.tgz)"

# node comes with npm: no other tool is needed for the checksum.
got="sha512-$(node -e 'const h=require("crypto").createHash("sha512");require("fs").createReadStream(process.argv[1]).on("data",d=>h.update(d)).on("end",()=>process.stdout.write(h.digest("base64")))' "$tgz")"
if [ "$got" != "$INTEGRITY" ]; then
	echo "chdb.sh: checksum mismatch for $tgz" >&2
	echo "  want $INTEGRITY" >&2
	echo "  got  $got" >&2
	exit 1
fi

tar -xzf "$tgz" -C "$work" package/libchdb.so
mv -f "$work/package/libchdb.so" "$LIB.tmp"
mv -f "$LIB.tmp" "$LIB"
echo "$INTEGRITY" >"$DEST/.verified"
echo "chdb.sh: $LIB ready" >&2
