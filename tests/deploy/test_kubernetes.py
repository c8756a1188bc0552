"""deploy/kubernetes: what `kubectl kustomize` renders gives the node what it needs,
and the rendered edgepier.ini is accepted by the real binary."""
import configparser
import re
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

REPO = Path(__file__).resolve().parents[2]
KDIR = REPO / "deploy" / "kubernetes"
EP_BIN = os.environ.get("EP_BIN", str(REPO / "build" / "bin" / "edgepier"))
EPCTL_BIN = os.environ.get("EPCTL_BIN", str(REPO / "build" / "bin" / "epctl"))
SECRET_NAME = "edgepier-site-key"  # deploy/kubernetes/README.md creates it


@pytest.fixture(scope="module")
def docs():
    kubectl = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl is not installed (apt-get install kubernetes-client)")
    out = subprocess.run([kubectl, "kustomize", str(KDIR)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def one(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


@pytest.fixture(scope="module")
def pod(docs):
    ds = one(docs, "DaemonSet", "edgepier")
    return ds, ds["spec"]["template"]["spec"]


def volume(spec, name):
    return next(v for v in spec["volumes"] if v["name"] == name)


def mount_of(container, spec, pred):
    """(mountPath, volume) of the one volume that satisfies pred."""
    vols = {v["name"]: v for v in spec["volumes"]}
    hits = [(m["mountPath"], vols[m["name"]], m) for m in container["volumeMounts"] if pred(vols[m["name"]])]
    assert len(hits) == 1, hits
    return hits[0]


@pytest.fixture(scope="module")
def ini(docs, pod):
    _, spec = pod
    _, vol, _ = mount_of(spec["containers"][0], spec, lambda v: "configMap" in v)
    cm = one(docs, "ConfigMap", vol["configMap"]["name"])  # the generated (hashed) name
    cp = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=None)
    cp.read_string(cm["data"]["edgepier.ini"])
    return cm["data"]["edgepier.ini"], {k: v.strip().strip('"') for k, v in cp["edgepier"].items()}


def port(addr):
    return int(addr.rsplit(":", 1)[1])


def test_namespace_and_daemonset(docs, pod):
    one(docs, "Namespace", "edgepier")
    ds, spec = pod
    assert ds["metadata"]["namespace"] == "edgepier"
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert spec["priorityClassName"] == "system-node-critical"
    assert any(t.get("operator") == "Exists" and "key" not in t and "effect" not in t for t in spec["tolerations"])
    assert 5 < spec["terminationGracePeriodSeconds"] <= 30
    assert ds["spec"]["updateStrategy"]["type"] == "RollingUpdate"
    c = spec["containers"][0]
    # The tag scripts/image.sh writes: the project's version.
    version = re.search(r"project\(edgepier VERSION ([0-9.]+)", (REPO / "CMakeLists.txt").read_text()).group(1)
    assert c["image"] == f"edgepier:{version}", c["image"]
    assert c["resources"]["requests"].get("cpu") and c["resources"]["requests"].get("memory")
    assert c["resources"]["limits"].get("memory")
    assert c["securityContext"]["readOnlyRootFilesystem"] is True


def test_ports_and_probes_match_config(pod, ini):
    _, spec = pod
    _, cfg = ini
    c = spec["containers"][0]
    ports = {p["name"]: p for p in c["ports"]}
    for name, key in [("registry", "registry-address"), ("cluster", "cluster-address"), ("data", "data-address")]:
        assert ports[name]["containerPort"] == port(cfg[key]) == ports[name]["hostPort"], name
        assert cfg[key].startswith("0.0.0.0:"), key
    assert cfg["admin-address"].startswith("127.0.0.1:")
    reg = port(cfg["registry-address"])
    for probe, path in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]:
        get = c[probe]["httpGet"]
        assert get["path"] == path
        assert get["port"] in (reg, "registry")


def test_mounts_match_config(docs, pod, ini):
    _, spec = pod
    _, cfg = ini
    c = spec["containers"][0]
    args = c["args"]
    cfile = next(a.split("=", 1)[1] for a in args if a.startswith("--config-file="))
    path, vol, m = mount_of(c, spec, lambda v: "configMap" in v)
    assert m.get("readOnly") is True
    assert cfile == f"{path}/edgepier.ini"
    path, vol, m = mount_of(c, spec, lambda v: "hostPath" in v)
    assert path == cfg["data-dir"]
    assert vol["hostPath"]["path"] == "/var/lib/edgepier" and vol["hostPath"]["type"] == "DirectoryOrCreate"
    path, vol, m = mount_of(c, spec, lambda v: "secret" in v)
    assert m.get("readOnly") is True
    secret = vol["secret"]
    name = secret["secretName"]
    rendered = [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == name]
    assert rendered or name == SECRET_NAME, f"secret {name} neither rendered nor the documented one"
    assert name in (KDIR / "README.md").read_text()
    fname = next((i["path"] for i in secret.get("items", []) if i["key"] == "site.key"), "site.key")
    assert cfg["site-key-file"] == f"{path}/{fname}"


def test_downward_api_node_identity(pod):
    _, spec = pod
    c = spec["containers"][0]
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in c["env"]}
    assert env["NODE_NAME"] == "spec.nodeName"
    assert env["NODE_IP"] == "status.hostIP"
    assert "--edgepier.node-name=$(NODE_NAME)" in c["args"]
    assert "--edgepier.advertise-host=$(NODE_IP)" in c["args"]


def test_seeds_are_a_list_of_cluster_addresses(ini):
    _, cfg = ini
    seeds = [s.strip().strip('"') for s in cfg["seeds"].strip("[]").split(",") if s.strip()]
    assert seeds, "no seeds"
    assert all(port(s) == port(cfg["cluster-address"]) for s in seeds)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_binary_accepts_rendered_config(ini, tmp_path):
    text, _ = ini
    if not os.access(EP_BIN, os.X_OK):
        pytest.fail(f"{EP_BIN} not built")
    (tmp_path / "edgepier.ini").write_text(text)
    key = tmp_path / "site.key"
    subprocess.run([EPCTL_BIN, "keygen", str(key)], check=True, capture_output=True, timeout=30)
    reg = free_port()
    ports = {k: free_port() for k in ("cluster", "data", "admin")}
    cmd = [EP_BIN, f"--config-file={tmp_path / 'edgepier.ini'}",
           f"--edgepier.data-dir={tmp_path / 'data'}", f"--edgepier.site-key-file={key}",
           f"--edgepier.registry-address=127.0.0.1:{reg}",
           f"--edgepier.cluster-address=127.0.0.1:{ports['cluster']}",
           f"--edgepier.data-address=127.0.0.1:{ports['data']}",
           f"--edgepier.admin-address=127.0.0.1:{ports['admin']}",
           "--edgepier.node-name=k8s-test", "--edgepier.advertise-host=127.0.0.1", "--edgepier.seeds=[]"]
    log = open(tmp_path / "node.log", "w+")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 15
        while True:
            assert proc.poll() is None, f"node exited {proc.returncode}: {Path(log.name).read_text()}"
            try:
                if requests.get(f"http://127.0.0.1:{reg}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.time() < deadline, "no /healthz: " + Path(log.name).read_text()
            time.sleep(0.1)
        assert requests.get(f"http://127.0.0.1:{reg}/v2/", timeout=5).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, Path(log.name).read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
