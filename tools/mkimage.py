#!/usr/bin/python3
"""Generate a deterministic OCI image layout for registry tests.

Usage:
    mkimage.py OUTDIR --seed S --layers N --layer-mb M [--tag T]
               [--small-layers K --small-kb KB] [--compress-level L]

Writes OUTDIR/{oci-layout,index.json,blobs/sha256/...} holding one image:
an OCI image manifest, an OCI image config (amd64/linux, rootfs.diff_ids,
one history entry per layer) and N + K gzip-compressed tar layers filled
with seeded pseudo-random (incompressible) bytes.

Determinism: the same arguments give byte-identical output (fixed mtimes,
uid/gid 0, sorted tar entries, gzip mtime 0 and no file name in the gzip
header, canonical JSON).  The content of a layer depends only on
(seed, kind, index, size), so two images made with the same seed share
their leading layers of equal size (handy for cross-repo mount / dedup
tests), and different seeds share nothing.

Prints one JSON object on stdout:
    {"manifest": "sha256:...", "manifest_size": n, "bytes": total,
     "tag": T, "config": {"digest": ..., "size": ...},
     "layers": [{"digest": ..., "size": ..., "diff_id": ...}, ...]}
"bytes" is the total size of all blobs of the image (layers + config +
manifest), i.e. what a client pushes.

Standard library only; run with Debian's /usr/bin/python3.
"""

import argparse
import gzip
import hashlib
import json
import os
import random
import sys
import tarfile
import tempfile

MIB = 1 << 20
FIXED_MTIME = 946684800  # 2000-01-01T00:00:00Z
CREATED = "2000-01-01T00:00:00Z"
MAX_FILE = 64 * MIB  # large layers are split into files of at most this size

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def canonical_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


class RandomReader:
    """File-like object yielding `size` seeded pseudo-random bytes."""

    def __init__(self, rng, size):
        self.rng = rng
        self.left = size
        self.buf = memoryview(b"")
        self.pos = 0

    def read(self, n=-1):
        if n is None or n < 0:
            n = self.left + len(self.buf) - self.pos
        out = []
        have = 0
        while have < n:
            if self.pos >= len(self.buf):
                if self.left <= 0:
                    break
                chunk = min(MIB, self.left)
                self.buf = memoryview(self.rng.randbytes(chunk))
                self.pos = 0
                self.left -= chunk
            take = self.buf[self.pos:self.pos + (n - have)]
            self.pos += len(take)
            out.append(take)
            have += len(take)
        if len(out) == 1:
            return bytes(out[0])
        return b"".join(out)


class HashingWriter:
    """Write-only file-like object that hashes and counts, then forwards."""

    def __init__(self, sink=None):
        self.sink = sink
        self.h = hashlib.sha256()
        self.n = 0

    def write(self, data):
        self.h.update(data)
        self.n += len(data)
        if self.sink is not None:
            self.sink.write(data)
        return len(data)

    def flush(self):
        if self.sink is not None:
            self.sink.flush()

    def digest(self):
        return "sha256:" + self.h.hexdigest()


def blob_path(outdir, digest):
    algo, hexd = digest.split(":", 1)
    return os.path.join(outdir, "blobs", algo, hexd)


