"""Who may write from another host (#15): clients in a network namespace of their own.

Two namespaces joined by a veth pair: the nodes run in `srv` (10.77.0.1), the client
in `cli` (10.77.0.2), so the nodes see a non-loopback address, as they would a
kubelet or a CI runner on another machine. Both namespaces are torn down afterwards.
"""

import os
import shutil
import subprocess

import pytest

from conftest import make_image, make_tls, run, stop_process, write_htpasswd
from eptest import EP_BIN, free_port, log_tail

SRV, CLI = "10.77.0.1", "10.77.0.2"


def ns_run(ns, cmd, check=True, timeout=60):
    return run(["ip", "netns", "exec", ns] + [str(c) for c in cmd], check=check, timeout=timeout)


@pytest.fixture(scope="module")
def namespaces():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.fail("these tests need root and iproute2 (network namespaces)")
    tag = "%d" % (os.getpid() % 100000)
    srv, cli = "ep-asrv-" + tag, "ep-acli-" + tag
    a, b = "ep-as" + tag, "ep-ac" + tag
    try:
        for cmd in (["ip", "netns", "add", srv], ["ip", "netns", "add", cli],
                    ["ip", "link", "add", a, "type", "veth", "peer", "name", b],
                    ["ip", "link", "set", a, "netns", srv], ["ip", "link", "set", b, "netns", cli],
                    ["ip", "-n", srv, "addr", "add", SRV + "/24", "dev", a],
                    ["ip", "-n", cli, "addr", "add", CLI + "/24", "dev", b],
                    ["ip", "-n", srv, "link", "set", a, "up"], ["ip", "-n", cli, "link", "set", b, "up"],
                    ["ip", "-n", srv, "link", "set", "lo", "up"], ["ip", "-n", cli, "link", "set", "lo", "up"]):
            run(cmd)
        yield srv, cli
    finally:
        subprocess.run(["ip", "netns", "del", srv], capture_output=True)
        subprocess.run(["ip", "netns", "del", cli], capture_output=True)


class NsNode:
    """An edgepier in the server namespace, its registry on SRV:port (and on its loopback)."""

    def __init__(self, ns, workdir, extra=()):
        self.port = free_port()
        self.dir = workdir
        data = workdir / "data"
        data.mkdir(parents=True)
        self.log = workdir / "edgepier.log"
        ports = [free_port() for _ in range(3)]
        cmd = ["ip", "netns", "exec", ns, EP_BIN, "--edgepier.registry-address=0.0.0.0:%d" % self.port,
               "--edgepier.data-dir=%s" % data, "--edgepier.admin-address=127.0.0.1:%d" % ports[0],
               "--edgepier.cluster-address=127.0.0.1:%d" % ports[1],
               "--edgepier.data-address=127.0.0.1:%d" % ports[2]] + list(extra)
        with open(self.log, "wb") as lf:
            self.proc = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        for _ in range(300):
            if self.proc.poll() is not None:
                raise RuntimeError("edgepier exited: " + log_tail(self.log))
            if ns_run(ns, ["ss", "-ltn", "sport = :%d" % self.port], check=False).out.count("LISTEN"):
                return
            subprocess.run(["sleep", "0.1"])
        raise RuntimeError("edgepier did not listen: " + log_tail(self.log))

    def stop(self):
        stop_process(self.proc)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return make_image(tmp_path_factory.mktemp("remote-img") / "img", "edgepier-auth-remote", 1, 1)


def push(ns, image, url, creds=None, certs=None, check=False):
    cmd = ["skopeo", "copy", "--retry-times", "0"]
    cmd += ["--dest-cert-dir", certs] if certs else ["--dest-tls-verify=false"]
    if creds:
        cmd += ["--dest-creds", creds]
    return ns_run(ns, cmd + ["oci:%s:latest" % image["dir"], "docker://" + url], check=check)


def test_without_users_only_the_nodes_own_host_writes(namespaces, image, tmp_path):
    srv, cli = namespaces
    node = NsNode(srv, tmp_path / "open")
    try:
        remote = push(cli, image, "%s:%d/team/app:v1" % (SRV, node.port))
        assert remote.returncode != 0
        assert "anonymous push is accepted only from this node's own host" in remote.err, remote.err
        assert "set htpasswd-file" in remote.err, remote.err
        # the node's own host writes, over loopback or to the host's own address; the other host pulls
        push(srv, image, "127.0.0.1:%d/team/app:v1" % node.port, check=True)
        push(srv, image, "%s:%d/team/app:v2" % (SRV, node.port), check=True)
        raw = ns_run(cli, ["skopeo", "inspect", "--tls-verify=false", "--raw",
                           "docker://%s:%d/team/app:v1" % (SRV, node.port)]).stdout
        assert raw == image["manifest_raw"]
        deleted = ns_run(cli, ["skopeo", "delete", "--tls-verify=false",
                               "docker://%s:%d/team/app:v1" % (SRV, node.port)], check=False)
        assert deleted.returncode != 0 and "anonymous delete is accepted only" in deleted.err, deleted.err
    finally:
        node.stop()


def test_passwords_cross_the_network_only_inside_tls(namespaces, image, tmp_path):
    srv, cli = namespaces
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"alice": "alice-pw"})
    tls = make_tls(tmp_path / "tls", hosts=(SRV,))
    certs = tmp_path / "certs.d"
    certs.mkdir()
    shutil.copy(tls["ca"], certs / "ca.crt")
    plain = NsNode(srv, tmp_path / "plain", ["--edgepier.htpasswd-file=%s" % htpasswd])
    secure = NsNode(srv, tmp_path / "secure", ["--edgepier.htpasswd-file=%s" % htpasswd,
                                               "--edgepier.tls-cert-file=%s" % tls["cert"],
                                               "--edgepier.tls-key-file=%s" % tls["key"]])
    try:
        anonymous = push(cli, image, "%s:%d/team/app:v1" % (SRV, plain.port))
        assert anonymous.returncode != 0 and "authentication required" in anonymous.err, anonymous.err
        over_http = push(cli, image, "%s:%d/team/app:v1" % (SRV, plain.port), creds="alice:alice-pw")
        assert over_http.returncode != 0
        assert "Basic credentials over plain HTTP are refused" in over_http.err, over_http.err
        push(cli, image, "%s:%d/team/app:v1" % (SRV, secure.port), creds="alice:alice-pw", certs=certs, check=True)
        assert ("write: push user=alice repository=team/app reference=v1 digest=%s client=%s"
                % (image["manifest"], CLI)) in secure.log.read_text()
    finally:
        plain.stop()
        secure.stop()
