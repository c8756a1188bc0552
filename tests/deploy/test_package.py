"""The Debian package, as an operator installs it.

Builds the .deb with `cmake --build BUILD --target package` (CPack), checks
what it installs and depends on, installs it with dpkg on this machine, runs
`systemd-analyze verify` on the installed unit, and starts the installed
binary with the installed config as the unit would (as the `edgepier` user,
data in /var/lib/edgepier). The node runs in a network namespace of its own,
so its default ports (5000, 5050, 7946, 7947) clash with nothing. The
package is purged at the end (and its user removed).
"""
import configparser
import glob
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("EP_BUILD_DIR", REPO / "build"))
NETNS = "ep-deploy-pkg"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="installs a package: needs root")


def run(cmd, timeout=600, check=True, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{cmd} exited {p.returncode}\nstdout:\n{p.stdout[-3000:]}\nstderr:\n{p.stderr[-3000:]}")
    return p


@pytest.fixture(scope="module")
def deb():
    for old in glob.glob(str(BUILD / "edgepier_*.deb")):
        os.remove(old)
    run(["cmake", "--build", str(BUILD), "--target", "package"], timeout=1200)
    found = glob.glob(str(BUILD / "edgepier_*.deb"))
    assert len(found) == 1, found
    return Path(found[0])


@pytest.fixture(scope="module")
def installed(deb):
    run(["dpkg", "--purge", "edgepier"], check=False)
    run(["dpkg", "-i", str(deb)])
    yield deb
    run(["dpkg", "--purge", "edgepier"], check=False)
    run(["userdel", "edgepier"], check=False)
    run(["groupdel", "edgepier"], check=False)


def test_package_contents_and_dependencies(deb):
    listing = run(["dpkg-deb", "-c", str(deb)]).stdout
    paths = {line.split()[-1].lstrip(".") for line in listing.splitlines()}
    for want in ("/usr/bin/edgepier", "/usr/bin/epctl", "/etc/edgepier/edgepier.ini",
                 "/lib/systemd/system/edgepier.service", "/usr/lib/sysusers.d/edgepier.conf",
                 "/usr/share/edgepier/examples/node.ini"):
        assert want in paths, f"{want} not in the package:\n{listing}"
    fields = run(["dpkg-deb", "-f", str(deb), "Package", "Version", "Depends"]).stdout
    depends = fields.split("Depends:", 1)[1]
    # Debian's runtime libraries, as dpkg-shlibdeps names them; no -dev package.
    for lib in ("libcaf-core0.17", "libsodium23", "libprotobuf32", "libssl3", "libspdlog1.10"):
        assert lib in depends, depends
    assert "-dev" not in depends, depends
    conffiles = run(["dpkg-deb", "-I", str(deb), "conffiles"]).stdout
    assert "/etc/edgepier/edgepier.ini" in conffiles


def test_installed_unit_verifies(installed):
    unit = Path("/lib/systemd/system/edgepier.service")
    assert unit.exists()
    if shutil.which("systemd-analyze"):
        p = run(["systemd-analyze", "verify", str(unit)], check=False)
        assert p.returncode == 0 and "edgepier.service" not in p.stderr, p.stderr
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(unit)
    service = parser["Service"]
    assert service["ExecStart"] == "/usr/bin/edgepier --config-file=/etc/edgepier/edgepier.ini"
    assert service["Restart"] == "on-failure"
    assert service["StateDirectory"] == "edgepier"
    assert int(service["LimitNOFILE"]) >= 65536
    for option in ("NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp", "CapabilityBoundingSet",
                   "RestrictAddressFamilies", "SystemCallFilter"):
        assert option in service, f"unit lacks {option}"
    assert run(["getent", "passwd", "edgepier"]).stdout.startswith("edgepier:"), "postinst made no user"


@pytest.fixture
def netns():
    run(["ip", "netns", "del", NETNS], check=False)
    if run(["ip", "netns", "add", NETNS], check=False).returncode != 0:
        pytest.skip("cannot create a network namespace here")
    run(["ip", "-n", NETNS, "link", "set", "lo", "up"])
    yield NETNS
    for pid in run(["ip", "netns", "pids", NETNS], check=False).stdout.split():
        os.kill(int(pid), signal.SIGKILL)
    run(["ip", "netns", "del", NETNS], check=False)


def in_netns(ns, cmd):
    return ["nsenter", f"--net=/run/netns/{ns}"] + cmd


def test_installed_binary_runs_with_installed_config(installed, netns, tmp_path):
    # What StateDirectory= does before the unit starts.
    state = Path("/var/lib/edgepier")
    state.mkdir(exist_ok=True)
    shutil.chown(state, "edgepier", "edgepier")
    log = open(tmp_path / "edgepier.log", "w")
    node = subprocess.Popen(in_netns(netns, ["setpriv", "--reuid", "edgepier", "--regid", "edgepier", "--init-groups",
                                             "/usr/bin/edgepier", "--config-file=/etc/edgepier/edgepier.ini"]),
                            cwd=state, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 20
        while True:
            p = run(in_netns(netns, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:5000/v2/"]),
                    check=False)
            if p.stdout == "200":
                break
            assert node.poll() is None, (tmp_path / "edgepier.log").read_text()
            assert time.time() < deadline, "the installed node did not answer /v2/"
            time.sleep(0.2)
        ready = run(in_netns(netns, ["curl", "-s", "http://127.0.0.1:5000/readyz"])).stdout
        assert "ready" in ready.lower(), ready
        members = run(in_netns(netns, ["/usr/bin/epctl", "--json", "members"])).stdout
        assert '"self": true' in members or '"self":true' in members, members
        assert (state / "meta").is_dir(), "the node keeps its data in /var/lib/edgepier"
        assert any(p.owner() == "edgepier" for p in state.iterdir())
    finally:
        node.send_signal(signal.SIGTERM)
        rc = node.wait(timeout=10)
        log.close()
    text = (tmp_path / "edgepier.log").read_text()
    assert rc == 0, text
    assert "info node: node " in text and "stopped" in text, text
