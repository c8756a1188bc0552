"""deploy/grafana: every metric (and exact label matcher) the dashboard queries is
exported on /metrics by a real two-node site after a push."""
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "edgepier-dashboard.json"
EP_BIN = os.environ.get("EP_BIN", str(REPO / "build" / "bin" / "edgepier"))
EPCTL_BIN = os.environ.get("EPCTL_BIN", str(REPO / "build" / "bin" / "epctl"))
PROM_LABELS = {"instance", "job"}  # added by Prometheus when it scrapes


def exprs(dash):
    def walk(panels):
        for p in panels:
            yield from (t["expr"] for t in p.get("targets", []) if t.get("expr"))
            yield from walk(p.get("panels", []))
    return list(walk(dash["panels"]))


def selectors(expr):
    """(metric, [(label, op, value)]) for every edgepier_* name in a PromQL expression."""
    out = []
    for m in re.finditer(r"\b(edgepier_[a-zA-Z0-9_:]+)(\{([^}]*)\})?", expr):
        matchers = re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', m.group(3) or "")
        out.append((m.group(1), matchers))
    return out


def parse_metrics(text):
    """{family or sample name: [label dicts of its samples]}; # TYPE lines give empty families."""
    fams = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            fams.setdefault(line.split()[2], [])
        elif line and not line.startswith("#"):
            m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)", line)
            if m:
                labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
                labels["__value__"] = float(m.group(4))
                fams.setdefault(m.group(1), []).append(labels)
    return fams


def exported(fams, name):
    """Samples of name; a histogram's _bucket/_sum/_count exist when its family is typed."""
    if name in fams:
        return fams[name]
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in fams:
            return fams.get(name, [])
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, what, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if pred():
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("site")
    key = tmp / "site.key"
    subprocess.run([EPCTL_BIN, "keygen", str(key)], check=True, capture_output=True, timeout=30)
    nodes = [{k: free_port() for k in ("registry", "cluster", "data", "admin")} for _ in range(2)]
    seeds = json.dumps([f"127.0.0.1:{n['cluster']}" for n in nodes])
    procs = []
    try:
        for i, n in enumerate(nodes):
            log = open(tmp / f"n{i}.log", "w")
            procs.append(subprocess.Popen(
                [EP_BIN, f"--edgepier.node-name=g{i}", f"--edgepier.data-dir={tmp / f'd{i}'}",
                 f"--edgepier.site-key-file={key}", f"--edgepier.seeds={seeds}"]
                + [f"--edgepier.{k}-address=127.0.0.1:{p}" for k, p in n.items()],
                stdout=log, stderr=subprocess.STDOUT))
            log.close()
        urls = [f"http://127.0.0.1:{n['registry']}" for n in nodes]
        for u in urls:
            wait_for(lambda: requests.get(u + "/readyz", timeout=1).status_code == 200, u + "/readyz")
        yield urls
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def push_blob(url, repo, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = requests.post(f"{url}/v2/{repo}/blobs/uploads/", timeout=10)
    assert r.status_code == 202, r.text
    loc = r.headers["Location"]
    loc = loc if loc.startswith("http") else url + loc
    r = requests.put(loc, params={"digest": digest}, data=data,
                     headers={"Content-Type": "application/octet-stream"}, timeout=30)
    assert r.status_code == 201, r.text
    return digest, len(data)


@pytest.fixture(scope="module")
def metrics(site):
    a, b = site
    layer = push_blob(a, "grafana/test", os.urandom(1 << 20))
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    cfg = push_blob(a, "grafana/test", config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg[0], "size": cfg[1]},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer[0], "size": layer[1]}]}).encode()
    r = requests.put(f"{a}/v2/grafana/test/manifests/v1", data=manifest, timeout=10,
                     headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert r.status_code == 201, r.text
    # the pushed image is pinned and replicated: the second node takes it from the first
    wait_for(lambda: requests.get(f"{b}/v2/grafana/test/blobs/{layer[0]}", timeout=5).status_code == 200,
             "the blob on the second node")
    assert requests.get(f"{b}/v2/grafana/test/manifests/v1", timeout=5).status_code == 200
    return [parse_metrics(requests.get(u + "/metrics", timeout=5).text) for u in site]


def test_dashboard_shape():
    dash = json.loads(DASHBOARD.read_text())
    assert 30 <= dash["schemaVersion"] <= 45
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert "instance" in variables
    assert len(exprs(dash)) >= 10


def test_dashboard_metrics_exist(metrics):
    dash = json.loads(DASHBOARD.read_text())
    missing, bad_labels = set(), set()
    for expr in exprs(dash):
        for name, matchers in selectors(expr):
            samples = [s for fams in metrics for s in (exported(fams, name) or [])]
            if all(exported(fams, name) is None for fams in metrics):
                missing.add(name)
                continue
            for label, op, value in matchers:
                if label in PROM_LABELS:
                    continue
                ok = (any(s.get(label) == value for s in samples) if op == "="
                      else any(label in s for s in samples))
                if not ok:
                    bad_labels.add(f'{name}{{{label}{op}"{value}"}}')
    assert not missing, f"dashboard uses metrics no node exports: {sorted(missing)}"
    assert not bad_labels, f"dashboard matches labels no sample has: {sorted(bad_labels)}"


def test_traffic_counters_moved(metrics):
    a, b = metrics
    def total(fams, name, **lab):
        return sum(s["__value__"] for s in fams.get(name, []) if all(s.get(k) == v for k, v in lab.items()))
    assert total(a, "edgepier_http_bytes_received_total") >= 1 << 20
    assert total(a, "edgepier_peer_chunk_bytes_total", direction="to") >= 1 << 20
    assert total(b, "edgepier_peer_bytes_total", direction="from_peers") >= 1 << 20
    assert total(a, "edgepier_site_members", state="alive") == 1
