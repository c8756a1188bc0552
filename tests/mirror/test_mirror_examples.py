"""The user examples in examples/: node-mirror.ini starts a node, the
skopeo/podman registries.conf really pulls through a node (templated), and the
k3s registries.yaml agrees with the node's namespaces. (containerd/hosts.toml
is used by test_mirror_containerd.py.)"""

import re
import subprocess
import tomllib

import pytest

import mirrorlib as ml

INI = ml.EXAMPLES / "node-mirror.ini"


def ini_value(text, key):
    m = re.search(r"^%s=(.*)$" % re.escape(key), text, re.M)
    assert m, "%s has no %s=" % (INI, key)
    return m.group(1).strip()


def ini_namespaces():
    ups = ini_value(INI.read_text(), "upstreams")
    return {e.split("=", 1)[0]: e.split("=", 1)[1] for e in re.findall(r'"([^"]+)"', ups)}


def test_node_mirror_ini_starts_a_node(env):
    text = INI.read_text()
    namespaces = ini_namespaces()
    assert {"docker.io", "ghcr.io"} <= set(namespaces), namespaces
    assert ini_value(text, "default-upstream").strip('"') in namespaces
    assert all(u.startswith("https://") for u in namespaces.values())
    # the node reads the file (the command line moves its addresses and data to
    # the test's; it wins over the file) and starts; it checks every key, and
    # that the default upstream is one of the upstreams, so starting means
    # the mirror settings were understood. No request goes upstream here.
    node = env.node(None, tag_ttl=None, extra=["--config-file=%s" % INI])
    assert node.alive()
    assert node.data.exists()
    # negative control: the same file with a misspelt key does not start
    bad = env.dir / "bad.ini"
    bad.write_text(text.replace("default-upstream=", "default-upstrem="))
    node.stop()  # its ports are free: a bad file that was accepted would start and time out here
    p = subprocess.run(node.cmd[:-1] + ["--config-file=%s" % bad], capture_output=True, timeout=10)
    assert p.returncode != 0, "a misspelt key was accepted: the positive check above proves nothing"


def test_skopeo_registries_conf_pulls_through_the_node(env, images):
    img = images["a"]
    text = (ml.EXAMPLES / "skopeo-podman" / "registries.conf").read_text()
    conf = tomllib.loads(text)
    reg = conf["registry"][0]
    assert reg["prefix"] == "docker.io" and reg["location"] == "docker.io"
    assert reg["mirror"][0]["location"] == "127.0.0.1:5000" and reg["mirror"][0]["insecure"] is True
    assert ini_value(INI.read_text(), "default-upstream").strip('"') == reg["prefix"], \
        "registries.conf must mirror the node's default-upstream (no ?ns= from containers/image)"

    up = env.upstream()
    up.push(img, "library/app")
    node = env.node({"docker.io": up.url}, default="docker.io")
    assert text.count('"docker.io"') == 2 and text.count('"127.0.0.1:5000"') == 1
    templated = text.replace('"docker.io"', '"%s"' % up.host).replace('"127.0.0.1:5000"', '"%s"' % node.host)
    conf_path = env.dir / "registries.conf"
    conf_path.write_text(templated)

    out = env.dir / "pull"
    # no --src-tls-verify: the mirror's `insecure = true` is what allows plain HTTP
    env.skopeo(["--registries-conf", conf_path, "copy", "--retry-times", "0",
                "docker://%s/library/app:v1" % up.host, "oci:%s:v1" % out])
    assert ml.oci_layout_manifest_digest(out) == img["manifest"]
    assert ml.oci_layout_blobs(out) == img["blobs"]
    assert "docker.io/library/app" in node.catalog(), node.catalog()
    direct = [l for l in up.log.read_text().splitlines()
              if re.search(r'"GET /v2/library/app/(blobs|manifests)/', l) and "edgepier/" not in l]
    assert not direct, "skopeo went to the upstream itself:\n" + "\n".join(direct)


def test_k3s_registries_yaml_matches_the_node(env):
    yaml = pytest.importorskip("yaml")
    doc = yaml.safe_load((ml.EXAMPLES / "k3s" / "registries.yaml").read_text())
    mirrors = doc["mirrors"]
    namespaces = ini_namespaces()
    assert mirrors, doc
    for registry, entry in mirrors.items():
        assert registry in namespaces, "k3s mirrors %s, which node-mirror.ini has no upstream for" % registry
        assert entry["endpoint"], registry
        for ep in entry["endpoint"]:
            assert re.fullmatch(r"https?://[^/\s]+", ep), ep
    # the containerd example mirrors the same Docker Hub with the same node address
    hosts = tomllib.loads((ml.EXAMPLES / "containerd" / "hosts.toml").read_text())
    assert hosts["server"] == namespaces["docker.io"]
    assert list(hosts["host"]) == mirrors["docker.io"]["endpoint"]
    assert set(hosts["host"][mirrors["docker.io"]["endpoint"][0]]["capabilities"]) == {"pull", "resolve"}
