"""Fixtures and helpers for the EdgePier HTTP API suite (OCI Distribution Spec v1.1).

The suite runs against a really started registry process, chosen by EP_TARGET:

  EP_TARGET=edgepier (default)   starts $EP_BIN (default build/bin/edgepier)
  EP_TARGET=docker-registry      starts Debian's /usr/bin/docker-registry (distribution 2.8),
                                 the reference implementation, to check the tests themselves.

Markers (see pytest_collection_modifyitems):
  @edgepier_only(reason)   a v1.1 / EdgePier feature docker-registry 2.8 does not have at all
                           (referrers, OCI-Subject, tag deletion, /healthz, /metrics, restarts...):
                           skipped on the docker-registry target.
  @dr_deviation(reason)    behaviour the spec (or this project) requires and docker-registry 2.8
                           gets wrong: on the docker-registry target the test is expected to fail
                           with an AssertionError (xfail strict, so a fix upstream is noticed).
                           EdgePier must pass these.

Everything talks to 127.0.0.1 only; every process and temp dir is cleaned up.
"""

import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from urllib.parse import urljoin, urlsplit, urlunsplit, urlencode, parse_qsl

import pytest
import requests

TARGET = os.environ.get("EP_TARGET", "edgepier")
if TARGET not in ("edgepier", "docker-registry"):
    raise RuntimeError(f"EP_TARGET must be edgepier or docker-registry, not {TARGET!r}")
EDGEPIER = TARGET == "edgepier"
DOCKER_REGISTRY = TARGET == "docker-registry"
HERE = os.path.dirname(os.path.abspath(__file__))
EP_BIN = os.environ.get("EP_BIN", os.path.join(HERE, "..", "..", "build", "bin", "edgepier"))
DR_BIN = os.environ.get("DR_BIN", "/usr/bin/docker-registry")
STARTUP_TIMEOUT = 20.0
HTTP_TIMEOUT = 30.0

# Media types.
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
ALL_MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)
# What real clients (containerd, docker) send; docker-registry 2.8 needs it, see test_manifests.
ACCEPT_ALL = ", ".join(ALL_MANIFEST_TYPES)
EMPTY_JSON = b"{}"


# --------------------------------------------------------------------------- markers

def pytest_configure(config):
    config.addinivalue_line(
        "markers", "edgepier_only(reason): v1.1/EdgePier feature absent from docker-registry 2.8; "
        "skipped on EP_TARGET=docker-registry")
    config.addinivalue_line(
        "markers", "dr_deviation(reason): docker-registry 2.8 deviates from the spec here; "
        "xfail(strict) on EP_TARGET=docker-registry, must pass on edgepier")


def pytest_collection_modifyitems(config, items):
    if not DOCKER_REGISTRY:
        return
    for item in items:
        m = item.get_closest_marker("edgepier_only")
        if m is not None:
            reason = m.args[0] if m.args else m.kwargs.get("reason", "edgepier only")
            item.add_marker(pytest.mark.skip(reason=f"docker-registry 2.8 lacks: {reason}"))
            continue
        m = item.get_closest_marker("dr_deviation")
        if m is not None:
            reason = m.args[0] if m.args else m.kwargs.get("reason", "docker-registry deviation")
            item.add_marker(pytest.mark.xfail(
                strict=True, raises=AssertionError, reason=f"docker-registry 2.8 deviation: {reason}"))


def edgepier_only(reason):
    return pytest.mark.edgepier_only(reason)


def dr_deviation(reason):
    return pytest.mark.dr_deviation(reason)


# --------------------------------------------------------------------------- content helpers

def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def det_bytes(n: int, seed) -> bytes:
    """n deterministic pseudo-random bytes."""
    return random.Random(str(seed)).randbytes(n)


def descriptor(media_type, data: bytes, **extra):
    d = {"mediaType": media_type, "digest": sha256(data), "size": len(data)}
    d.update(extra)
    return d


def dumps(obj) -> bytes:
    # Deliberately not canonical (indent + odd separators): the registry must keep the bytes.
    return json.dumps(obj, indent=2, separators=(",", " : ")).encode()


