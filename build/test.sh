#!/usr/bin/env bash
# The whole test suite: AOT-publish the executables the tests drive, then run every test project.
# The slow fault-injection matrix (Category=Faults) runs separately: `make test-faults` (CI runs both).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
# One code style (.editorconfig): a formatting difference fails the run before anything slow starts.
build/format-check.sh
build/publish.sh linux-x64
build/publish.sh linux-arm64          # the arm64 binaries are tested under qemu (tests/Packaging.Tests)
build/arm64-sysroot.sh out/arm64-root
export APPMODULE_BIN_DIR="$top/out/linux-x64"
dotnet build AppModule.sln -c Debug -nologo -v:q -clp:NoSummary
set +e
dotnet test AppModule.sln -c Debug --no-build -nologo --filter "Category!=Faults" --logger "console;verbosity=minimal" 2>&1 | tee out/test.log
rc=${PIPESTATUS[0]}
set -e
# The runner's summary, one line per test project, ends the output, after one line per failed test
# (its name and the first line of its message), so that the tail of a CI log says what failed.
echo
echo "==> failed tests"
awk '/^  Failed .* \[[^]]*\]$/ { name = $0; sub(/^  Failed /, "", name); sub(/ \[[^]]*\]$/, "", name); want = 0; next }
     name != "" && /^  Error Message:/ { want = 1; next }
     want { sub(/^ +/, ""); print "FAILED " name ": " substr($0, 1, 240); name = ""; want = 0 }' out/test.log
echo "==> test summary"
grep -E '^\s*(Passed!|Failed!)' out/test.log || true
exit "$rc"
