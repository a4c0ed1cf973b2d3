#!/usr/bin/env bash
# Runs "$@" with a Docker engine: the one that answers ($DOCKER_HOST or the default socket),
# else a private dockerd (own data-root, exec-root, pidfile and socket under a temp dir) that is
# stopped again by pid when the command ends.
set -euo pipefail
say() { printf '==> %s\n' "$*" >&2; }
docker=/usr/bin/docker; [ -x "$docker" ] || docker=docker
if "$docker" version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  say "Docker engine answers at ${DOCKER_HOST:-unix:///var/run/docker.sock} ($("$docker" version --format '{{.Server.Version}}'))"
  exec "$@"
fi
d=$(mktemp -d /tmp/appmodule-dockerd.XXXXXX)
say "no engine answers: starting a private dockerd in $d"
setsid dockerd --host "unix://$d/docker.sock" --data-root "$d/data" --exec-root "$d/exec" \
  --pidfile "$d/docker.pid" >"$d/dockerd.log" 2>&1 &
export DOCKER_HOST="unix://$d/docker.sock"
stop() {
  if [ -f "$d/docker.pid" ]; then
    pid=$(cat "$d/docker.pid"); kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  umount -R "$d/exec" "$d/data" 2>/dev/null || true
  rm -rf "$d" 2>/dev/null || true
}
trap stop EXIT
for _ in $(seq 1 150); do
  "$docker" version >/dev/null 2>&1 && break
  sleep 0.2
done
"$docker" version --format '{{.Server.Version}}' >/dev/null || { cat "$d/dockerd.log" >&2; exit 1; }
say "private dockerd ready at $DOCKER_HOST"
set +e
"$@"; rc=$?
exit $rc
