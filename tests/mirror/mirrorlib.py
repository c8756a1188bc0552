"""Building blocks of the pull-through mirror tests.

Everything here runs real programs on 127.0.0.1 only, inside one temporary
directory per test (`Env`), and `Env.close()` stops every process it started
and removes the directory:

  Upstream    Debian's docker-registry (filesystem storage), optionally with
              htpasswd or token auth and TLS; restartable on the same port/data
  Node        build/bin/edgepier as a mirror of one or more upstreams
  FaultProxy  a small HTTP proxy between a node and an upstream that counts
              requests and injects faults (cut, flipped bytes, garbage,
              throttling, 5xx, hangs, redirects)
  TokenIssuer a bearer-token service (RS256 JWTs docker-registry accepts)
  BlobServer  a plain HTTP server that a redirect can point at
  Containerd  a private containerd (own root/state/socket)
"""

import base64
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))
from eptest import *  # noqa: E402,F401,F403  run, processes, ports, hashes, mounts, Containerd
from eptest import REPO, MKIMAGE, PYTHON, EP_BIN, DOCKER_REGISTRY, EPCTL, SYSTEM_BLOB_CACHE  # noqa: E402,F401

EXAMPLES = REPO / "examples"

# A bcrypt hash of "pass" (made once with `htpasswd -Bbn user pass`): docker-registry
# only accepts bcrypt entries, and a fixed hash needs neither apache2-utils nor bcrypt.
USER, PASSWORD = "user", "pass"
HTPASSWD_LINE = "user:$2y$05$v2dhH/htE1DnoN0MXufceOGpc3Oaz06XQch9sIMUkhjZIEPWCGJT6\n"


# ----------------------------------------------------------------------------- basics

def oci_error(resp):
    """(first error code, message) of an OCI JSON error body, or (None, text)."""
    try:
        err = resp.json()["errors"][0]
        return err.get("code"), err.get("message", "")
    except Exception:
        return None, resp.text[:300]


def timed_get(url, timeout=10, **kw):
    t0 = time.monotonic()
    r = requests.get(url, timeout=timeout, **kw)
    return r, time.monotonic() - t0


MANIFEST_ACCEPT = {"Accept": ", ".join([
    "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json"])}


# ---------------------------------------------------------------------- images, skopeo

def make_image(outdir, seed, layers=2, layer_mb=1, tag="latest"):
    """A deterministic OCI layout (tools/mkimage.py) plus what the tests compare."""
    p = run([PYTHON, MKIMAGE, outdir, "--seed", seed, "--layers", layers, "--layer-mb", layer_mb,
             "--tag", tag], timeout=120)
    info = json.loads(p.out)
    info["dir"] = Path(outdir)
    info["tag"] = tag
    info["blobs"] = oci_layout_blobs(outdir)
    info["layer_digests"] = [l["digest"] for l in info["layers"]]
    return info


def oci_layout_blobs(layout_dir):
    """{digest: size} of every blob in an OCI layout, each file's hash verified."""
    blobs = {}
    for f in sorted((Path(layout_dir) / "blobs" / "sha256").iterdir()):
        digest = "sha256:" + f.name
        assert sha256_file(f) == digest, "blob %s has wrong content" % f
        blobs[digest] = f.stat().st_size
    return blobs


def oci_layout_manifest_digest(layout_dir):
    index = json.loads((Path(layout_dir) / "index.json").read_text())
    assert len(index["manifests"]) == 1, index
    return index["manifests"][0]["digest"]



# ------------------------------------------------------------------------------ PKI

