#!/usr/bin/env bash
# Installs everything the demo, the tests and the packaging need on a fresh Debian 12 machine.
# Idempotent: a second run only checks. Needs root (apt-get).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
say() { printf '==> %s\n' "$*" >&2; }

packages=(docker.io docker-compose containerd mender-client mender-artifact redis-server
  docker-registry busybox-static skopeo xdelta3 iptables util-linux ca-certificates curl
  clang lld llvm gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static lintian
  dpkg-dev fakeroot file hyperfine gcc libc6-dev openssl iproute2 podman catatonit)
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

# kubectl, for the conformance suite that holds the fake API server to the real client
# (tests/Kubernetes.Tests/KubectlConformanceTests.cs): the `kubectl` package of Google's Cloud SDK
# apt repository (Debian 12's own kubernetes-client is 1.20, too old for OpenAPI v3 validation),
# fetched with a private source list and key, then installed with apt; nothing is fetched once it is installed.
if dpkg-query -W -f='${Status}' kubectl 2>/dev/null | grep -q 'install ok installed' && command -v kubectl >/dev/null; then
  say "kubectl present ($(kubectl version --client 2>/dev/null | head -n 1))"
else
  say "fetching kubectl from packages.cloud.google.com (private source list, system sources untouched)"
  k=$(mktemp -d)
  # Not fatal: with no route to that repository the rest of the setup still stands, and the kubectl suite
  # then skips locally, or fails under CI=true naming kubectl (tests/TestSupport).
  fetch_kubectl() { # each step checked: set -e does not apply inside a function called from an || list
    mkdir -p "$k/lists/partial" "$k/cache/archives/partial" || return 1
    curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg -o "$k/key" || return 1
    # The key is served armored or binary; apt tells them apart by the file's extension.
    if head -c 40 "$k/key" | grep -q 'BEGIN PGP'; then keyring="$k/cloud-google.asc"; else keyring="$k/cloud-google.gpg"; fi
    mv "$k/key" "$keyring" || return 1
    sed "s|@KEYRING@|$keyring|" "$here/apt/google-cloud-sdk.sources.in" >"$k/google.sources" || return 1
    o=(-o "Dir::Etc::sourcelist=$k/google.sources" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$k/lists" -o "Dir::Cache=$k/cache" -o APT::Get::List-Cleanup=0)
    apt-get "${o[@]}" update -q >&2 || return 1
    (cd "$k" && apt-get "${o[@]}" download kubectl >&2) || return 1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$k"/kubectl_*.deb >&2 || return 1
  }
  fetch_kubectl || say "WARNING: could not fetch kubectl (no route to packages.cloud.google.com?); install the kubectl package by hand"
  rm -rf "$k"
  if command -v kubectl >/dev/null; then say "kubectl installed: $(kubectl version --client 2>/dev/null | head -n 1)"; fi
fi
