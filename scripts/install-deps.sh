#!/usr/bin/env bash
# Installs everything edgepier needs to build, test and benchmark on Debian 12.
set -euo pipefail
PKGS=(
  build-essential cmake ninja-build ccache pkg-config
  libcaf-dev libboost-dev libboost-system-dev librocksdb-dev libsodium-dev
  libprotobuf-dev protobuf-compiler libcli11-dev catch2 nlohmann-json3-dev libspdlog-dev libssl-dev
  python3 python3-pytest python3-requests python3-yaml python3-matplotlib libedit-dev curl jq wrk iproute2 util-linux
  skopeo podman containerd docker-registry apache2-utils openssl libcrypt-dev
  dpkg-dev umoci chromium ca-certificates
  clang-14 libfuzzer-14-dev libclang-rt-14-dev
)
# kubectl (for `kubectl kustomize` in tests/deploy): Debian's kubernetes-client,
# unless some kubectl is installed already (a kubectl package owns /usr/bin/kubectl
# on some machines, and the two cannot both be installed).
command -v kubectl >/dev/null || PKGS+=(kubernetes-client)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
