"""Storage lifecycle on pushed images (mirrored ones: tests/mirror/test_mirror_storage.py).

Real nodes (sitelib), images pushed with skopeo. Pinned pushed images are
kept over storage-budget and the node says so once (log, /metrics, epctl
pins); an auto-pin lapses on every node of a site when nobody pulls it for
auto-pin-ttl, and one pull anywhere revives it.
"""
import hashlib
import json
import subprocess
import time

import sitelib as sl
from sitelib import wait_for

MIB = 1 << 20


def used_bytes(node):
    return int(node.metric("edgepier_storage_used_bytes"))


def pins(node):
    return {p["ref"]: p for p in node.admin("/admin/v1/pins")["pins"]}


def image(env, seed, mb, tag="v1"):
    d = env.dir / "images" / seed
    d.parent.mkdir(exist_ok=True)
    return sl.Image(d, "edgepier-storage-" + seed, tag=tag, layer_mb=mb)


def test_pushed_images_are_kept_over_the_budget_and_said_once(tmp_path):
    """A pushed image's only source is the site: auto-pinned or not, a budget
    never evicts it; the node reports being over its budget instead."""
    env = sl.Env()
    try:
        node = env.node("n1", key=env.key, extra=["--edgepier.storage-budget=%d" % (30 * MIB)])
        for i in range(2):
            node.push(image(env, "keep%d" % i, 20), "team/app", "v%d" % i)
        wait_for(lambda: node.metric("edgepier_storage_over_budget") == 1, 20, what="over-budget reported")
        time.sleep(4)  # more replicator rounds: still kept, said once
        assert used_bytes(node) > 30 * MIB
        view = pins(node)
        assert all(view["team/app:v%d" % i]["kind"] == "auto" for i in range(2)), view
        assert all(view["team/app:v%d" % i]["holders"] == ["n1"] for i in range(2)), view
        assert node.log_text().count("more than storage-budget") == 1, node.log_text()
        out = node.epctl("pins").out
        assert "OVER BUDGET" in out and "of a 30.0 MiB budget" in out, out
        # Unpinned, a pushed image is the operator's to lose: the budget holds again.
        node.epctl("pin", "rm", "team/app:v1")
        wait_for(lambda: node.metric("edgepier_storage_over_budget") == 0, 20, what="back within the budget")
        assert used_bytes(node) <= 30 * MIB
        assert "within storage-budget again" in node.log_text()
    finally:
        env.close()


def test_auto_pin_lapses_on_every_node_and_a_pull_revives_it(tmp_path):
    env = sl.Env()
    try:
        names = ["n1", "n2", "n3"]
        first = env.node(names[0], key=env.key, extra=["--edgepier.auto-pin-ttl=4s"])
        nodes = [first] + [env.node(n, key=env.key, seeds=[first.cluster_address], extra=["--edgepier.auto-pin-ttl=4s"])
                           for n in names[1:]]
        wait_for(lambda: sl.full_mesh(nodes), 30, what="full mesh")
        img = image(env, "lapse", 0.2)
        first.push(img, "team/web", "v1")
        ref = "team/web:v1"
        wait_for(lambda: all(ref in pins(n) and not pins(n)[ref]["lapsed"] for n in nodes), 10,
                 what="the auto-pin everywhere")
        wait_for(lambda: all(pins(n)[ref]["lapsed"] for n in nodes), 15, what="the auto-pin lapsed on every node")
        assert all(pins(n)[ref]["kind"] == "auto" for n in nodes)
        assert "auto (lapsed)" in nodes[1].epctl("pins").out
        # One pull on n3 raises the last use site-wide.
        assert nodes[2].http_status("/v2/team/web/manifests/v1") == 200
        wait_for(lambda: not any(pins(n)[ref]["lapsed"] for n in nodes), 10, what="revived on every node")
        uses = {pins(n)[ref]["last_used_ms"] for n in nodes}
        assert len(uses) == 1, uses  # the same register everywhere
    finally:
        env.close()


def upload_blob(node, repo, data):
    s = node.session
    r = s.post(node.url + "/v2/%s/blobs/uploads/" % repo, timeout=5)
    assert r.status_code == 202, r.text
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    location = r.headers["Location"]
    url = (location if location.startswith("http") else node.url + location)
    r = s.put(url + ("&" if "?" in url else "?") + "digest=" + digest, data=data, timeout=5)
    assert r.status_code == 201, r.text
    return digest


def blob_status(node, repo, digest):
    return node.session.head(node.url + "/v2/%s/blobs/%s" % (repo, digest), timeout=5).status_code


def gc_doc(node, run=False):
    return node.epctl("gc", *(["--run"] if run else []), json_out=True).doc


