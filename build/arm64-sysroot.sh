#!/usr/bin/env bash
# A minimal arm64 root (libc, libssl, zlib from Debian 12's arm64 packages) for running the
# linux-arm64 binaries under qemu-aarch64-static on an x64 host:
#   build/arm64-sysroot.sh <dir>        then: qemu-aarch64-static -L <dir> out/linux-arm64/app ...
# Uses a private apt configuration: the system's architectures and sources are not touched.
set -euo pipefail
dest=${1:?usage: arm64-sysroot.sh <dir>}
[ -e "$dest/lib/ld-linux-aarch64.so.1" ] && [ -e "$dest/usr/lib/aarch64-linux-gnu/libssl.so.3" ] && exit 0
w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
mkdir -p "$w/lists/partial" "$w/cache/archives/partial" "$dest"
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
printf 'Types: deb\nURIs: %s\nSuites: bookworm\nComponents: main\nArchitectures: arm64\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$mirror" >"$w/arm64.sources"
o=(-o "Dir::Etc::sourcelist=$w/arm64.sources" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$w/lists"
   -o "Dir::Cache=$w/cache" -o APT::Architecture=arm64 -o APT::Architectures::=arm64)
apt-get "${o[@]}" update -q >&2
(cd "$w" && apt-get "${o[@]}" download libc6:arm64 libssl3:arm64 zlib1g:arm64 libgcc-s1:arm64 >&2)
for d in "$w"/*.deb; do dpkg -x "$d" "$dest"; done
echo "arm64 root ready in $dest" >&2
