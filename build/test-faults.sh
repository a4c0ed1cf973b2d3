#!/usr/bin/env bash
# The fault-injection matrix (tests/Hardening.Tests, Category=Faults): SIGKILLs `app` or the
# docker-compose sub-module at each step of ArtifactInstall/Commit/Rollback/Cleanup under the real
# Mender client, plus the engine's own faults on a private dockerd (restarted during ROLLOUT, its
# disk filling up during LOAD), and the fleet agent SIGKILLed at each step of an update
# (AgentKillTests) and before each store rename (AgentStoreWriteFaultTests). Slow (several real updates per cell), so it is not part of
# `make test`; CI runs both.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
[ -x out/linux-x64/app ] && [ -x out/linux-x64/docker-compose ] || build/publish.sh linux-x64
export APPMODULE_BIN_DIR="$top/out/linux-x64" HARDENING_FAULTS=1
dotnet test tests/Hardening.Tests -c Debug -nologo --filter "Category=Faults" --logger "console;verbosity=minimal"
