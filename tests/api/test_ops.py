"""Operational endpoints on the registry address: /healthz, /readyz, /metrics (EdgePier only:
docker-registry 2.8 has none of them on its API listener)."""

import re

from conftest import det_bytes, edgepier_only, header

pytestmark = edgepier_only("/healthz, /readyz and /metrics on the registry address")

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)(\s+\d+)?$")


def samples(text):
    """[(name, labels text, value)] of a Prometheus text exposition."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        out.append((m.group(1), m.group(2) or "", float(m.group(3))))
    return out


def total(text, name):
    return sum(v for n, _, v in samples(text) if n == name)


def metrics(registry):
    r = registry.get("/metrics")
    assert r.status_code == 200
    assert header(r, "Content-Type").startswith("text/plain")
    return r.text


def test_healthz_is_200(registry):
    assert registry.get("/healthz").status_code == 200


def test_readyz_is_200(registry):
    assert registry.get("/readyz").status_code == 200


def test_metrics_exposes_the_documented_families(registry):
    text = metrics(registry)
    for name in ("edgepier_http_requests_total", "edgepier_http_request_duration_seconds_bucket",
                 "edgepier_http_bytes_received_total", "edgepier_http_bytes_sent_total",
                 "edgepier_storage_used_bytes"):
        assert name in text, f"{name} missing from /metrics"
    samples(text)  # every line parses


def test_request_counts_are_by_route_and_status(registry, repo):
    registry.push_blob(repo, b"count me")
    registry.get(f"/v2/{repo}/blobs/sha256:{'0' * 64}")  # a 404
    lines = [(n, labels) for n, labels, _ in samples(metrics(registry))
             if n == "edgepier_http_requests_total"]
    assert lines, "no edgepier_http_requests_total samples"
    assert any('"200"' in labels or '"201"' in labels for _, labels in lines), lines
    assert any('"404"' in labels for _, labels in lines), lines
    # more than one route is told apart
    assert len({re.sub(r'(status|code)="\d+"', "", labels) for _, labels in lines}) > 1, lines


def test_latency_histogram_has_buckets_sum_and_count(registry):
    registry.get("/v2/")
    text = metrics(registry)
    buckets = [labels for n, labels, _ in samples(text)
               if n == "edgepier_http_request_duration_seconds_bucket"]
    assert buckets and all("le=" in b for b in buckets)
    assert any('le="+Inf"' in b for b in buckets)
    assert total(text, "edgepier_http_request_duration_seconds_count") > 0


def test_bytes_in_and_out_grow_with_traffic(registry, repo):
    before = metrics(registry)
    data = det_bytes(300_000, "metrics-bytes")
    d = registry.push_blob(repo, data)
    assert registry.get(f"/v2/{repo}/blobs/{d}").content == data
    after = metrics(registry)
    grew_in = total(after, "edgepier_http_bytes_received_total") - \
        total(before, "edgepier_http_bytes_received_total")
    grew_out = total(after, "edgepier_http_bytes_sent_total") - \
        total(before, "edgepier_http_bytes_sent_total")
    assert grew_in >= len(data), grew_in
    assert grew_out >= len(data), grew_out


def test_storage_used_reflects_pushed_blobs(registry, repo):
    before = total(metrics(registry), "edgepier_storage_used_bytes")
    registry.push_blob(repo, det_bytes(500_000, "metrics-storage"))
    after = total(metrics(registry), "edgepier_storage_used_bytes")
    assert after >= before + 500_000, (before, after)
