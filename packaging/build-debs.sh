#!/usr/bin/env bash
# Builds the .deb packages for one RID from the layout (packaging/layout.sh):
#   packaging/build-debs.sh <rid> [<out-dir>]     rid: linux-x64 | linux-arm64
# Packages:
#   mender-app-modules         the app Update Module + the orchestrator sub-modules + their configs (device)
#   mender-app-gen             app-gen, the artifact generator (build machines)
#   appmodule-fleet-updater    the fleet updater service
#   appmodule-fleet-agent      the device agent of the fleet trigger
set -euo pipefail
rid=${1:?usage: build-debs.sh <rid> [<out-dir>]}
top=$(cd "$(dirname "$0")/.." && pwd)
out=${2:-$top/out/packages}
version=$(cat "$top/packaging/VERSION")
case "$rid" in
  linux-x64) arch=amd64 ;;
  linux-arm64) arch=arm64 ;;
  *) echo "build-debs.sh: unsupported rid $rid (linux-x64, linux-arm64)" >&2; exit 2 ;;
esac
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
"$top/packaging/layout.sh" "$top/out/$rid" "$work/layout"
# Which package carries which executable: each shipped csproj's AppModulePackage (build/shipped.sh).
shipped=$("$top/build/shipped.sh")
mkdir -p "$out"
maintainer="AppModule developers <team@appmodule.dev>"

# pkg <name> <section> <depends> <recommends> <short> <long> <paths...>
# The package's executables (build/shipped.sh) are added to <paths>.
pkg() {
  local name=$1 section=$2 depends=$3 recommends=$4 short=$5 long=$6; shift 6
  local root="$work/$name"
  mkdir -p "$root/DEBIAN"
  local exes; exes=$(awk -F'\t' -v p="$name" '$4 == p { print $3 }' <<<"$shipped")
  for p in $exes "$@"; do
    mkdir -p "$root/$(dirname "$p")"
    cp -a "$work/layout/$p" "$root/$p"
  done
  local doc="$root/usr/share/doc/$name"
  install -d "$doc"
  install -m 0644 "$top/packaging/debian/copyright" "$doc/copyright"
  sed "s/@NAME@/$name/; s/@VERSION@/$version/" "$top/packaging/debian/changelog.in" | gzip -9n >"$doc/changelog.gz"
  chmod 0644 "$doc/changelog.gz"
  if [ -f "$top/packaging/debian/$name.lintian-overrides" ]; then
    install -D -m 0644 "$top/packaging/debian/$name.lintian-overrides" "$root/usr/share/lintian/overrides/$name"
  fi
  if [ -d "$root/etc" ]; then
    (cd "$root" && find etc -type f | sort | sed 's|^|/|') >"$root/DEBIAN/conffiles"
  fi
  for s in postinst prerm postrm; do
    if [ -f "$top/packaging/debian/$name.$s" ]; then install -m 0755 "$top/packaging/debian/$name.$s" "$root/DEBIAN/$s"; fi
  done
  local size; size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
  {
    echo "Package: $name"
    echo "Version: $version"
    echo "Architecture: $arch"
    echo "Maintainer: $maintainer"
    echo "Installed-Size: $size"
    echo "Depends: $depends"
    if [ -n "$recommends" ]; then echo "Recommends: $recommends"; fi
    echo "Section: $section"
    echo "Priority: optional"
    echo "Homepage: https://github.com/appmodule/appmodule"
    echo "Description: $short"
    printf '%s\n' "$long" | fold -s -w 72 | sed 's/ *$//; s/^/ /'
  } >"$root/DEBIAN/control"
  (cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
  dpkg-deb --root-owner-group -Zxz --build "$root" "$out/${name}_${version}_${arch}.deb" >/dev/null
  echo "$out/${name}_${version}_${arch}.deb"
}

pkg mender-app-modules admin "libc6 (>= 2.34), libssl3 | libssl1.1, mender-client (>= 3.4) | mender-update" \
  "docker.io | docker-ce, docker-compose | docker-compose-plugin" \
  "Mender Update Module for container applications" \
  "The app Update Module installs docker-compose and Kubernetes applications (on a cluster, or on podman) shipped as Mender app artifacts, keeps each application's state in a persistent store, gates the commit on health and rolls back to the last known good composition. Includes the docker-compose, k8s and podman orchestrator sub-modules." \
  $(cd "$work/layout" && ls etc/mender/mender-app*.conf)
pkg mender-app-gen devel "libc6 (>= 2.34), libssl3 | libssl1.1, liblzma5" "xdelta3" \
  "Generator of Mender app artifacts" \
  "app-gen writes Mender artifacts for the app Update Module from the local Docker engine, image tar files or OCI layouts: full images, whole-image deltas and per-layer deep deltas, optionally signed."
pkg appmodule-fleet-updater net "libc6 (>= 2.34), libssl3 | libssl1.1" "redis-server" \
  "Fleet updater service for container applications" \
  "Listens to application version reports over Redis, checks that the configured target version exists in the registry and asks the device agent to update." \
  lib/systemd/system/fleet-updater.service etc/fleet/updater.toml
# The agent installs through app's engine and its docker-compose sub-module: it needs that package.
pkg appmodule-fleet-agent net "libc6 (>= 2.34), libssl3 | libssl1.1, mender-app-modules (= $version)" "docker.io | docker-ce" \
  "Device agent of the AppModule fleet trigger" \
  "Serves update requests over Redis for the docker-compose applications of a device, with health-gated rollout and rollback, and reports the running versions." \
  lib/systemd/system/fleet-agent.service etc/fleet/agent.toml

# Every shipped executable went into a package that was built above.
while IFS=$'\t' read -r project b _ package; do
  ls "$out/${package}_${version}_${arch}.deb" >/dev/null 2>&1 \
    || { echo "build-debs.sh: $project ($b) names package $package, which build-debs.sh does not build" >&2; exit 1; }
done <<<"$shipped"
