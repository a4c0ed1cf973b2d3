#!/usr/bin/env bash
# `make bench`: builds what the benchmarks need (test images, the AOT executables, the AOT hello
# world), runs bench/bench.py, writes bench/results/<UTC date>-<host>.md (+ .json) and puts the
# table into README.md's "Benchmarks" section. Prints the table on stdout; progress on stderr.
# Environment: see bench/bench.py (BENCH_REPS, BENCH_LAYER_MIB, BENCH_ONLY, BENCH_KEEP, ...);
# BENCH_NO_PUBLISH=1 uses out/linux-x64 as it is; BENCH_NO_README=1 leaves README.md alone.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd); cd "$top"
say() { printf '==> %s\n' "$*" >&2; }

command -v hyperfine >/dev/null || { echo "bench: hyperfine is missing: run make deps (build/deps.sh installs it)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "bench: python3 is missing: apt-get install python3" >&2; exit 1; }

say "test images"
build/test-images.sh

bin=${APPMODULE_BIN_DIR:-$top/out/linux-x64}
if [ -z "${BENCH_NO_PUBLISH:-}" ] && [ -z "${APPMODULE_BIN_DIR:-}" ]; then
  say "publishing the executables (Native AOT; incremental when nothing changed)"
  build/publish.sh linux-x64 >&2
fi
hello=$top/out/bench/hello
if [ -z "${BENCH_NO_PUBLISH:-}" ] || [ ! -x "$hello" ]; then
  say "publishing bench/hello (Native AOT)"
  dotnet publish bench/hello -c Release -r linux-x64 -o "$top/out/bench" -nologo -v:q -clp:NoSummary >&2
  rm -f "$top/out/bench/"*.dbg
fi

host=$(hostname -s 2>/dev/null || hostname)
out=${BENCH_OUT:-$top/bench/results/$(date -u +%Y-%m-%d)-$host.md}
export APPMODULE_BIN_DIR=$bin BENCH_HELLO=$hello BENCH_OUT=$out
python3 bench/bench.py
say "results in ${out#"$top"/}"

# README.md: the latest table between the markers of the "Benchmarks" section.
if [ -z "${BENCH_NO_README:-}" ] && grep -q '^<!-- bench:begin -->$' README.md; then
  python3 - "$out" <<'EOF'
import re, sys
# the run's description and the summary table (the first two paragraphs after the title)
table = "\n\n".join(open(sys.argv[1]).read().split("\n\n")[1:3]) + "\n\n"
name = sys.argv[1].rsplit("/", 1)[-1]
readme = open("README.md").read()
body = f"<!-- bench:begin -->\nLatest run (details per step in `bench/results/{name}`):\n\n{table}<!-- bench:end -->"
readme = re.sub(r"<!-- bench:begin -->.*?<!-- bench:end -->", lambda _: body, readme, flags=re.S)
open("README.md", "w").write(readme)
EOF
  say "README.md: Benchmarks section updated"
fi
