"""storage-budget on a mirror node: auto-pins are cache hints, explicit pins stay.

A real docker-registry upstream and a mirror node with a budget, pulled by
skopeo. A stream of new tags stays within the budget (the oldest-used
auto-pinned images go first, and come back from the upstream on the next
pull); explicit pins are kept over the budget, and the node says so once
(log, /metrics, epctl pins). On a disk too full for a write, cached images
are evicted to make room before the write would be refused.
"""
import hashlib
import os
import re
import shutil
import subprocess
import time

import pytest
import requests

import mirrorlib as ml

MIB = 1 << 20


def metric(node, name):
    text = requests.get(node.url + "/metrics", timeout=5).text
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    assert m, "%s not on /metrics" % name
    return int(m.group(1))


def pins(node):
    doc = requests.get(node.admin_url + "/admin/v1/pins", timeout=5).json()
    return {p["ref"]: p for p in doc["pins"]}


def epctl(node, *args):
    return ml.run([ml.EPCTL, "--admin", node.admin_url] + list(args)).out


def mirror_with_budget(env, repo, tags, budget):
    """An upstream holding a 20 MiB image under each of `tags`, and a node
    mirroring it (default upstream ns1) with storage-budget `budget`."""
    up = env.upstream()
    made = []
    for i, tag in enumerate(tags):
        made.append(ml.make_image(env.dir / ("img-%s" % tag), "edgepier-%s-%s" % (repo.replace("/", "-"), tag),
                                  layers=1, layer_mb=20, tag="v1"))
        up.push(made[-1], repo, tag)
    node = env.node({"ns1": up.url}, default="ns1", tag_ttl="60s",
                    extra=["--edgepier.storage-budget=%d" % budget])
    return node, made


def test_budget_holds_under_a_stream_of_new_tags(env):
    node, builds = mirror_with_budget(env, "ci/app", ["build-%d" % i for i in range(4)], 45 * MIB)
    for i, img in enumerate(builds):
        out = env.dir / ("pull%d" % i)
        node.pull("ci/app", "build-%d" % i, out)
        assert ml.oci_layout_manifest_digest(out) == img["manifest"]
        ml.wait_for(lambda: metric(node, "edgepier_storage_used_bytes") <= 45 * MIB, 20, what="within the budget")
    view = pins(node)
    refs = ["ns1/ci/app:build-%d" % i for i in range(4)]
    assert all(view[r]["kind"] == "auto" for r in refs), view
    assert len(view[refs[3]]["holders"]) == 1 and view[refs[0]]["holders"] == [], view
    assert metric(node, "edgepier_storage_evicted_blobs_total") >= 2
    assert metric(node, "edgepier_storage_over_budget") == 0
    out = epctl(node, "pins")
    assert "of a 45.0 MiB budget" in out and "OVER BUDGET" not in out, out
    # Nothing is lost: the evicted build comes back from the upstream.
    again = env.dir / "again"
    node.pull("ci/app", "build-0", again)
    assert ml.oci_layout_blobs(again) == builds[0]["blobs"]


def test_explicit_pins_stay_over_the_budget(env):
    node, _ = mirror_with_budget(env, "team/app", ["v0", "v1"], 30 * MIB)
    for i in range(2):
        node.pull("team/app", "v%d" % i, env.dir / ("pull%d" % i))
        epctl(node, "pin", "add", "ns1/team/app:v%d" % i)
    refs = ["ns1/team/app:v0", "ns1/team/app:v1"]
    ml.wait_for(lambda: all(len(pins(node)[r]["holders"]) == 1 for r in refs), 30, what="both images held")
    ml.wait_for(lambda: metric(node, "edgepier_storage_over_budget") == 1, 20, what="over-budget reported")
    assert metric(node, "edgepier_storage_used_bytes") > 30 * MIB
    assert all(pins(node)[r]["kind"] == "explicit" for r in refs)
    out = epctl(node, "pins")
    assert "OVER BUDGET" in out and "explicit" in out, out
    assert node.log.read_text().count("more than storage-budget") == 1, node.log.read_text()[-3000:]
    # Unpinning one lets the budget hold again.
    epctl(node, "pin", "rm", refs[1])
    ml.wait_for(lambda: metric(node, "edgepier_storage_over_budget") == 0, 20, what="back within the budget")
    assert metric(node, "edgepier_storage_used_bytes") <= 30 * MIB
    assert len(pins(node)[refs[0]]["holders"]) == 1
    assert "within storage-budget again" in node.log.read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs: needs root")
def test_a_push_to_a_full_disk_evicts_cached_images_first(env):
    """A 64 MiB data dir holds a 24 MiB cached (auto-pinned, mirrored) image.
    A 36 MiB push does not fit beside it and min-free-space (8 MiB), whatever
    RocksDB takes: the cache is evicted and the push succeeds. The pushed
    blob is never evicted; once it is deleted and collected, the image comes
    back from the upstream."""
    up = env.upstream()
    img = ml.make_image(env.dir / "cached", "edgepier-make-room", layers=2, layer_mb=12, tag="v1")
    up.push(img, "cache/app", "v1")
    small = env.dir / "small"
    small.mkdir()
    ml.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(small)])
    node = None
    try:
        node = env.node({"ns1": up.url}, default="ns1",
                        extra=["--edgepier.data-dir=%s" % (small / "data"), "--edgepier.min-free-space=%d" % (8 * MIB),
                               "--edgepier.gc-grace=1s"])
        node.pull("cache/app", "v1", env.dir / "first")
        assert shutil.disk_usage(small).free < (36 + 8) * MIB  # the push cannot fit without eviction
        blob = os.urandom(36 * MIB)
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        r = requests.post(node.url + "/v2/team/big/blobs/uploads/?digest=" + digest, data=blob,
                          headers={"Content-Type": "application/octet-stream"}, timeout=60)
        assert r.status_code == 201, (r.status_code, r.text)
        assert requests.get(node.url + "/v2/team/big/blobs/" + digest, timeout=30).content == blob
        assert metric(node, "edgepier_storage_evicted_blobs_total") >= 2
        assert "evicted" in node.log.read_text()

        assert requests.delete(node.url + "/v2/team/big/blobs/" + digest, timeout=30).status_code == 202
        blobs_dir = small / "data" / "blobs"

        def blob_files():
            return {p: p.stat().st_size for p in blobs_dir.rglob("*") if p.is_file()}

        before, files_before = shutil.disk_usage(small).free, blob_files()
        epctl(node, "gc")  # the collector's first sight of it unreferenced
        time.sleep(1.5)    # gc-grace
        epctl(node, "gc", "--run")
        # The replicator may bring evicted blobs of the pinned image back meanwhile:
        # their bytes are counted as space that came back and was taken again.
        files_after = blob_files()
        refetched = sum(size for p, size in files_after.items() if p not in files_before)
        assert not any(p.name == digest.split(":")[1] for p in files_after), "the collected blob is still stored"
        assert shutil.disk_usage(small).free + refetched >= before + 30 * MIB, \
            "the collected blob's space did not come back (%d bytes refetched meanwhile)" % refetched
        again = env.dir / "again"
        node.pull("cache/app", "v1", again)
        assert ml.oci_layout_blobs(again) == img["blobs"]
    finally:
        if node:
            node.stop()
        subprocess.run(["umount", "-l", str(small)], check=False)
