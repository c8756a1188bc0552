"""A site where one node's disk is full: the others keep pulling.

Three mirror nodes in one site in front of a real docker-registry; s2's data
dir is a 32 MiB tmpfs filled to the brim. s1 and s3 pull the same cold image
at once (s2, a designated fetcher for some chunks, cannot stage any): both
get the whole image, from the members and the uplink, with each chunk
fetched from upstream about once. A pull through s2 is refused with 507 and
a message that says why, and s2 stays a live member.
"""
import json
import os
import subprocess
import threading

import pytest

import mirrorlib as ml
from test_mirror_site import flag, members, pull_ok, upstream_bytes, wait_mesh

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs: needs root")


def test_peers_of_a_full_node_keep_pulling(env):
    img = ml.make_image(env.dir / "img", "disk-full-site", layers=2, layer_mb=3, tag="v1")
    up = env.upstream()
    up.push(img, "app")
    small = env.dir / "small"
    small.mkdir()
    ml.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(small)])
    nodes = []
    try:
        key = env.dir / "site.key"
        ml.run([ml.EPCTL, "keygen", str(key)])
        for name in ("s1", "s2", "s3"):
            extra = ["--edgepier.node-name=" + name, "--edgepier.site-key-file=%s" % key,
                     "--edgepier.chunk-size=%d" % (256 << 10), "--edgepier.min-free-space=%d" % (4 << 20)]
            if name == "s2":
                extra.append("--edgepier.data-dir=%s" % (small / "data"))
            if nodes:
                extra.append("--edgepier.seeds=%s" % json.dumps([flag(nodes[0], "cluster-address")]))
            nodes.append(env.node({"up": up.url}, default="up", extra=extra))
        wait_mesh(nodes)
        subprocess.run(["dd", "if=/dev/zero", "of=%s" % (small / "filler"), "bs=1M"], capture_output=True)
        s1, s2, s3 = nodes

        errors = []

        def pull(node, label):
            try:
                pull_ok(env, node, "app", "v1", img, label)
            except Exception as e:  # reported below, with the node
                errors.append((label, e))
        threads = [threading.Thread(target=pull, args=(n, l)) for n, l in ((s1, "s1"), (s3, "s3"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        assert not errors, errors
        total = sum(img["blobs"].values())
        fetched = sum(upstream_bytes(n) for n in nodes)
        assert fetched <= 1.3 * total, "upstream bytes %d for an image of %d" % (fetched, total)

        r = s2.blob("app", img["layer_digests"][0])
        assert r.status_code == 507 and "out of storage space" in r.text, (r.status_code, r.text)
        # Its manifest is new content too: served if it was stored before, else refused the same way.
        m = s2.manifest("app", "v1")
        assert m.status_code == 200 or (m.status_code == 507 and "out of storage space" in m.text), m.text
        assert members(s1).get("s2") == "alive"
    finally:
        for node in nodes:  # before the unmount: s2 must not hold the file system
            node.stop()
        subprocess.run(["umount", "-l", str(small)], check=False)
