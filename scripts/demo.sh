#!/usr/bin/env bash
# Installs, builds, and runs a small site on this machine: three edgepier nodes
# on loopback sharing a site key. Pushes a generated image to node 1 with
# skopeo, pulls it from node 3 (its blobs come from node 1 over the encrypted
# peer stream), and shows the site with epctl. Stops everything at the end
# (Ctrl-C also cleans up).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
work=$(mktemp -d /tmp/edgepier-demo.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM
build/bin/epctl keygen "$work/site.key" >/dev/null
for i in 1 2 3; do
  build/bin/edgepier --edgepier.node-name="edge-$i" --edgepier.data-dir="$work/node$i" \
    --edgepier.registry-address="127.0.0.1:500$i" --edgepier.admin-address="127.0.0.1:505$i" \
    --edgepier.cluster-address="127.0.0.1:794$i" --edgepier.data-address="127.0.0.1:795$i" \
    --edgepier.site-key-file="$work/site.key" '--edgepier.seeds=["127.0.0.1:7941","127.0.0.1:7942"]' \
    2>"$work/node$i.log" &
  pids+=($!)
done
for i in 1 2 3; do
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:500$i/healthz" >/dev/null && break; sleep 0.1; done
done
sleep 2
echo "== the site, as edge-3 sees it"
build/bin/epctl --admin http://127.0.0.1:5053 members
echo "== generating an image (3 layers x 4 MB) and pushing it to edge-1"
python3 tools/mkimage.py "$work/image" --seed 1 --layers 3 --layer-mb 4 --tag v1 >/dev/null
skopeo copy -q --dest-tls-verify=false "oci:$work/image:v1" docker://127.0.0.1:5001/demo/app:v1
echo "== the replicated tag, as edge-2 sees it"
build/bin/epctl --admin http://127.0.0.1:5052 tags
echo "== pulling it from edge-3"
skopeo copy -q --src-tls-verify=false docker://127.0.0.1:5003/demo/app:v1 "oci:$work/pulled:v1"
if diff <(ls "$work/image/blobs/sha256") <(ls "$work/pulled/blobs/sha256") >/dev/null; then
  echo "   every blob pulled from edge-3 matches what was pushed to edge-1"
fi
sleep 4
echo "== pins (auto-pinned on push) and what edge-2 replicated in the background"
build/bin/epctl --admin http://127.0.0.1:5052 pins
build/bin/epctl --admin http://127.0.0.1:5052 blobs
echo "== traffic on edge-3"
build/bin/epctl --admin http://127.0.0.1:5053 stats
