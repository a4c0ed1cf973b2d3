#!/usr/bin/env bash
# Prints the shipped executables, one per line, tab-separated and sorted by project:
#   <project dir, relative to the repository>  <binary>  <install path in the layout>  <.deb package>
# The list comes from the csproj files themselves (<AppModuleShipped>true</AppModuleShipped>, see
# build/Shipped.targets), so adding an executable is one csproj flag. Used by build/publish.sh,
# packaging/layout.sh, packaging/build-debs.sh and tests/Publish.Tests.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
list=$(mktemp); trap 'rm -f "$list"' EXIT
if ! dotnet msbuild "$top/build/shipped.proj" -t:List -p:ListFile="$list" -nologo -v:q -clp:NoSummary >&2; then
  echo "shipped.sh: could not evaluate the projects (dotnet msbuild build/shipped.proj failed)" >&2
  exit 1
fi
sed "s|^$top/||" "$list" | sort
