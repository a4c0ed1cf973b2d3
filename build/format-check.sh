#!/usr/bin/env bash
# Checks that the tree follows .editorconfig: whitespace (indentation, line endings, final newline,
# spacing) and the code-style rules marked :warning there. Exits non-zero and lists the files on a
# difference. Fix with: build/format-check.sh --fix
# build/test.sh (make test, CI) runs it first.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
sln="$top/AppModule.sln"
if [ "${1:-}" = "--fix" ]; then
  dotnet format whitespace "$sln"
  dotnet format style "$sln" --severity warn
  exit 0
fi
rc=0
dotnet format whitespace "$sln" --verify-no-changes -v:q || rc=1
dotnet format style "$sln" --severity warn --verify-no-changes -v:q || rc=1
if [ "$rc" -ne 0 ]; then
  echo "format-check.sh: the files above differ from .editorconfig; run build/format-check.sh --fix" >&2
fi
exit "$rc"
