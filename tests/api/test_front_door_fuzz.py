"""A black-box mutation fuzzer against the node's front door.

Valid OCI requests (pull, push, upload, listings, referrers, mirror ?ns=) are
mutated byte by byte, seeded so a failure can be replayed, and sent to a
running node. Every answer must be a well-formed HTTP reply below 500 whose
JSON body, if any, parses; at the end the node must still answer /v2/.
EP_FUZZ_REQUESTS (default 3000) and EP_FUZZ_SEED set the size and seed; a
longer run by hand: EP_FUZZ_REQUESTS=100000 pytest test_front_door_fuzz.py.
The libFuzzer harnesses of the reliability issue cover the decoders in depth;
this covers the whole path from socket to handler.
"""

import json
import os
import random
import socket

import pytest

from conftest import EDGEPIER, OCI_MANIFEST
from test_bad_bytes import send_raw

REQUESTS = int(os.environ.get("EP_FUZZ_REQUESTS", "3000"))
SEED = int(os.environ.get("EP_FUZZ_SEED", "17"))

# Tokens that reach the interesting corners of the grammar and the decoders.
TOKENS = [b"%ff", b"%aa", b"%c0%af", b"%00", b"%0d%0a", b"%2e%2e", b"%2f", b"%", b"%g", b"\xff", b"\xc0\xaf",
          b"\xed\xa0\x80", b"..", b"//", b"/", b"?", b"&", b"=", b":", b"@", b"sha256:", b"sha512:", b"+",
          b"-", b"_", b"__", b"A" * 300, b"9" * 25, b"-1", b"bytes=", b"0-", b"-0", b",", b"\"", b"{", b"}",
          b"[", b"\\u0000", b"\\ud800", b"null", b"\x00", b"\t", b" "]


def seed_requests(repo, digest, manifest, upload):
    blob = f"/v2/{repo}/blobs/{digest}".encode()
    man = f"/v2/{repo}/manifests/{manifest}".encode()
    mt = OCI_MANIFEST.encode()
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                  "digest": digest, "size": 5},
                       "layers": [], "annotations": {"a": "b"}}).encode()
    return [
        (b"GET", man, b"Accept: " + mt + b"\r\n", b""),
        (b"HEAD", f"/v2/{repo}/manifests/v1".encode(), b"", b""),
        (b"GET", f"/v2/{repo}/manifests/v1?ns=docker.io".encode(), b"", b""),
        (b"PUT", f"/v2/{repo}/manifests/fz".encode(), b"Content-Type: " + mt + b"\r\n", body),
        (b"DELETE", f"/v2/{repo}/manifests/nope".encode(), b"", b""),
        (b"GET", blob, b"Range: bytes=0-3\r\n", b""),
        (b"HEAD", blob, b"", b""),
        (b"POST", f"/v2/{repo}/blobs/uploads/".encode(), b"", b""),
        (b"POST", f"/v2/{repo}/blobs/uploads/?mount={digest}&from={repo}".encode(), b"", b""),
        (b"PATCH", f"/v2/{repo}/blobs/uploads/{upload}".encode(),
         b"Content-Range: 0-3\r\nContent-Type: application/octet-stream\r\n", b"abcd"),
        (b"PUT", f"/v2/{repo}/blobs/uploads/{upload}?digest={digest}".encode(), b"", b""),
        (b"GET", f"/v2/{repo}/tags/list?n=2&last=a".encode(), b"", b""),
        (b"GET", b"/v2/_catalog?n=5&last=t", b"", b""),
        (b"GET", f"/v2/{repo}/referrers/{digest}?artifactType=application/x".encode(), b"", b""),
        (b"GET", b"/v2/", b"", b""),
    ]


def mutate(rng, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        pos = rng.randint(0, len(out))
        op = rng.randrange(6)
        if op == 0 and out:  # flip to a random byte (ASCII half the time)
            out[min(pos, len(out) - 1)] = rng.randrange(0x20, 0x7f) if rng.random() < 0.5 else rng.randrange(256)
        elif op == 1:  # insert a token
            out[pos:pos] = rng.choice(TOKENS)
        elif op == 2 and out:  # delete a run
            del out[pos:pos + rng.randint(1, 8)]
        elif op == 3:  # duplicate a run
            out[pos:pos] = out[pos:pos + rng.randint(1, 16)]
        elif op == 4:  # percent-encode a random byte
            out[pos:pos] = b"%%%02x" % rng.randrange(256)
        else:  # replace a run by a token
            out[pos:pos + rng.randint(1, 6)] = rng.choice(TOKENS)
    return bytes(out)


def build(rng, seeds):
    method, target, headers, body = rng.choice(seeds)
    part = rng.randrange(10)
    if part < 6:
        target = mutate(rng, target)
    elif part < 8:
        headers = mutate(rng, headers) if headers else headers + b"X-F: " + mutate(rng, b"v") + b"\r\n"
    elif part < 9:
        body = mutate(rng, body)
    else:
        method = mutate(rng, method)
    # Keep the framing honest so each request is one request: the header
    # block is ended, the body length is declared.
    headers = headers.replace(b"\r\n\r\n", b"\r\n")
    return (method + b" " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + headers +
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def check_reply(raw, resp):
    if resp is None:
        return  # the node may close a connection whose request it cannot parse
    status, headers, body = resp
    assert status < 500, f"{status} for {raw!r}: {body[:300]!r}"
    ctype = headers.get("content-type", "").split(";")[0]
    if ctype == "application/json" and body and not raw.startswith(b"HEAD"):
        json.loads(body)
        body.decode("utf-8")


@pytest.mark.skipif(not EDGEPIER, reason="fuzzes edgepier's front door")
def test_mutated_requests_never_crash_or_fail_the_node(registry, repo):
    _, manifest = registry.push_image(repo, "v1", seed="fuzz")
    digest = registry.push_blob(repo, b"abcde")
    upload = registry.start_upload(repo).rsplit("/", 1)[-1].split("?")[0]
    seeds = seed_requests(repo, digest, manifest, upload)
    rng = random.Random(SEED)
    answered = 0
    for i in range(REQUESTS):
        raw = build(rng, seeds)
        try:
            resp = send_raw(registry.port, raw, timeout=15)
        except (ValueError, IndexError):
            pytest.fail(f"request {i} (seed {SEED}) got a malformed reply: {raw!r}")
        except (ConnectionRefusedError, socket.timeout) as e:
            pytest.fail(f"request {i} (seed {SEED}): {e!r} after {raw!r}; stderr:\n{registry.stderr_tail()}")
        check_reply(raw, resp)
        answered += resp is not None
        if i % 500 == 499:
            assert registry.alive(), f"died at request {i} (seed {SEED}): {raw!r}\n{registry.stderr_tail()}"
    assert registry.alive(), registry.stderr_tail()
    assert registry.get("/v2/").status_code == 200
    # The pushed image is still served intact.
    r = registry.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert r.status_code == 200
    assert answered > REQUESTS * 0.9, f"only {answered} of {REQUESTS} requests were answered"
