#!/usr/bin/env bash
# Publishes every shipped executable with Native AOT for one RID into out/<rid>/.
# Any IL/trim/AOT warning fails the build (TreatWarningsAsErrors in Directory.Build.props).
set -euo pipefail
rid=${1:-linux-x64}
top=$(cd "$(dirname "$0")/.." && pwd)
out="$top/out/$rid"
mkdir -p "$out"
# The shipped executables: the csproj files with <AppModuleShipped>true</AppModuleShipped> (build/shipped.sh).
mapfile -t projects < <("$top/build/shipped.sh" | cut -f1)
[ "${#projects[@]}" -gt 0 ] || { echo "publish.sh: build/shipped.sh listed no executable" >&2; exit 1; }
for p in "${projects[@]}"; do
  printf '==> publish %s (%s, Native AOT)\n' "$p" "$rid" >&2
  dotnet publish "$top/$p" -c Release -r "$rid" -o "$out" -p:TreatWarningsAsErrors=true -nologo -v:q -clp:NoSummary >&2
done
rm -f "$out"/*.dbg "$out"/*.pdb
ls -l "$out" >&2
