#!/usr/bin/env bash
# `make demo`: the project's main job on local defaults, step by step.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd); cd "$top"
step() { printf '\n### %s\n' "$*"; }
step "Docker engine: $(/usr/bin/docker version --format '{{.Server.Version}}') at ${DOCKER_HOST:-unix:///var/run/docker.sock}"
step "Building test images from busybox-static (no registry)"
build/test-images.sh
/usr/bin/docker images appmodule/web --format '  {{.Repository}}:{{.Tag}}  {{.ID}}'
step "Publishing the executables with Native AOT (linux-x64)"
build/publish.sh linux-x64 2>/dev/null
ls -l out/linux-x64 | awk 'NR>1 {printf "  %-16s %8d bytes\n", $9, $5}'

# ---------------------------------------------------------------------------------------------
# The updater end to end: the real Mender client 3.4 runs our `app` Update Module, which drives the
# docker-compose sub-module. The client runs in a private mount namespace (its module directory and
# /etc/mender are bind-mounted from a scratch directory), so nothing on this machine is changed.
bin="$top/out/linux-x64"
demo=$(mktemp -d /tmp/appmodule-demo.XXXXXX)
app=demoweb
port=${DEMO_PORT:-18080}
docker=/usr/bin/docker
cleanup() {
  ids=$("$docker" ps -aq --filter "label=com.docker.compose.project=$app" 2>/dev/null || true)
  [ -n "$ids" ] && "$docker" rm -f $ids >/dev/null 2>&1 || true
  "$docker" network rm "${app}_default" >/dev/null 2>&1 || true
  for t in 1.0 2.0 unhealthy; do "$docker" image rm "appmodule-demo/web:$t" >/dev/null 2>&1 || true; done
  rm -rf "$demo"
}
trap cleanup EXIT
mkdir -p "$demo"/{modules,etc,data,submodules,store,compose-state,v1,v2,v3}
echo "device_type=demo-device" >"$demo/data/device_type"
echo "artifact_name=factory-image" >"$demo/etc/artifact_info"
echo '{"ModuleTimeoutSeconds": 600}' >"$demo/mender.conf"
ln -s "$bin/app" "$demo/modules/app"
ln -s "$bin/docker-compose" "$demo/submodules/docker-compose"
cat >"$demo/etc/mender-app.conf" <<CONF
persistent_store = "$demo/store"
submodules_dir = "$demo/submodules"
health_timeout_seconds = 30
soak_seconds = 3
CONF
cat >"$demo/etc/mender-app-docker-compose.conf" <<CONF
docker_command = "/usr/bin/docker"
state_dir = "$demo/compose-state"
rollout_timeout = 20
CONF
mender() {
  unshare --mount --propagation private /bin/bash -c '
    mount --bind "$0/modules" /usr/share/mender/modules/v3 && mount --bind "$0/etc" /etc/mender &&
    exec mender --config "$0/mender.conf" --fallback-config /nonexistent --data "$0/data" --no-syslog --log-level "${MENDER_LOG:-error}" "$@"' "$demo" "$@"
}
answer() { for _ in $(seq 1 20); do out=$(wget -q -O - "http://127.0.0.1:$port/" 2>/dev/null) && { echo "$out"; return; }; sleep 0.5; done; echo "(no answer)"; }
compose_file() { # image
  printf "services:\n  web:\n    image: %s\n    ports:\n      - \"127.0.0.1:%s:8080\"\n" "$1" "$port"
}

step "Generating app artifacts with app-gen (v1 and v2 healthy, v3 broken: its health check never passes)"
for t in 1.0 2.0 unhealthy; do "$docker" tag "appmodule/web:$t" "appmodule-demo/web:$t"; done
gen() { # name dir image
  compose_file "$3" >"$demo/$2/docker-compose.yml"
  "$bin/app-gen" -q -n "$1" -t demo-device -a "$app" -r docker-compose -p linux/amd64 -m "$demo/$2" -o "$demo/$1.mender"
  printf '  %-10s %8d bytes  (%s)\n' "$1.mender" "$(stat -c %s "$demo/$1.mender")" "$3"
}
gen demo-v1 v1 appmodule-demo/web:1.0
gen demo-v2 v2 appmodule-demo/web:2.0
gen demo-v3 v3 appmodule-demo/web:unhealthy
# The device gets its images only from the artifacts:
for t in 1.0 2.0 unhealthy; do "$docker" image rm "appmodule-demo/web:$t" >/dev/null; done

step "mender install demo-v1.mender, then mender commit"
mender install "$demo/demo-v1.mender"
mender commit
echo "  mender show-artifact: $(mender show-artifact)"
echo "  the app answers: $(answer)"

step "mender install demo-v2.mender, then mender commit"
mender install "$demo/demo-v2.mender"
mender commit
echo "  mender show-artifact: $(mender show-artifact)"
echo "  the app answers: $(answer)"

step "mender install demo-v3.mender: its health check fails, the module rolls back to v2 automatically"
if MENDER_LOG=info mender install "$demo/demo-v3.mender" 2>"$demo/v3.log"; then echo "  unexpected: v3 installed"; exit 1; fi
echo "  what the module logged (from the client's deployment log):"
{ grep -E 'app: (error|info): (ROLLOUT failed|health check failed|rolling back|rolled back)' "$demo/v3.log" || true; } |
  sed -E 's/.*(app: (error|info): )/    /; s/\\"/"/g; s/(\\n)?" *$//; s# \| sub-module output: .* / (.*)$# | sub-module output (last line): \1#' | cut -c1-300
echo "  mender show-artifact: $(mender show-artifact)   (unchanged, no _INCONSISTENT)"
echo "  the app answers: $(answer)"

step "The module's store (app status $app)"
MENDER_APP_CONFIG="$demo/etc/mender-app.conf" "$bin/app" status "$app"
