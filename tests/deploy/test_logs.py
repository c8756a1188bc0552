"""The node's logs, as an operator's collector reads them.

A real node on loopback: with log-format = "json" every line on stderr is
one JSON object (time, level, component, msg), even for a request whose
path holds bytes that are not UTF-8; at info nothing is logged per request;
at debug every request gets one access-log line; a bad log-level or
log-format stops the node at once with exit status 2 and says why.
"""
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))
from eptest import EP_BIN, free_port, wait_for  # noqa: E402


def start(tmp_path, *flags):
    ports = [free_port() for _ in range(4)]
    err = open(tmp_path / "stderr.log", "wb")
    proc = subprocess.Popen([EP_BIN, f"--edgepier.data-dir={tmp_path / 'data'}",
                             f"--edgepier.registry-address=127.0.0.1:{ports[0]}",
                             f"--edgepier.admin-address=127.0.0.1:{ports[1]}",
                             f"--edgepier.cluster-address=127.0.0.1:{ports[2]}",
                             f"--edgepier.data-address=127.0.0.1:{ports[3]}", *flags],
                            stdout=subprocess.DEVNULL, stderr=err)
    url = f"http://127.0.0.1:{ports[0]}"

    def up():
        try:
            return requests.get(url + "/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            assert proc.poll() is None, (tmp_path / "stderr.log").read_text()
            return False
    wait_for(up, 20, what="node up")
    return proc, url, ports[0]


def stop(proc, tmp_path):
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    return (tmp_path / "stderr.log").read_bytes().decode("utf-8")


def raw_get(port, path_bytes):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET " + path_bytes + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        while s.recv(65536):
            pass


def test_json_lines_and_access_log_at_debug(tmp_path):
    proc, url, port = start(tmp_path, "--edgepier.log-format=json", "--edgepier.log-level=debug")
    requests.get(url + "/v2/", timeout=5)
    requests.get(url + "/v2/lib/app/manifests/missing", timeout=5)
    raw_get(port, b"/v2/lib/app\xff\"}/manifests/latest")
    text = stop(proc, tmp_path)
    lines = [json.loads(line) for line in text.splitlines()]  # every line is one object
    assert lines and all(set(doc) == {"time", "level", "component", "msg"} for doc in lines), lines
    assert all(doc["time"].endswith("Z") for doc in lines)
    access = [doc["msg"] for doc in lines if doc["component"] == "access" and "/healthz" not in doc["msg"]]
    assert len(access) == 3, access
    assert access[0].startswith('127.0.0.1 "GET /v2/" 200 ')
    assert '"GET /v2/lib/app/manifests/missing" 404 ' in access[1]
    assert access[2].startswith('127.0.0.1 "GET /v2/lib/app\\xff\\x22}/manifests/latest" 400 '), access[2]
    assert all(doc["level"] == "debug" for doc in lines if doc["component"] == "access")
    node = [doc["msg"] for doc in lines if doc["component"] == "node"]
    assert node[0].startswith("node ") and "serving the registry" in node[0]
    assert node[-2:] == ["shutting down (SIGTERM)", "stopped"]


def test_info_has_no_per_request_lines(tmp_path):
    proc, url, _ = start(tmp_path)  # defaults: info, text
    for _ in range(20):
        requests.get(url + "/v2/", timeout=5)
        requests.get(url + "/v2/lib/app/manifests/missing", timeout=5)
    text = stop(proc, tmp_path)
    lines = text.splitlines()
    assert len(lines) == 3, lines  # started, shutting down, stopped
    assert all(" info node: " in line for line in lines), lines


@pytest.mark.parametrize("flag,needle", [("--edgepier.log-level=loud", "log-level"),
                                         ("--edgepier.log-format=xml", "log-format")])
def test_bad_log_settings_stop_the_node(tmp_path, flag, needle):
    p = subprocess.run([EP_BIN, f"--edgepier.data-dir={tmp_path / 'data'}", flag],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 2, p.stderr
    assert needle in p.stderr and "expected" in p.stderr, p.stderr
