#!/usr/bin/env bash
# Builds the device/build-machine file layout from published binaries:
#   packaging/layout.sh <bin-dir> <destdir>
# <bin-dir> holds the Native AOT executables (out/<rid>); <destdir> receives
#   usr/share/mender/modules/v3/app                       the Update Module
#   usr/share/mender/app-modules/v1/{docker-compose,k8s,podman}  the orchestrator sub-modules
#   etc/mender/mender-app.conf, mender-app-docker-compose.conf, and each sub-module folder's
#     mender-app-<name>.conf (submodules/*/mender-app-*.conf: mender-app-k8s.conf, mender-app-podman.conf)
#   usr/bin/app-gen                                       the artifact generator (build machines)
#   usr/bin/fleet-updater, usr/bin/fleet-agent            the fleet trigger
#   lib/systemd/system/fleet-{updater,agent}.service, etc/fleet/{updater,agent}.toml
# Used by `make install DESTDIR=...` and by the .deb builder. Existing config files in <destdir>
# are kept (a local edit wins), like dpkg conffiles.
set -euo pipefail
bin=${1:?usage: layout.sh <bin-dir> <destdir>}
dest=${2:?usage: layout.sh <bin-dir> <destdir>}
top=$(cd "$(dirname "$0")/.." && pwd)
files="$top/packaging/files"

# The executables and where they go: build/shipped.sh (each shipped csproj's AppModuleInstallPath).
shipped=$("$top/build/shipped.sh")
[ -n "$shipped" ] || { echo "layout.sh: build/shipped.sh listed no executable" >&2; exit 1; }
while IFS=$'\t' read -r _ b _ _; do
  [ -x "$bin/$b" ] || { echo "layout.sh: $bin/$b is missing; run build/publish.sh <rid> first" >&2; exit 1; }
done <<<"$shipped"

conf() { # source, target: installed unless a local copy exists
  if [ -e "$dest/$2" ]; then echo "layout.sh: keeping existing $2" >&2; else install -D -m 0644 "$1" "$dest/$2"; fi
}

while IFS=$'\t' read -r _ b path _; do
  install -D -m 0755 "$bin/$b" "$dest/$path"
done <<<"$shipped"

conf "$top/mender-app.conf" etc/mender/mender-app.conf
conf "$files/etc/mender/mender-app-docker-compose.conf" etc/mender/mender-app-docker-compose.conf
# A sub-module's default config is the mender-app-<name>.conf in its folder: a new orchestrator adds no line here.
for c in "$top"/submodules/*/mender-app-*.conf; do
  conf "$c" "etc/mender/$(basename "$c")"
done
conf "$files/etc/fleet/updater.toml" etc/fleet/updater.toml
conf "$files/etc/fleet/agent.toml" etc/fleet/agent.toml
install -D -m 0644 "$files/systemd/fleet-updater.service" "$dest/lib/systemd/system/fleet-updater.service"
install -D -m 0644 "$files/systemd/fleet-agent.service" "$dest/lib/systemd/system/fleet-agent.service"
