#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#  1. a normal build (-Werror) and every ctest test (unit, device,
#     integration, guest boots);
#  2. a second build with AddressSanitizer and UndefinedBehaviorSanitizer
#     that runs the unit and device tests and the system and bad guests;
#  3. the libFuzzer targets, built with clang, each run for a short time.
# Fails if any test fails or if no test ran.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
"$(dirname "$0")/deps.sh"

step() { printf '\n=== %s ===\n' "$*"; }

step "build (RelWithDebInfo, -Werror)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
step "tests"
ctest --test-dir build --output-on-failure --no-tests=error -j"$jobs"

step "build with ASan + UBSan"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMODVM_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
step "unit and device tests under ASan + UBSan"
LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp \
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	ctest --test-dir build-asan --output-on-failure --no-tests=error -j"$jobs" -L 'unit|device'
step "system and bad guests under ASan + UBSan (modvm must survive them cleanly)"
LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp \
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	ctest --test-dir build-asan --output-on-failure --no-tests=error -j"$jobs" -R '^bt/(system/|bad-guests)'

step "fuzz targets (clang, libFuzzer)"
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DMODVM_FUZZ=ON >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzz-all
ctest --test-dir build-fuzz --output-on-failure --no-tests=error -L fuzz
echo
echo "all test stages passed"