def oci_manifest(config: dict, layers: list, subject=None, artifact_type=None,
                 annotations=None) -> bytes:
    m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers}
    if artifact_type is not None:
        m["artifactType"] = artifact_type
    if subject is not None:
        m["subject"] = subject
    if annotations is not None:
        m["annotations"] = annotations
    return dumps(m)


def oci_index(manifests: list, subject=None, artifact_type=None, annotations=None) -> bytes:
    m = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
    if artifact_type is not None:
        m["artifactType"] = artifact_type
    if subject is not None:
        m["subject"] = subject
    if annotations is not None:
        m["annotations"] = annotations
    return dumps(m)


def docker_manifest(config: dict, layers: list) -> bytes:
    return dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": config,
                  "layers": layers})


def docker_list(manifests: list) -> bytes:
    return dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": manifests})


PLATFORM = {"architecture": "amd64", "os": "linux"}


def assert_oci_error(resp, status, codes=None, head=False):
    """The response is `status` with an OCI error body {"errors":[{"code":..,"message":..}]}.

    `status` may be an int or a collection of ints; `codes` a str or a collection of
    acceptable codes (at least one error in the body must carry one of them)."""
    statuses = {status} if isinstance(status, int) else set(status)
    assert resp.status_code in statuses, (
        f"{resp.request.method} {resp.request.url}: want {sorted(statuses)}, got "
        f"{resp.status_code} {resp.headers.get('Content-Type')!r} {resp.content[:300]!r}")
    if head:
        assert resp.content == b"", "HEAD response must have no body"
        return None
    ctype = resp.headers.get("Content-Type", "")
    assert ctype.split(";")[0].strip().lower() == "application/json", (
        f"error Content-Type {ctype!r}, body {resp.content[:200]!r}")
    try:
        body = json.loads(resp.content)
    except ValueError as e:
        raise AssertionError(f"error body is not JSON: {resp.content[:200]!r}") from e
    assert isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"], body
    for err in body["errors"]:
        assert isinstance(err, dict), body
        assert isinstance(err.get("code"), str) and re.fullmatch(r"[A-Z_]+", err["code"]), body
        if "message" in err:
            assert isinstance(err["message"], str), body
        elif EDGEPIER:
            raise AssertionError(f"EdgePier errors carry a message: {body}")
    if codes is not None:
        want = {codes} if isinstance(codes, str) else set(codes)
        got = [e["code"] for e in body["errors"]]
        assert want & set(got), f"want one of {sorted(want)}, got {got}"
    return body


def header(resp, name):
    v = resp.headers.get(name)
    assert v is not None, f"missing header {name}; have {dict(resp.headers)}"
    return v


def with_query(url: str, **params) -> str:
    """Add query parameters to a URL that may already carry a query string."""
    parts = urlsplit(url)
    q = parse_qsl(parts.query, keep_blank_values=True)
    q += [(k, v) for k, v in params.items()]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(q), parts.fragment))


_LINK_RE = re.compile(r'<([^>]*)>\s*;\s*rel\s*=\s*"?next"?', re.I)


def next_link(resp):
    """The target of a `Link: <...>; rel="next"` header, or None."""
    link = resp.headers.get("Link")
    if not link:
        return None
    m = _LINK_RE.search(link)
    assert m, f"Link header without rel=next: {link!r}"
    return m.group(1)


