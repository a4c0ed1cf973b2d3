#!/usr/bin/env bash
# Builds the test images without any registry, from busybox-static with `docker import`:
#   appmodule/busybox:base         the imported root filesystem
#   appmodule/web:1.0, :2.0        a tiny HTTP app (busybox httpd on :8080) answering "web 1.0"/"web 2.0",
#                                  with a HEALTHCHECK
#   appmodule/web:nohealth         the same app without a healthcheck
#   appmodule/web:exits            exits with status 3 right at start
#   appmodule/web:unhealthy        runs, but its healthcheck never passes
# Idempotent: an image that exists is not rebuilt (set REBUILD=1 to force).
set -euo pipefail
docker=${DOCKER:-/usr/bin/docker}; [ -x "$docker" ] || docker=docker
say() { printf '==> %s\n' "$*" >&2; }
have() { [ -z "${REBUILD:-}" ] && "$docker" image inspect "$1" >/dev/null 2>&1; }

if ! have appmodule/busybox:base; then
  r=$(mktemp -d); trap 'rm -rf "$r"' EXIT
  mkdir -p "$r/bin" "$r/www" "$r/tmp" "$r/etc"
  cp /bin/busybox "$r/bin/busybox"
  for c in sh ls echo sleep cat wget httpd true false test kill ps env printf mkdir rm; do ln -sf busybox "$r/bin/$c"; done
  echo 'root:x:0:0:root:/:/bin/sh' >"$r/etc/passwd"
  tar -C "$r" --owner=0 --group=0 --numeric-owner --mtime=@0 --sort=name -c . |
    "$docker" import --change 'ENV PATH=/bin' - appmodule/busybox:base >/dev/null
  say "built appmodule/busybox:base"
fi

build() { # tag, Dockerfile text
  local tag=$1 text=$2
  have "$tag" && return 0
  local c; c=$(mktemp -d)
  printf '%s\n' "$text" >"$c/Dockerfile"
  DOCKER_BUILDKIT=0 "$docker" build -q -t "$tag" "$c" >/dev/null
  rm -rf "$c"
  say "built $tag"
}

web() { # version, healthcheck line
  printf 'FROM appmodule/busybox:base\nRUN mkdir -p /www && echo "web %s" > /www/index.html\n%s\nCMD ["httpd","-f","-p","8080","-h","/www"]\n' "$1" "$2"
}
hc='HEALTHCHECK --interval=1s --timeout=2s --start-period=1s --retries=3 CMD wget -q -O /dev/null http://127.0.0.1:8080/ || exit 1'
build appmodule/web:1.0 "$(web 1.0 "$hc")"
build appmodule/web:2.0 "$(web 2.0 "$hc")"
build appmodule/web:nohealth "$(web nohealth '')"
build appmodule/web:exits 'FROM appmodule/busybox:base
CMD ["sh","-c","echo failing on purpose >&2; exit 3"]'
build appmodule/web:unhealthy "$(printf 'FROM appmodule/busybox:base\nRUN mkdir -p /www && echo "web unhealthy" > /www/index.html\nHEALTHCHECK --interval=1s --timeout=2s --start-period=1s --retries=2 CMD wget -q -O /dev/null http://127.0.0.1:9999/ || exit 1\nCMD ["httpd","-f","-p","8080","-h","/www"]')"