def make_ca(d, san="IP:127.0.0.1"):
    """A test CA (ca.pem/ca.key) and a server certificate for `san` signed by it."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", d / "ca.key", "-out", d / "ca.pem", "-subj", "/CN=edgepier test CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    return make_server_cert({"ca": d / "ca.pem", "ca_key": d / "ca.key"}, d, san)


def make_server_cert(pki, d, san, name="server"):
    """A server certificate for `san` (e.g. "IP:127.0.0.1") signed by pki's CA."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    key, csr, cert, ext = (d / (name + s) for s in (".key", ".csr", ".pem", ".cnf"))
    run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
         "-subj", "/CN=edgepier test server"])
    ext.write_text("subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n" % san)
    run(["openssl", "x509", "-req", "-in", csr, "-CA", pki["ca"], "-CAkey", pki["ca_key"],
         "-CAcreateserial", "-days", "2", "-out", cert, "-extfile", ext])
    return {"ca": pki["ca"], "ca_key": pki["ca_key"], "cert": cert, "key": key}


# ------------------------------------------------------------------------ processes

def _http_ready(url, verify=True):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return requests.get(url, timeout=2, verify=verify).status_code
    except requests.RequestException:
        return None


class Upstream:
    """Debian's docker-registry as the upstream of a mirror.

    auth: None, "htpasswd" or ("token", TokenIssuer); tls: make_ca() result or None.
    The access log (one line per request, user agent last) is in self.log."""

    def __init__(self, env, name, auth=None, tls=None):
        self.env, self.name, self.auth, self.tls = env, name, auth, tls
        self.dir = env.dir / name
        self.dir.mkdir()
        self.port = free_port()
        self.host = "127.0.0.1:%d" % self.port
        self.scheme = "https" if tls else "http"
        self.url = "%s://%s" % (self.scheme, self.host)
        self.log = self.dir / "registry.log"
        self.proc = None
        self.write_config()
        self.start()

    def write_config(self, rootcertbundle=None):
        cfg = ["version: 0.1", "log:", "  level: warn", "  accesslog:", "    disabled: false",
               "storage:", "  filesystem:", "    rootdirectory: %s" % (self.dir / "data"),
               "  delete:", "    enabled: true",
               "http:", "  addr: %s" % self.host]
        if self.tls:
            cfg += ["  tls:", "    certificate: %s" % self.tls["cert"], "    key: %s" % self.tls["key"]]
        if self.auth == "htpasswd":
            (self.dir / "htpasswd").write_text(HTPASSWD_LINE)
            cfg += ["auth:", "  htpasswd:", "    realm: test", "    path: %s" % (self.dir / "htpasswd")]
        elif isinstance(self.auth, tuple) and self.auth[0] == "token":
            issuer = self.auth[1]
            cfg += ["auth:", "  token:", "    realm: %s/token" % issuer.url,
                    "    service: %s" % issuer.service, "    issuer: %s" % issuer.issuer,
                    "    rootcertbundle: %s" % (rootcertbundle or issuer.cert)]
        (self.dir / "config.yml").write_text("\n".join(cfg) + "\n")

    def start(self):
        with open(self.log, "ab") as lf:
            self.proc = subprocess.Popen([DOCKER_REGISTRY, "serve", str(self.dir / "config.yml")],
                                         stdout=lf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        verify = False if self.tls else True  # a test may serve a certificate that does not verify
        deadline = time.monotonic() + 20
        while _http_ready(self.url + "/v2/", verify) is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                stop_process(self.proc)
                raise RuntimeError("docker-registry did not start:\n" + log_tail(self.log))
            time.sleep(0.05)

    def stop(self):
        stop_process(self.proc)

    def kill(self):
        kill_process(self.proc)

    def restart(self):
        self.stop()
        self.start()

    def requests_from_node(self, method=None, path_re=None):
        """Access-log lines of requests the node made: [(method, uri, status)]."""
        out = []
        pat = re.compile(r'"(\w+) (\S+) HTTP/[\d.]+" (\d+) \S+ "[^"]*" "edgepier/')
        for line in self.log.read_text(errors="replace").splitlines():
            m = pat.search(line)
            if not m:
                continue
            if method and m.group(1) != method:
                continue
            if path_re and not re.search(path_re, m.group(2)):
                continue
            out.append((m.group(1), m.group(2), int(m.group(3))))
        return out

    def skopeo_dest_args(self):
        args = ["--dest-tls-verify=false"]
        if self.auth:
            args.append("--dest-creds=%s:%s" % (USER, PASSWORD))
        return args

    def push(self, image, repo, tag=None, fmt=None):
        """skopeo copy an OCI layout (make_image) to <upstream>/repo:tag (fmt: "v2s2"
        for a Docker schema 2 manifest)."""
        tag = tag or image["tag"]
        self.env.skopeo(["copy", "--retry-times", "0"] + (["--format", fmt] if fmt else []) +
                        self.skopeo_dest_args() +
                        ["oci:%s:%s" % (image["dir"], image["tag"]),
                         "docker://%s/%s:%s" % (self.host, repo, tag)])

    def session(self):
        s = requests.Session()
        if self.tls:
            s.verify = str(self.tls["ca"])
        if self.auth == "htpasswd":
            s.auth = (USER, PASSWORD)
        return s

    def push_blob(self, repo, data):
        """Monolithic upload of one blob (POST, then PUT ?digest=); returns its digest."""
        assert not isinstance(self.auth, tuple), "push_blob does not do token auth"
        s = self.session()
        digest = sha256_bytes(data)
        r = s.post("%s/v2/%s/blobs/uploads/" % (self.url, repo), timeout=30)
        assert r.status_code == 202, (r.status_code, r.text)
        loc = urllib.parse.urljoin(self.url + "/", r.headers["Location"])
        sep = "&" if "?" in loc else "?"
        r = s.put(loc + sep + "digest=" + digest, data=data,
                  headers={"Content-Type": "application/octet-stream"}, timeout=120)
        assert r.status_code == 201, (r.status_code, r.text)
        return digest


class Node:
    """build/bin/edgepier as a pull-through mirror."""

    def __init__(self, env, name, upstreams, default=None, tag_ttl="2s", credentials=None,
                 ca_files=None, extra=None):
        self.env, self.name = env, name
        self.dir = env.dir / name
        self.dir.mkdir()
        self.data = self.dir / "data"
        self.log = self.dir / "edgepier.log"
        self.port = free_port()
        self.host = "127.0.0.1:%d" % self.port
        self.url = "http://" + self.host
        admin_port = free_port()
        self.admin_url = "http://127.0.0.1:%d" % admin_port
        self.cmd = [EP_BIN,
                    "--edgepier.registry-address=" + self.host,
                    "--edgepier.data-dir=%s" % self.data,
                    "--edgepier.admin-address=127.0.0.1:%d" % admin_port,
                    "--edgepier.cluster-address=127.0.0.1:%d" % free_port(),
                    "--edgepier.data-address=127.0.0.1:%d" % free_port()]
        if upstreams is not None:
            self.cmd.append("--edgepier.upstreams=%s" % json.dumps(["%s=%s" % kv for kv in upstreams.items()]))
        if default:
            self.cmd.append("--edgepier.default-upstream=" + default)
        if tag_ttl:
            self.cmd.append("--edgepier.tag-ttl=" + tag_ttl)
        if credentials:
            path = self.dir / "config.json"
            path.write_text(json.dumps({"auths": {
                host: {"auth": base64.b64encode(("%s:%s" % up).encode()).decode()}
                for host, up in credentials.items()}}))
            self.cmd.append("--edgepier.upstream-credentials-file=%s" % path)
        if ca_files:
            self.cmd.append("--edgepier.upstream-ca-files=%s" % json.dumps(
                ["%s=%s" % kv for kv in ca_files.items()]))
        self.cmd += list(extra or [])
        self.proc = None
        self.start()

    def start(self):
        with open(self.log, "ab") as lf:
            lf.write(("$ " + " ".join(self.cmd) + "\n").encode())
            lf.flush()
            self.proc = subprocess.Popen(self.cmd, stdout=lf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 20
        while _http_ready(self.url + "/healthz") != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                rc = self.proc.poll()
                stop_process(self.proc)
                raise RuntimeError("edgepier did not start (%s):\n%s" % (
                    "exit status %s" % rc if rc is not None else "no /healthz after 20 s", log_tail(self.log)))
            time.sleep(0.05)

    def stop(self):
        stop_process(self.proc)

    def restart(self):
        self.stop()
        self.start()

    def alive(self):
        return self.proc.poll() is None and _http_ready(self.url + "/healthz") == 200

    def v2(self, path, ns=None):
        url = "%s/v2/%s" % (self.url, path)
        if ns is not None:
            url += "?ns=" + urllib.parse.quote(ns, safe="")
        return url

    def manifest(self, repo, ref, ns=None, method="GET", timeout=10):
        t0 = time.monotonic()
        r = requests.request(method, self.v2("%s/manifests/%s" % (repo, ref), ns),
                             headers=MANIFEST_ACCEPT, timeout=timeout)
        r.seconds = time.monotonic() - t0
        return r

    def blob(self, repo, digest, ns=None, timeout=30, headers=None):
        t0 = time.monotonic()
        r = requests.get(self.v2("%s/blobs/%s" % (repo, digest), ns), timeout=timeout, headers=headers)
        r.seconds = time.monotonic() - t0
        return r

    def catalog(self):
        return requests.get(self.url + "/v2/_catalog", timeout=5).json()["repositories"]

    def metrics(self):
        """{(route, status): count} from /metrics."""
        out = {}
        text = requests.get(self.url + "/metrics", timeout=5).text
        for m in re.finditer(r'^edgepier_http_requests_total\{route="(\w+)",status="(\d+)"\} (\d+)$', text, re.M):
            out[(m.group(1), int(m.group(2)))] = int(m.group(3))
        return out

    def pull(self, repo, tag, dest, check=True):
        """skopeo copy docker://<node>/repo:tag -> OCI layout (no ?ns=: default upstream)."""
        return self.env.skopeo(["copy", "--retry-times", "0", "--src-tls-verify=false",
                                "docker://%s/%s:%s" % (self.host, repo, tag), "oci:%s:%s" % (dest, tag)],
                               check=check)


class FaultProxy:
    """HTTP proxy node -> upstream (one request per connection, as the node
    sends `Connection: close`). `rules` is a list of (predicate(method, path),
    action) tried in order; actions:

      "pass"                 relay unchanged
      ("cut", fraction)      send the head and that fraction of the body, then close
      ("flip", n)            relay, XOR-ing n bytes spread over the body
      ("garbage", strip)     replace the body with random bytes of the same length
                             (strip: also drop Docker-Content-Digest)
      ("strip", header)      relay without that response header (lowercase name)
      ("throttle", bps)      relay the body at about bps bytes per second
      ("status", code)       answer `code` without asking the upstream
      ("hang",)              accept, never answer (until the proxy stops)
      ("delay", seconds)     wait, then relay unchanged
      ("chunked",)           relay the body with chunked transfer encoding, no Content-Length
      ("redirect", url_fn)   307 to url_fn(path)
      ("no-ranges",)         an upstream without Range support: the request goes on
                             without its Range header, Accept-Ranges is dropped

    Every request is recorded in `log` as a dict (method, path, status, sent,
    done, t_done, length, auth: carried Authorization), updated while the body
    is relayed."""

    def __init__(self, target_host, target_port):
        self.target = (target_host, target_port)
        self.rules = []
        self.log = []
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.host = "127.0.0.1:%d" % self.port
        self.url = "http://" + self.host
        self.conns = set()
        threading.Thread(target=self._accept, daemon=True).start()

    def set(self, *rules):
        self.rules = list(rules)

    def requests(self, method=None, path_re=None):
        with self.lock:
            return [dict(e) for e in self.log
                    if (method is None or e["method"] == method)
                    and (path_re is None or re.search(path_re, e["path"]))]

    def close(self):
        self.stopped.set()
        try:
            self.sock.close()
        except OSError:
            pass
        for c in list(self.conns):
            try:
                c.close()
            except OSError:
                pass

    def _accept(self):
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _action(self, method, path):
        for pred, action in self.rules:
            if pred(method, path):
                return action
        return "pass"

    @staticmethod
    def _read_head(sock):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return None, b""
            data += chunk
            if len(data) > 1 << 20:
                return None, b""
        head, rest = data.split(b"\r\n\r\n", 1)
        return head, rest

    def _serve(self, conn):
        up = None
        entry = None
        try:
            conn.settimeout(60)
            head, rest = self._read_head(conn)
            if head is None:
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target = lines[0].split(" ")[:2]
            path = target
            entry = {"method": method, "path": path, "status": None, "sent": 0, "done": False,
                     "length": None, "t0": time.monotonic(),
                     "auth": any(l.lower().startswith("authorization:") for l in lines[1:])}
            with self.lock:
                self.log.append(entry)
            action = self._action(method, path)
            kind = action if isinstance(action, str) else action[0]
            if kind == "hang":
                self.stopped.wait(120)
                return
            if kind == "delay":
                if self.stopped.wait(action[1]):
                    return
            if kind == "status":
                body = b'{"errors":[{"code":"UNAVAILABLE","message":"injected"}]}'
                conn.sendall(b"HTTP/1.1 %d Injected\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n" % (action[1], len(body)) + body)
                entry["status"], entry["done"] = action[1], True
                return
            if kind == "redirect":
                loc = action[1](path)
                conn.sendall(("HTTP/1.1 307 Temporary Redirect\r\nLocation: %s\r\nContent-Length: 0\r\n"
                              "Connection: close\r\n\r\n" % loc).encode())
                entry["status"], entry["done"] = 307, True
                return
            # request body (never for GET/HEAD, but relay it anyway)
            req_len = 0
            for l in lines[1:]:
                k, _, v = l.partition(":")
                if k.strip().lower() == "content-length":
                    req_len = int(v.strip())
            if kind == "no-ranges":
                head = b"\r\n".join(l for l in head.split(b"\r\n") if not l.lower().startswith(b"range:"))
            up = socket.create_connection(self.target, timeout=60)
            up.sendall(head + b"\r\n\r\n" + rest)
            remaining = req_len - len(rest)
            while remaining > 0:
                chunk = conn.recv(min(remaining, 1 << 20))
                if not chunk:
                    break
                up.sendall(chunk)
                remaining -= len(chunk)
            rhead, rbody = self._read_head(up)
            if rhead is None:
                return
            rlines = rhead.decode("latin-1").split("\r\n")
            status = int(rlines[0].split(" ")[1])
            entry["status"] = status
            headers = []
            length = None
            for l in rlines[1:]:
                k, _, v = l.partition(":")
                headers.append((k, v.strip()))
                if k.strip().lower() == "content-length":
                    length = int(v.strip())
            has_body = method != "HEAD" and status not in (204, 304) and not (100 <= status < 200)
            if not has_body:
                length = 0
            entry["length"] = length
            if kind == "strip":
                headers = [(k, v) for k, v in headers if k.strip().lower() != action[1]]
            if kind == "no-ranges":
                headers = [(k, v) for k, v in headers if k.strip().lower() != "accept-ranges"]
            chunked = kind == "chunked" and has_body
            if chunked:
                headers = [(k, v) for k, v in headers if k.strip().lower() != "content-length"]
                headers.append(("Transfer-Encoding", "chunked"))
            if kind == "garbage" and len(action) > 1 and action[1]:
                headers = [(k, v) for k, v in headers if k.strip().lower() != "docker-content-digest"]
            if kind == "garbage" and has_body and length:
                body = rbody
                while len(body) < length:
                    chunk = up.recv(1 << 20)
                    if not chunk:
                        break
                    body += chunk
                rbody = os.urandom(len(body))
            out_head = rlines[0] + "\r\n" + "".join("%s: %s\r\n" % kv for kv in headers) + "\r\n"
            conn.sendall(out_head.encode("latin-1"))
            if not has_body:
                entry["done"] = True
                return
            limit = None
            if kind == "cut" and length:
                limit = int(length * action[1])
            flips = set()
            if kind == "flip" and length:
                n = action[1]
                flips = {length * (i + 1) // (n + 1) for i in range(n)}
            bps = action[1] if kind == "throttle" else None
            t0 = time.monotonic()
            pos = 0
            buf = rbody
            while True:
                if not buf:
                    if length is not None and pos >= length:
                        break
                    buf = up.recv(256 << 10)
                    if not buf:
                        break
                if length is not None:
                    buf = buf[:length - pos]
                if limit is not None and pos + len(buf) > limit:
                    buf = buf[:limit - pos]
                if flips:
                    hit = [f for f in flips if pos <= f < pos + len(buf)]
                    if hit:
                        b = bytearray(buf)
                        for f in hit:
                            b[f - pos] ^= 0xFF
                        buf = bytes(b)
                if bps:
                    piece, buf = buf[:64 << 10], buf[64 << 10:]
                else:
                    piece, buf = buf, b""
                if chunked:
                    conn.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n" if piece else b"")
                else:
                    conn.sendall(piece)
                pos += len(piece)
                entry["sent"] = pos
                if limit is not None and pos >= limit:
                    return  # cut: close both connections mid-body
                if bps:
                    ahead = pos / bps - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
            if chunked:
                conn.sendall(b"0\r\n\r\n")
            entry["done"] = True
            entry["t_done"] = time.monotonic()
        except OSError as e:  # recorded: a test that counts requests can tell a drop from an answer
            if entry is not None:
                entry["error"] = repr(e)
        finally:
            for s in (conn, up):
                if s is not None:
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    s.close()
            self.conns.discard(conn)


# --------------------------------------------------------------------- token issuer

def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def libtrust_key_id(key_pem):
    """docker/libtrust's key ID, which docker-registry matches a JWT `kid` against:
    SHA-256 of the DER SubjectPublicKeyInfo, first 240 bits, base32, in groups of 4."""
    der = subprocess.run(["openssl", "pkey", "-in", str(key_pem), "-pubout", "-outform", "DER"],
                         capture_output=True, check=True, timeout=30).stdout
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i:i + 4] for i in range(0, len(b32), 4))


def rs256_sign(key_pem, data):
    """RSASSA-PKCS1-v1_5 with SHA-256 (JWT "RS256"), by the openssl command."""
    return subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(key_pem)], input=data,
                          capture_output=True, check=True, timeout=30).stdout


