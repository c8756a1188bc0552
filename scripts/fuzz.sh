#!/usr/bin/env bash
# Builds the libFuzzer harnesses of tests/fuzz in build-fuzz (clang-14,
# -DEDGEPIER_FUZZ=ON: ASan + UBSan + libFuzzer), replays every committed
# regression input, then fuzzes each harness for SECONDS (default 30) on a
# copy of its seed corpus (tests/fuzz/corpus/<name> only ever holds seeds;
# the grown corpora stay in build-fuzz/fuzz-run). Prints a table of
# executions, exec/s, coverage (libFuzzer's cov: edges and ft: features)
# and corpus size; exits 1 if a harness crashed, leaked, timed out or hit
# UBSan (the input is saved in build-fuzz/fuzz-run/<name>/).
# tests/fuzz/<name>.dict, where there is one, is the harness's dictionary.
#   scripts/fuzz.sh [SECONDS]        e.g. scripts/fuzz.sh 60
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
build=build-fuzz
run=$build/fuzz-run

CC=clang-14 CXX=clang++-14 cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEDGEPIER_FUZZ=ON >/dev/null
cmake --build "$build" -j2 --target fuzz_all

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:suppressions=$PWD/tests/sanitizers/ubsan.supp
rm -rf "$run"
mkdir -p "$run"
failed=()
rows=()
for source in tests/fuzz/fuzz_*.cc; do
  name=$(basename "$source" .cc)
  name=${name#fuzz_}
  bin=$build/bin/fuzz_$name
  out=$run/$name
  mkdir -p "$out/corpus"
  # Known crashers first: each must now pass.
  regressions=(tests/fuzz/regressions/"$name"/*)
  if [[ -e ${regressions[0]} ]] && ! "$bin" "${regressions[@]}" >"$out/regressions.log" 2>&1; then
    echo "fuzz_$name: a regression input fails again, see $out/regressions.log"
    failed+=("$name (regression)")
  fi
  cp -r tests/fuzz/corpus/"$name"/. "$out/corpus/"
  echo "fuzz_$name: ${seconds}s"
  dict=()
  [[ -f tests/fuzz/$name.dict ]] && dict=(-dict="tests/fuzz/$name.dict")
  status=ok
  "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" \
    -artifact_prefix="$out/" "$out/corpus" >"$out/fuzz.log" 2>&1 || status=CRASH
  if [[ $status != ok ]]; then
    failed+=("$name")
    grep -m1 -E 'ERROR: |runtime error|invariant violated|Test unit written' "$out/fuzz.log" || true
    ls "$out"/crash-* "$out"/leak-* "$out"/timeout-* "$out"/oom-* 2>/dev/null || true
  fi
  last=$(grep -E '^#[0-9]+' "$out/fuzz.log" | tail -1)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/fuzz.log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out/fuzz.log")
  cov=$(grep -o 'cov: [0-9]*' <<<"$last" | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' <<<"$last" | cut -d' ' -f2)
  files=$(find "$out/corpus" -type f | wc -l)
  bytes=$(find "$out/corpus" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d", s / 1024 }')
  rows+=("$(printf '%-16s %-6s %12s %8s %7s %7s %8s %8s' "$name" "$status" "${execs:--}" "${rate:--}" "${cov:--}" \
    "${ft:--}" "$files" "${bytes}K")")
done

echo
printf '%-16s %-6s %12s %8s %7s %7s %8s %8s\n' harness result executions exec/s cov ft files size
for row in "${rows[@]}"; do echo "$row"; done
if ((${#failed[@]})); then
  echo "FAILED: ${failed[*]} (inputs and logs in $run)"
  exit 1
fi
