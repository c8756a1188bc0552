#!/usr/bin/env bash
# Installs, builds, starts one edgepier node on 127.0.0.1:5000, pushes a
# generated image with skopeo, pulls it back and shows it. Stops the node at
# the end (Ctrl-C also cleans up).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
work=$(mktemp -d /tmp/edgepier-demo.XXXXXX)
cleanup() { [ -n "${node:-}" ] && kill "$node" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM
build/bin/edgepier --edgepier.registry-address=127.0.0.1:5000 --edgepier.data-dir="$work/data" \
  --edgepier.node-name=demo 2>"$work/node.log" &
node=$!
for _ in $(seq 50); do curl -fs http://127.0.0.1:5000/healthz >/dev/null && break; sleep 0.1; done
echo "== node up: $(curl -s http://127.0.0.1:5000/v2/ -o /dev/null -w '%{http_code} %header{docker-distribution-api-version}')"
echo "== generating an image (3 layers x 4 MB)"
python3 tools/mkimage.py "$work/image" --seed 1 --layers 3 --layer-mb 4 --tag v1
echo "== pushing with skopeo"
skopeo copy -q --dest-tls-verify=false "oci:$work/image:v1" docker://127.0.0.1:5000/demo/app:v1
echo "== pulling it back"
skopeo copy -q --src-tls-verify=false docker://127.0.0.1:5000/demo/app:v1 "oci:$work/pulled:v1"
echo "== what the registry has"
curl -s http://127.0.0.1:5000/v2/_catalog; echo
curl -s http://127.0.0.1:5000/v2/demo/app/tags/list; echo
skopeo inspect --tls-verify=false docker://127.0.0.1:5000/demo/app:v1 | head -20
echo "== metrics (excerpt)"
curl -s http://127.0.0.1:5000/metrics | grep -E '^edgepier_(http_requests_total|storage_used_bytes)' | head
