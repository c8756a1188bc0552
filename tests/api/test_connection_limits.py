"""Bounded connections (README "Settings": http-max-connections, http-header-timeout,
http-stall-timeout): idle and slow clients are closed, connections past the cap get one
503 UNAVAILABLE each and the log says so once, and the node serves again as they go."""

import json
import re
import socket
import time

import pytest

from conftest import edgepier_only


def _connect(reg):
    s = socket.create_connection(("127.0.0.1", reg.port), timeout=10)
    s.settimeout(10)
    return s


def _closed_within(sock, seconds, trickle=None):
    """True when the server closes `sock` within `seconds`; `trickle` sends a byte now and then."""
    deadline = time.monotonic() + seconds
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            if sock.recv(4096) == b"":
                return True
        except socket.timeout:
            pass
        except ConnectionError:
            return True
        if trickle:
            try:
                sock.sendall(trickle())
            except OSError:
                return True
    return False


def _get_v2(sock):
    sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    want = int(headers.get("Content-Length", "0"))
    while len(body) < want:
        body += sock.recv(4096)
    return int(lines[0].split()[1]), headers, body


def _restart_with(reg, *settings):
    reg.stop()
    reg.extra_args = list(settings)
    reg.start()


@edgepier_only("connection limits are edgepier settings")
def test_a_slowloris_header_is_cut_at_the_header_timeout(own_registry):
    _restart_with(own_registry, "--edgepier.http-header-timeout=1s")
    sock = _connect(own_registry)
    request = iter(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 10_000)
    started = time.monotonic()
    assert _closed_within(sock, 5, trickle=lambda: bytes([next(request)])), \
        "a client sending one header byte at a time kept its connection past the header timeout"
    assert time.monotonic() - started < 3
    idle = _connect(own_registry)
    assert _closed_within(idle, 3), "an idle connection outlived the header timeout"
    assert own_registry.get("/v2/").status_code == 200


@edgepier_only("connection limits are edgepier settings")
def test_a_stalled_upload_body_is_cut_at_the_stall_timeout(own_registry, repo):
    _restart_with(own_registry, "--edgepier.http-stall-timeout=1s")
    location = own_registry.start_upload(repo)
    path = location if location.startswith("/") else "/" + location.split("/", 3)[3]
    sock = _connect(own_registry)
    sock.sendall(f"PATCH {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                 f"Content-Length: 1000000\r\n\r\n".encode() + b"x" * 1000)
    started = time.monotonic()
    assert _closed_within(sock, 5), "an upload body that stopped arriving kept its connection"
    assert time.monotonic() - started < 3
    assert own_registry.get("/v2/").status_code == 200


@edgepier_only("connection limits are edgepier settings")
def test_connections_past_the_cap_get_503_and_the_log_says_it_once(own_registry):
    cap = 20
    _restart_with(own_registry, f"--edgepier.http-max-connections={cap}", "--edgepier.http-header-timeout=3s")
    idle = [_connect(own_registry) for _ in range(cap)]
    time.sleep(0.5)  # accepted by the node
    refusals = []
    for _ in range(5):
        s = _connect(own_registry)
        refusals.append(_get_v2(s))
        s.close()
    for status, headers, body in refusals:
        assert status == 503
        assert headers.get("Retry-After") == "1"
        error = json.loads(body)["errors"][0]
        assert error["code"] == "UNAVAILABLE"
        assert "http-max-connections" in error["message"]
    # The idle ones end at the header timeout; then the node serves again.
    for s in idle:
        assert _closed_within(s, 6)
    deadline = time.monotonic() + 5
    while own_registry.get("/v2/").status_code != 200:
        assert time.monotonic() < deadline, "the node did not serve again after the idle connections went"
        time.sleep(0.1)
    log = own_registry.stderr_tail(100_000)
    assert log.count("reached http-max-connections") == 1, log
    # Our 5, plus any /v2/ of the loop above that came before the idle ones were gone.
    again = re.search(r"below the cap again; (\d+) refused meanwhile", log)
    assert again and int(again.group(1)) >= 5, log