def write_blob_bytes(outdir, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = blob_path(outdir, digest)
    if not os.path.exists(path):
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    return digest, len(data)


def tarinfo(name, size=0, is_dir=False):
    ti = tarfile.TarInfo(name)
    ti.mtime = FIXED_MTIME
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    if is_dir:
        ti.type = tarfile.DIRTYPE
        ti.mode = 0o755
    else:
        ti.type = tarfile.REGTYPE
        ti.mode = 0o644
        ti.size = size
    return ti


def write_layer(outdir, seed, kind, index, size, level):
    """Write one gzip'd tar layer of ~size bytes of random content.

    Returns (digest, compressed_size, diff_id)."""
    rng = random.Random("edgepier-mkimage:%s:%s:%d:%d" % (seed, kind, index, size))
    dirname = "%s%03d" % (kind, index)
    files = []
    left = size
    j = 0
    while left > 0 or j == 0:
        n = min(MAX_FILE, left)
        files.append(("%s/data%04d.bin" % (dirname, j), n))
        left -= n
        j += 1
    files.sort()

    blobs = os.path.join(outdir, "blobs", "sha256")
    fd, tmp = tempfile.mkstemp(dir=blobs, prefix=".layer-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as raw:
            comp = HashingWriter(raw)
            gz = gzip.GzipFile(filename="", mode="wb", compresslevel=level,
                               fileobj=comp, mtime=0)
            uncomp = HashingWriter(gz)
            tf = tarfile.open(fileobj=uncomp, mode="w|", format=tarfile.USTAR_FORMAT,
                              bufsize=MIB, copybufsize=MIB)
            tf.addfile(tarinfo(dirname + "/", is_dir=True))
            for name, n in files:
                tf.addfile(tarinfo(name, n), RandomReader(rng, n))
            tf.close()
            gz.close()
        digest = comp.digest()
        final = blob_path(outdir, digest)
        os.chmod(tmp, 0o644)
        os.replace(tmp, final)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return digest, comp.n, uncomp.digest()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("outdir")
    p.add_argument("--seed", required=True, help="any string; same seed -> same bytes")
    p.add_argument("--layers", type=int, required=True, help="number of large layers")
    p.add_argument("--layer-mb", type=float, required=True,
                   help="payload size of each large layer in MiB (fractions allowed)")
    p.add_argument("--tag", default="latest")
    p.add_argument("--small-layers", type=int, default=0)
    p.add_argument("--small-kb", type=float, default=4,
                   help="payload size of each small layer in KiB")
    p.add_argument("--compress-level", type=int, default=1,
                   help="gzip level 0-9 (default 1; 0 = stored, fastest)")
    a = p.parse_args(argv)
    if a.layers < 0 or a.small_layers < 0 or a.layers + a.small_layers == 0:
        p.error("need at least one layer")

    outdir = a.outdir
    if os.path.isdir(outdir) and os.listdir(outdir) and \
            not os.path.exists(os.path.join(outdir, "oci-layout")):
        p.error("%s exists, is not empty and is not an OCI layout" % outdir)
    os.makedirs(os.path.join(outdir, "blobs", "sha256"), exist_ok=True)

    layer_bytes = int(a.layer_mb * MIB)
    small_bytes = int(a.small_kb * 1024)
    specs = [("layer", i, layer_bytes) for i in range(a.layers)]
    specs += [("small", i, small_bytes) for i in range(a.small_layers)]

    layers = []
    for kind, i, size in specs:
        digest, csize, diff_id = write_layer(outdir, a.seed, kind, i, size,
                                             a.compress_level)
        layers.append({"digest": digest, "size": csize, "diff_id": diff_id,
                       "payload": size})

    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": CREATED,
        "author": "edgepier mkimage.py",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
            "Labels": {"org.edgepier.mkimage.seed": str(a.seed)},
        },
        "rootfs": {"type": "layers", "diff_ids": [l["diff_id"] for l in layers]},
        "history": [
            {"created": CREATED,
             "created_by": "mkimage.py %s %d (%d bytes)" % (kind, i, size)}
            for kind, i, size in specs
        ],
    }
    cfg_digest, cfg_size = write_blob_bytes(outdir, canonical_json(config))

    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": cfg_digest, "size": cfg_size},
        "layers": [{"mediaType": MT_LAYER, "digest": l["digest"], "size": l["size"]}
                   for l in layers],
    }
    man_digest, man_size = write_blob_bytes(outdir, canonical_json(manifest))

    index = {
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [{
            "mediaType": MT_MANIFEST,
            "digest": man_digest,
            "size": man_size,
            "annotations": {"org.opencontainers.image.ref.name": a.tag},
            "platform": {"architecture": "amd64", "os": "linux"},
        }],
    }
    with open(os.path.join(outdir, "oci-layout"), "wb") as f:
        f.write(canonical_json({"imageLayoutVersion": "1.0.0"}))
    with open(os.path.join(outdir, "index.json.tmp"), "wb") as f:
        f.write(canonical_json(index))
    os.replace(os.path.join(outdir, "index.json.tmp"), os.path.join(outdir, "index.json"))

    total = sum(l["size"] for l in layers) + cfg_size + man_size
    out = {
        "manifest": man_digest,
        "manifest_size": man_size,
        "bytes": total,
        "tag": a.tag,
        "config": {"digest": cfg_digest, "size": cfg_size},
        "layers": [{"digest": l["digest"], "size": l["size"], "diff_id": l["diff_id"]}
                   for l in layers],
    }
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
