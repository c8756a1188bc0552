"""epctl fsck on real nodes, with files damaged on disk.

Two nodes; an image pushed to n1 is replicated to n2. On n1 one layer is
corrupted (bytes flipped), the config truncated, and a second image's layer
deleted. `epctl fsck` names each problem and exits 1; `--repair`
quarantines the corrupt blobs; the replicator fetches them again from n2,
and then fsck is clean (exit 0) and the image pulls whole from n1.
"""
import json

import sitelib as sl
from sitelib import wait_for


def blob_file(node, digest):
    hex_ = digest.split(":", 1)[1]
    return node.data / "blobs" / "sha256" / hex_[:2] / hex_


def image_blobs(img):
    manifest = json.loads(img.manifest_raw)
    return manifest["config"]["digest"], [l["digest"] for l in manifest["layers"]]


def fsck(node, *args):
    p = node.epctl("--json", "fsck", *args, check=False)
    return p.returncode, json.loads(p.out)


def test_fsck_finds_damage_and_repair_refetches_it(tmp_path):
    env = sl.Env()
    try:
        n1 = env.node("n1", key=env.key)
        n2 = env.node("n2", key=env.key, seeds=[n1.cluster_address])
        wait_for(lambda: sl.full_mesh([n1, n2]), 30, what="full mesh")
        img = env.image("fsck", tag="v1")
        n1.push(img, "team/app", "v1")
        wait_for(lambda: n2.manifest_digest("team/app", "v1") == img.digest, 10, what="the tag on n2")
        wait_for(lambda: sorted(p["ref"] for p in n1.admin("/admin/v1/pins")["pins"]
                                if len(p["holders"]) == 2) == ["team/app:v1"], 30, what="replicated to n2")
        rc, report = fsck(n1)
        assert rc == 0 and report["problems"] == [], report
        assert report["blobs"] >= 2 and report["manifests"] >= 1 and report["tags"] >= 1, report

        config, [layer] = image_blobs(img)
        f = blob_file(n1, layer)
        data = bytearray(f.read_bytes())
        data[len(data) // 2] ^= 0xFF
        f.write_bytes(bytes(data))
        c = blob_file(n1, config)
        c.write_bytes(c.read_bytes()[:5])

        rc, report = fsck(n1)
        assert rc == 1, report
        corrupt = {p["subject"] for p in report["problems"] if p["kind"] == "corrupt blob"}
        assert corrupt == {layer, config}, report
        assert not any(p["repaired"] for p in report["problems"])
        text = n1.epctl("fsck", check=False).out
        assert "corrupt blob" in text and "epctl fsck --repair" in text, text

        rc, report = fsck(n1, "--repair")
        assert all(p["repaired"] for p in report["problems"] if p["kind"] == "corrupt blob"), report
        assert len(list((n1.data / "quarantine").iterdir())) == 2
        # Quarantined blobs are missing now; the replicator brings them back from n2.
        wait_for(lambda: fsck(n1)[0] == 0, 30, what="n1 clean again after refetching from n2")
        out = env.dir / "pulled"
        env.skopeo(["copy", "--src-tls-verify=false", "docker://%s/team/app:v1" % n1.registry_address,
                    "oci:%s:v1" % out])
        assert json.loads((out / "index.json").read_text())["manifests"][0]["digest"] == img.digest
    finally:
        env.close()


def test_fsck_reports_a_blob_deleted_from_disk(tmp_path):
    env = sl.Env()
    try:
        node = env.node("n1", key=env.key)
        img = env.image("fsck-missing", tag="v1")
        node.push(img, "team/lost", "v1")
        _, [layer] = image_blobs(img)
        blob_file(node, layer).unlink()
        rc, report = fsck(node)
        assert rc == 1
        missing = [p for p in report["problems"] if p["kind"] == "missing blob"]
        assert len(missing) == 1 and layer in missing[0]["detail"], report
        assert missing[0]["subject"] == "team/lost@" + img.digest
    finally:
        env.close()
