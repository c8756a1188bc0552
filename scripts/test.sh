#!/usr/bin/env bash
# Installs dependencies, builds, and runs the whole test suite through ctest:
# unit tests, the HTTP API suite and the real-client suite (skopeo, podman,
# containerd) against a really started edgepier, the mirror, site, fault and
# deploy suites; then the unit tests and the API suite again under
# AddressSanitizer + UBSan (a build tree of its own, build-asan).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
(cd build && ctest --output-on-failure --timeout 900)

# Sanitizers (README, "Sanitizers"): any report fails the run. UBSan's one
# suppression is CAF's (tests/sanitizers/ubsan.supp says why).
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEDGEPIER_SANITIZE=address >/dev/null
cmake --build build-asan -j2 --target edgepier epctl unit_tests
cd build-asan
export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$PWD/../tests/sanitizers/ubsan.supp"
ctest --output-on-failure --timeout 900 -R '^(unit|api)$'
