#!/usr/bin/env bash
# Installs everything the demo, the tests and the packaging need on a fresh Debian 12 machine.
# Idempotent: a second run only checks. Needs root (apt-get).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
say() { printf '==> %s\n' "$*" >&2; }

packages=(docker.io docker-compose containerd mender-client mender-artifact redis-server
  docker-registry busybox-static skopeo xdelta3 iptables util-linux ca-certificates curl
  clang lld llvm gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static lintian
  dpkg-dev fakeroot file hyperfine)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  say "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
else
  say "Debian packages present"
fi
# The Debian packages start services we do not want running system-wide during tests.
for s in redis-server docker-registry; do systemctl disable --now "$s" >/dev/null 2>&1 || true; done

# Compose v2: Debian 13's docker-compose package, a static binary, installed as a docker CLI plugin.
plugin=/usr/local/lib/docker/cli-plugins/docker-compose
if [ -x "$plugin" ] && "$plugin" version 2>/dev/null | grep -q 'version v\?2'; then
  say "Compose v2 plugin present ($("$plugin" version --short 2>/dev/null))"
else
  say "fetching Compose v2 from Debian 13 (private source list, system sources untouched)"
  w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
  mkdir -p "$w/lists/partial" "$w/cache/archives/partial"
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
  sed "s|@MIRROR@|$mirror|" "$here/apt/trixie.sources.in" >"$w/trixie.sources"
  o=(-o "Dir::Etc::sourcelist=$w/trixie.sources" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$w/lists" -o "Dir::Cache=$w/cache" -o APT::Get::List-Cleanup=0)
  apt-get "${o[@]}" update -q >&2
  (cd "$w" && apt-get "${o[@]}" download docker-compose >&2)
  dpkg -x "$w"/docker-compose_*.deb "$w/x"
  install -D -m 0755 "$w/x/usr/libexec/docker/cli-plugins/docker-compose" "$plugin"
  say "Compose v2 installed: $("$plugin" version --short)"
fi
