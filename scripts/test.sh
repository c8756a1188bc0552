#!/usr/bin/env bash
# Installs dependencies, builds, and runs the whole test suite through ctest:
# unit tests, the HTTP API suite and the real-client suite (skopeo, podman,
# containerd) against a really started edgepier.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
cd build
ctest --output-on-failure --timeout 900
