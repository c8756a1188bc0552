#!/bin/sh
# ctest entry "faults": the site benchmark's CI-sized fault suite. It needs root
# (network namespaces, tc); elsewhere it is reported as skipped (exit 77).
# Usage: run-faults.sh EDGEPIER EPCTL OUTDIR
if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null 2>&1; then
  echo "faults: needs root and iproute2 (network namespaces): skipped"
  exit 77
fi
exec /usr/bin/python3 "$(dirname "$0")/../bench/site-bench" faults --quick --fault-systems edgepier-site \
  --edgepier "$1" --epctl "$2" --out "$3"
