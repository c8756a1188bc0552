#!/usr/bin/env bash
# Installs dependencies, builds, and runs the whole test suite through ctest:
# unit tests, the HTTP API suite and the real-client suite (skopeo, podman,
# containerd) against a really started edgepier, the mirror, site, fault and
# deploy suites. Then, each in a build tree of its own (README, "Sanitizers"):
#   - AddressSanitizer + UBSan: the unit tests and the API, mirror and site suites;
#   - ThreadSanitizer: the unit tests and the mirror suite (the data plane);
#   - libFuzzer: every committed regression input, then each harness briefly.
# Any sanitizer report fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
(cd build && ctest --output-on-failure --timeout 900)

# ASan + UBSan. UBSan's and LeakSanitizer's suppressions are CAF's
# (tests/sanitizers/ubsan.supp and lsan.supp say why).
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEDGEPIER_SANITIZE=address >/dev/null
cmake --build build-asan -j2 --target edgepier epctl unit_tests caf_intruder
(
  cd build-asan
  export ASAN_OPTIONS=detect_leaks=1
  export LSAN_OPTIONS="suppressions=$PWD/../tests/sanitizers/lsan.supp"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$PWD/../tests/sanitizers/ubsan.supp"
  ctest --output-on-failure --timeout 1500 -R '^(unit|api|mirror|site)$'
)

# TSan: suppressions for CAF and RocksDB only (tests/sanitizers/tsan.supp says
# why). A report ends the process (halt_on_error) and is also written under
# tsan-reports/, which must stay empty. test_faults_mid_transfer times its
# faults to a transfer's pace, which TSan's slowdown changes; it runs above.
cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEDGEPIER_SANITIZE=thread >/dev/null
cmake --build build-tsan -j2 --target edgepier epctl unit_tests
(
  cd build-tsan
  rm -rf tsan-reports && mkdir tsan-reports
  export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/../tests/sanitizers/tsan.supp log_path=$PWD/tsan-reports/report"
  export PYTEST_ADDOPTS="-k 'not test_faults_mid_transfer'"
  ctest --output-on-failure --timeout 1500 -R '^(unit|mirror)$'
  if compgen -G "tsan-reports/report*" >/dev/null; then
    cat tsan-reports/report* | head -200
    echo "ThreadSanitizer reports (above; all in build-tsan/tsan-reports)" >&2
    exit 1
  fi
)

# Fuzzing: regressions replayed, then 15 s per harness.
scripts/fuzz.sh 15
