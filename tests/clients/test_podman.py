"""podman (root, vfs storage, private root/runroot) against the registry."""

import hashlib
import json

from conftest import run


def image_inspect(podman, ref):
    data = json.loads(podman("image", "inspect", ref).out)
    assert len(data) == 1
    return data[0]


def remote_raw(ref):
    return run(["skopeo", "inspect", "--tls-verify=false", "--raw", "docker://" + ref]).stdout


def test_podman_pull_push_pull(registry, pushed_image, podman, blob_cache, tmp_path):
    pull_cache = blob_cache("pull")
    cfg_hex = pushed_image["config"]["digest"].split(":", 1)[1]

    # 1. pull what skopeo pushed
    podman("pull", "--tls-verify=false", pushed_image["ref"], cache=pull_cache)
    img = image_inspect(podman, pushed_image["ref"])
    assert img["Digest"] == pushed_image["manifest"]
    assert img["Id"] == cfg_hex                      # image ID = config digest
    assert img["RootFS"]["Layers"] == pushed_image["diff_ids"]
    assert "%s/%s@%s" % (registry.host, pushed_image["repo"], pushed_image["manifest"]) \
        in img["RepoDigests"]

    # 2. push under a new name with an EMPTY blob-info-cache: podman must
    #    recompress the layers from local storage and upload them
    #    (POST, then PATCH with Transfer-Encoding: chunked, then PUT ?digest=)
    new_ref = registry.ref("clients/podman-pushed", "v1")
    digestfile = tmp_path / "digest"
    podman("push", "--tls-verify=false", "--digestfile", str(digestfile),
           pushed_image["ref"], new_ref, cache=blob_cache("push-empty"))
    pushed_digest = digestfile.read_text().strip()
    raw = remote_raw(new_ref)
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == pushed_digest
    m = json.loads(raw)
    assert m["config"]["digest"] == pushed_image["config"]["digest"]
    assert len(m["layers"]) == len(pushed_image["layers"])

    # 3. push again under a third name with the pull-time cache: podman now knows
    #    the original compressed blobs live in test/img and tries cross-repo mount
    mount_ref = registry.ref("clients/podman-mounted", "v1")
    podman("push", "--tls-verify=false", pushed_image["ref"], mount_ref, cache=pull_cache)
    mm = json.loads(remote_raw(mount_ref))
    assert [l["digest"] for l in mm["layers"]] == pushed_image["layer_digests"]

    # 4. forget everything locally and pull the re-pushed image back
    podman("rmi", "--all", "--force")
    podman("pull", "--tls-verify=false", new_ref, cache=blob_cache("pull2"))
    img2 = image_inspect(podman, new_ref)
    assert img2["Digest"] == pushed_digest
    assert img2["Id"] == cfg_hex
    assert img2["RootFS"]["Layers"] == pushed_image["diff_ids"]

    # 5. and by digest
    by_digest = registry.ref("clients/podman-pushed", pushed_digest)
    podman("pull", "--tls-verify=false", by_digest, cache=blob_cache("pull2"))
    assert image_inspect(podman, by_digest)["Digest"] == pushed_digest