# --------------------------------------------------------------------------- processes

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """One registry process plus an HTTP client for it."""

    def __init__(self, target, data_dir, work_dir):
        self.target = target
        self.data_dir = data_dir
        self.work_dir = work_dir
        self.port = free_port()
        self.admin_port = free_port()
        self.cluster_port = free_port()
        self.data_port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.starts = 0
        self.extra_args = []  # more --edgepier.* settings (edgepier only)
        self.http = requests.Session()
        self.http.trust_env = False  # never a proxy: everything stays on 127.0.0.1

    # -- process lifecycle
    def _command(self):
        if self.target == "edgepier":
            return [EP_BIN,
                    f"--edgepier.registry-address=127.0.0.1:{self.port}",
                    f"--edgepier.data-dir={self.data_dir}",
                    f"--edgepier.admin-address=127.0.0.1:{self.admin_port}",
                    f"--edgepier.cluster-address=127.0.0.1:{self.cluster_port}",
                    f"--edgepier.data-address=127.0.0.1:{self.data_port}"] + self.extra_args
        cfg = os.path.join(self.work_dir, "config.yml")
        with open(cfg, "w") as f:
            f.write(f"""version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {self.data_dir}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{self.port}
  secret: edgepier-api-tests
""")
        return [DR_BIN, "serve", cfg]

    def _ready_path(self):
        return "/healthz" if self.target == "edgepier" else "/v2/"

    def stderr_tail(self, n=4000):
        try:
            with open(self._err_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def start(self):
        assert self.proc is None
        binary = self._command()[0]
        if not os.access(binary, os.X_OK):
            pytest.fail(f"registry binary {binary} is missing or not executable "
                        f"(EP_TARGET={self.target})", pytrace=False)
        self.starts += 1
        self._err_path = os.path.join(self.work_dir, f"stderr.{self.starts}.log")
        out = open(os.path.join(self.work_dir, f"stdout.{self.starts}.log"), "wb")
        err = open(self._err_path, "wb")
        self.proc = subprocess.Popen(self._command(), cwd=self.work_dir, stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=err, start_new_session=True)
        out.close()
        err.close()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                pytest.fail(f"{self.target} exited with {rc} during startup; stderr:\n"
                            f"{self.stderr_tail()}", pytrace=False)
            try:
                r = self.http.get(self.base + self._ready_path(), timeout=1)
                if r.status_code == 200:
                    return self
                last = f"{r.status_code} {r.content[:200]!r}"
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"{self.target} not ready after {STARTUP_TIMEOUT}s (last: {last}); stderr:\n"
                    f"{self.stderr_tail()}", pytrace=False)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        """SIGKILL, as a crash would; waits until the process is gone."""
        if self.proc is not None:
            try:
                self.proc.send_signal(signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
            self.proc = None
        self.http.close()

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None
        self.http.close()

    def restart_after_kill(self):
        """kill -9, then start again on the same data dir and the same ports."""
        self.kill9()
        return self.start()

    # -- HTTP
    def url(self, path):
        if path.startswith("http://") or path.startswith("https://"):
            return path
        return self.base + path

    def resolve(self, location, request_url):
        """Absolute URL for a Location header (absolute, or relative to the request URL)."""
        assert location, "empty Location header"
        return urljoin(request_url, location)

    def request(self, method, path, **kw):
        kw.setdefault("timeout", HTTP_TIMEOUT)
        kw.setdefault("allow_redirects", False)
        return self.http.request(method, self.url(path), **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def head(self, path, **kw):
        return self.request("HEAD", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def raw(self, method, path, headers=None, body=None, timeout=HTTP_TIMEOUT):
        """A request whose path is sent byte for byte (requests/urllib3 would normalise
        `..` and %2e). Returns (status, headers dict lower-cased, body)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.putrequest(method, path, skip_host=False, skip_accept_encoding=True)
            for k, v in (headers or {}).items():
                conn.putheader(k, v)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            r = conn.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            conn.close()

    # -- flows
    def start_upload(self, repo):
        r = self.post(f"/v2/{repo}/blobs/uploads/")
        assert r.status_code == 202, f"POST upload: {r.status_code} {r.content[:300]!r}"
        return self.resolve(header(r, "Location"), r.url)

    def push_blob(self, repo, data: bytes) -> str:
        """POST then PUT ?digest= with the whole body (the most portable push)."""
        loc = self.start_upload(repo)
        d = sha256(data)
        r = self.put(with_query(loc, digest=d), data=data,
                     headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 201, f"PUT upload: {r.status_code} {r.content[:300]!r}"
        return d

    def push_manifest(self, repo, reference, body: bytes, media_type=OCI_MANIFEST):
        r = self.put(f"/v2/{repo}/manifests/{reference}", data=body,
                     headers={"Content-Type": media_type})
        assert r.status_code == 201, (
            f"PUT manifest {repo}:{reference}: {r.status_code} {r.content[:300]!r}")
        return r

    def get_manifest(self, repo, reference, **kw):
        headers = {"Accept": ACCEPT_ALL}
        headers.update(kw.pop("headers", {}))
        return self.get(f"/v2/{repo}/manifests/{reference}", headers=headers, **kw)

    def head_manifest(self, repo, reference):
        return self.head(f"/v2/{repo}/manifests/{reference}", headers={"Accept": ACCEPT_ALL})

    def push_image(self, repo, tag=None, seed="img", layer_size=1024, **manifest_kw):
        """Push a config + one layer + an OCI manifest. Returns (manifest bytes, digest)."""
        cfg = json.dumps({"architecture": "amd64", "os": "linux", "seed": str(seed),
                          "rootfs": {"type": "layers", "diff_ids": []}}).encode()
        layer = det_bytes(layer_size, seed)
        self.push_blob(repo, cfg)
        self.push_blob(repo, layer)
        body = oci_manifest(descriptor(OCI_CONFIG, cfg), [descriptor(OCI_LAYER, layer)],
                            **manifest_kw)
        self.push_manifest(repo, tag if tag is not None else sha256(body), body)
        return body, sha256(body)


# EP_API_AUTH=user:password: the registry has that one user (an htpasswd file) and
# every request of the suite carries its Basic credentials: what an authorized
# client sees must be what an anonymous one sees on an open node (#15).
API_AUTH = os.environ.get("EP_API_AUTH", "")


def _make_registry(target):
    work = tempfile.mkdtemp(prefix=f"ep-api-{target}-")
    data = os.path.join(work, "data")
    os.mkdir(data)
    reg = Registry(target, data, work)
    if API_AUTH and target == "edgepier":
        user, password = API_AUTH.split(":", 1)
        htpasswd = os.path.join(work, "htpasswd")
        line = subprocess.run(["htpasswd", "-Bbn", user, password], capture_output=True, check=True).stdout
        with open(htpasswd, "wb") as f:
            f.write(line.strip() + b"\n")
        reg.extra_args.append(f"--edgepier.htpasswd-file={htpasswd}")
        reg.http.auth = (user, password)
    return reg, work


@pytest.fixture(scope="session")
def registry():
    """The shared registry process for the whole session."""
    reg, work = _make_registry(TARGET)
    try:
        reg.start()
        if API_AUTH:  # the suite's credentials are what lets it write
            r = requests.post(reg.base + "/v2/auth-check/blobs/uploads/", timeout=HTTP_TIMEOUT)
            assert r.status_code == 401, f"an anonymous push answered {r.status_code}, not 401"
        yield reg
        # Fixture-level liveness check: after the whole suite the process must still be up.
        assert reg.alive(), f"{TARGET} died during the suite; stderr:\n{reg.stderr_tail()}"
        r = reg.get("/v2/")
        assert r.status_code == 200, f"/v2/ after the suite: {r.status_code}"
    finally:
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(autouse=True)
def _registry_still_alive(request):
    """After each test that used the shared registry, its process must still be running."""
    yield
    if "registry" in request.fixturenames:
        reg = request.getfixturevalue("registry")
        assert reg.alive(), f"{TARGET} died during {request.node.name}; stderr:\n" \
                            f"{reg.stderr_tail()}"


@pytest.fixture
def own_registry():
    """A registry process of this test's own, on its own data dir (restarts, crashes)."""
    reg, work = _make_registry(TARGET)
    try:
        yield reg.start()
    finally:
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)


_counter = [0]


@pytest.fixture
def repo(request):
    """A repository name unique to this test: t<n>/<test name>."""
    _counter[0] += 1
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:60].strip("-")
    return f"t{_counter[0]}/{stem or 'x'}"


@pytest.fixture
def repo2(repo):
    return repo + "/other"