def test_gc_removes_what_nothing_references_after_the_grace(tmp_path):
    env = sl.Env()
    try:
        node = env.node("n1", key=env.key, extra=["--edgepier.gc-grace=3s"])
        img = image(env, "gc", 0.2)
        node.push(img, "team/app", "v1")
        loose = upload_blob(node, "team/app", b"no manifest will list this")
        kept = upload_blob(node, "team/app", b'{"architecture":"amd64","os":"linux"}')
        # An upload in progress: a first chunk, more to come.
        r = node.session.post(node.url + "/v2/team/app/blobs/uploads/", timeout=5)
        upload = r.headers["Location"]
        upload = upload if upload.startswith("http") else node.url + upload
        r = node.session.patch(upload, data=b"x" * 1000, headers={"Content-Type": "application/octet-stream"},
                               timeout=5)
        assert r.status_code == 202, r.text
        upload = r.headers["Location"] if r.headers["Location"].startswith("http") else node.url + r.headers["Location"]

        plan = gc_doc(node)  # dry run: seen, not yet due
        assert plan["ran"] is False
        listed = {i["id"]: i for i in plan["items"]}
        assert listed[loose]["kind"] == "blob" and not listed[loose]["due"], plan
        assert not any(d in listed for d in (img.digest,)), plan
        assert "after gc-grace" in node.epctl("gc").out

        # A manifest arrives for one of the loose blobs within the grace: it is never collected.
        manifest = {"schemaVersion": 2, "mediaType": sl.OCI_MANIFEST,
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": kept,
                               "size": len(b'{"architecture":"amd64","os":"linux"}')},
                    "layers": []}
        node.put_manifest("team/app", "config-only", json.dumps(manifest).encode())
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:  # the upload keeps writing through the grace
            r = node.session.patch(upload, data=b"y" * 100, headers={"Content-Type": "application/octet-stream"},
                                   timeout=5)
            assert r.status_code == 202, r.text
            upload = r.headers["Location"] if r.headers["Location"].startswith("http") else node.url + r.headers["Location"]
            time.sleep(0.5)
        done = gc_doc(node, run=True)
        assert done["removed"] == 1, done
        assert blob_status(node, "team/app", loose) == 404
        assert blob_status(node, "team/app", kept) == 200
        assert node.session.get(upload, timeout=5).status_code == 204  # the upload goes on
        for layer in json.loads(img.manifest_raw)["layers"]:
            assert blob_status(node, "team/app", layer["digest"]) == 200

        # An abandoned upload, and an image whose manifest was deleted, go after the grace.
        r = node.session.delete(node.url + "/v2/team/app/manifests/" + img.digest, timeout=5)
        assert r.status_code == 202, r.text
        gc_doc(node)  # starts their grace
        time.sleep(3.5)
        done = gc_doc(node, run=True)
        kinds = sorted(i["kind"] for i in done["items"] if i["due"])
        assert kinds.count("upload") == 1 and kinds.count("blob") == 2, done  # config + layer
        assert node.session.get(upload, timeout=5).status_code == 404
        for layer in json.loads(img.manifest_raw)["layers"]:
            assert blob_status(node, "team/app", layer["digest"]) == 404
        assert "nothing to collect" in node.epctl("gc").out
    finally:
        env.close()


def test_a_node_killed_in_the_middle_of_a_gc_loses_nothing_it_needs(tmp_path):
    """kill -9 while a collection removes hundreds of loose blobs: after the
    restart every image still pulls whole, and the next collection finishes
    the job."""
    env = sl.Env()
    try:
        node = env.node("n1", key=env.key, extra=["--edgepier.gc-grace=1s"])
        img = image(env, "gc-kill", 0.5)
        node.push(img, "team/app", "v1")
        loose = [upload_blob(node, "team/app", b"loose blob %d " % i * 200) for i in range(300)]
        gc_doc(node)  # their grace starts
        time.sleep(1.5)
        run = subprocess.Popen([sl.EPCTL, "--admin", node.admin_url, "gc", "--run"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.01)
        node.kill9()
        run.wait(10)
        node.start()
        gone = sum(blob_status(node, "team/app", d) == 404 for d in loose)
        print("blobs removed before the kill: %d of %d" % (gone, len(loose)))
        out = env.dir / "pulled"
        env.skopeo(["copy", "--src-tls-verify=false", "docker://%s/team/app:v1" % node.url.split("//", 1)[1],
                    "oci:%s:v1" % out])
        pulled = json.loads((out / "index.json").read_text())["manifests"][0]["digest"]
        assert pulled == img.digest  # skopeo verified every blob against its digest
        for layer in json.loads(img.manifest_raw)["layers"]:
            assert blob_status(node, "team/app", layer["digest"]) == 200
        gc_doc(node)
        time.sleep(1.5)
        gc_doc(node, run=True)
        assert all(blob_status(node, "team/app", d) == 404 for d in loose)
        assert all(blob_status(node, "team/app", layer["digest"]) == 200
                   for layer in json.loads(img.manifest_raw)["layers"])
    finally:
        env.close()
