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
command -v npm >/dev/null || { echo "chdb.sh: npm is needed to fetch $PKG (apt-get install -y npm)" >&2; exit 1; }

mkdir -p "$DEST"
work="$(mktemp -d "$DEST/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "chdb.sh: fetching $PKG@$VERSION (about 180 MB) into $DEST" >&2
(cd "$work" && npm pack --silent --ignore-scripts "$PKG@$VERSION" >/dev/null)
tgz="$(ls "$work"/*.tgz)"

got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
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