class TokenIssuer:
    """A Docker-style token service: GET /token?service=&scope= with Basic
    credentials answers {"token", "expires_in"}; an RS256 JWT signed with a key
    whose self-signed certificate is docker-registry's rootcertbundle (header
    `kid`: the libtrust key ID docker-registry 2.8 derives from that certificate). Without
    (valid) credentials: 401, or, with anonymous="empty", a token granting nothing."""

    service = "test-registry"
    issuer = "test-issuer"

    def __init__(self, d, expires_in=300, anonymous="deny"):
        self.dir = Path(d)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.expires_in = expires_in
        self.anonymous = anonymous
        self.log = []  # {"user": name or None, "scopes": [...], "status": int, "agent": User-Agent}
        self.rotate_key()
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                issuer._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def rotate_key(self):
        """A new key and certificate (cert.pem); tokens signed before no longer verify."""
        n = getattr(self, "generation", 0) + 1
        key, cert = self.dir / ("key%d.pem" % n), self.dir / ("cert%d.pem" % n)
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-keyout", key, "-out", cert, "-subj", "/CN=test-issuer"])
        self.key = key
        self.kid = libtrust_key_id(key)
        self.cert = cert
        self.generation = n

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def from_node(self):
        """Token requests the edgepier node made."""
        return [e for e in self.log if e["agent"].startswith("edgepier/")]

    def make_token(self, subject, access):
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "kid": self.kid}
        claims = {"iss": self.issuer, "sub": subject, "aud": self.service, "exp": now + self.expires_in,
                  "nbf": now - 10, "iat": now, "jti": _b64url(os.urandom(12)), "access": access}
        signing_input = _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        sig = rs256_sign(self.key, signing_input.encode())
        return signing_input + "." + _b64url(sig)

    def _handle(self, h):
        q = urllib.parse.parse_qs(urllib.parse.urlparse(h.path).query)
        scopes = q.get("scope", [])
        user = None
        auth = h.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
                user = u if (u, p) == (USER, PASSWORD) else "!bad"
            except Exception:
                user = "!bad"
        if user == "!bad" or (user is None and self.anonymous == "deny"):
            self.log.append({"user": user, "scopes": scopes, "status": 401,
                             "agent": h.headers.get("User-Agent", "")})
            body = b'{"details":"invalid credentials"}'
            h.send_response(401)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            return
        access = []
        if user is not None:
            for scope in scopes:
                parts = scope.split(":")
                if len(parts) >= 3 and parts[0] == "repository":
                    access.append({"type": "repository", "name": ":".join(parts[1:-1]),
                                   "actions": parts[-1].split(",")})
        token = self.make_token(user or "", access)
        body = json.dumps({"token": token, "access_token": token, "expires_in": self.expires_in,
                           "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode()
        self.log.append({"user": user, "scopes": scopes, "status": 200,
                         "agent": h.headers.get("User-Agent", "")})
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)


class BlobServer:
    """Serves given bytes at /blob/<digest> and records each request's headers
    (the far side of a redirect, on another origin)."""

    def __init__(self):
        self.blobs = {}
        self.log = []
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                srv.log.append((self.path, dict(self.headers)))
                data = srv.blobs.get(self.path.rsplit("/", 1)[-1])
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ----------------------------------------------------------------------- containerd

# ------------------------------------------------------------------------------ Env

class Env:
    """One test's world: a temporary directory and everything started in it."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="ep-mirror-"))
        self.closers = []
        self.logs = []  # (label, path) attached to a failing test's report
        self._n = 0

    def _name(self, prefix):
        self._n += 1
        return "%s%d" % (prefix, self._n)

    def upstream(self, auth=None, tls=None):
        u = Upstream(self, self._name("upstream"), auth=auth, tls=tls)
        self.closers.append(u.stop)
        self.logs.append(("upstream %s" % u.host, u.log))
        return u

    def node(self, upstreams, **kw):
        n = Node(self, self._name("node"), upstreams, **kw)
        self.closers.append(n.stop)
        self.logs.append(("node %s" % n.host, n.log))
        return n

    def proxy(self, upstream):
        host, port = upstream.host.split(":")
        p = FaultProxy(host, int(port))
        self.closers.append(p.close)
        return p

    def issuer(self, **kw):
        i = TokenIssuer(self.dir / self._name("issuer"), **kw)
        self.closers.append(i.close)
        return i

    def blob_server(self):
        b = BlobServer()
        self.closers.append(b.close)
        return b

    def containerd(self):
        c = Containerd()
        self.closers.append(c.close)
        self.logs.append(("containerd", c.log))
        return c

    def skopeo(self, args, check=True, timeout=120):
        return run(with_blob_cache(self.dir / "blob-info-cache", ["skopeo"] + list(args)), check=check,
                   timeout=timeout)

    def close(self):
        errors = []
        for close in reversed(self.closers):
            try:
                close()
            except Exception as e:  # keep stopping the rest
                errors.append(e)
        if not os.environ.get("EP_KEEP"):  # EP_KEEP=1 keeps every test's directory and logs
            shutil.rmtree(self.dir, ignore_errors=True)
        if errors:
            raise errors[0]
