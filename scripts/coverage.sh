#!/usr/bin/env bash
# Line and function coverage of the unit and device tests (gcov + lcov):
# builds build-cov with -DMODVM_COVERAGE=ON, runs `ctest -L LABELS`
# (default 'unit|device'), and prints the summary of core/, plugins/ and
# sdk/ (tests themselves excluded). HTML report: build-cov/coverage/index.html.
# usage: scripts/coverage.sh [LABELS] [JOBS]
set -euo pipefail
cd "$(dirname "$0")/.."
labels=${1:-unit|device}
jobs=${2:-2}
cmake -S . -B build-cov -DCMAKE_BUILD_TYPE=Debug -DMODVM_COVERAGE=ON >/dev/null
cmake --build build-cov -j"$jobs" >/dev/null
find build-cov -name '*.gcda' -delete
ctest --test-dir build-cov -j"$jobs" -L "$labels" --output-on-failure || true
lcov -q --capture --directory build-cov --output-file build-cov/all.info \
	--rc lcov_branch_coverage=0 2>/dev/null
lcov -q --extract build-cov/all.info "$PWD/core/*" "$PWD/plugins/*" "$PWD/sdk/*" \
	--output-file build-cov/modvm.info
genhtml -q build-cov/modvm.info --output-directory build-cov/coverage
echo "coverage of core/, plugins/, sdk/ by ctest -L '$labels':"
lcov --summary build-cov/modvm.info 2>&1 | grep -E "lines|functions"
for d in core plugins; do
	lcov -q --extract build-cov/modvm.info "$PWD/$d/*" --output-file build-cov/$d.info
	printf '%s: ' "$d"
	lcov --summary build-cov/$d.info 2>&1 | grep -E "lines" | sed 's/^ *//'
done
git clean -fdq tests/fuzz/corpus 2>/dev/null || true
