#!/usr/bin/python3
"""Builds OCI image-layout tarballs locally, for tests that import images into a real containerd
(`ctr -n k8s.io images import FILE`) when no registry is reachable.

Standard library only. Every output is deterministic for the same arguments (fixed mtimes,
gzip header without time or name, seeded content), so image ids are stable between runs.

Usage:
  oci_image.py OUT_DIR SPEC...

SPEC is one of
  busybox:NAME:BUSYBOX_PATH[:ARG,ARG...]   one layer holding BUSYBOX_PATH as /bin/busybox plus
                                           /bin/sh -> busybox; the optional args become the
                                           image's Entrypoint (e.g. /bin/busybox,sleep,3600)
  random:NAME:BYTES[:SEED]                 one layer holding /data (BYTES of seeded pseudo-random,
                                           incompressible bytes) and Cmd /bin/true

NAME is the image reference written to index.json as io.containerd.image.name (e.g.
rsre.test/img-1:1). For each SPEC one tarball is written to OUT_DIR and one line is printed:

  NAME <TAB> TARBALL <TAB> IMAGE_ID <TAB> PACKED_SIZE <TAB> MANIFEST_DIGEST

IMAGE_ID is the config digest (what the CRI reports as Image.id) and PACKED_SIZE the sum of the
manifest, config and layer blob sizes (what containerd reports as the image size).
"""

import gzip
import hashlib
import io
import json
import os
import random
import sys
import tarfile

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(entries):
    """entries: list of (path, kind, payload, mode); kind 'file', 'dir' or 'symlink'."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, kind, payload, mode in entries:
            info = tarfile.TarInfo(path)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mode = mode
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = payload
                tar.addfile(info)
            else:
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def gzip_bytes(data):
    out = io.BytesIO()
    # mtime=0 and no file name: the same input gives the same blob, hence the same digest.
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=1, mtime=0, filename="") as gz:
        gz.write(data)
    return out.getvalue()


def build_image(name, tar_bytes, image_config):
    """Returns (tarball bytes, image id, packed size, manifest digest)."""
    layer = gzip_bytes(tar_bytes)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": image_config,
        "rootfs": {"type": "layers", "diff_ids": [sha256(tar_bytes)]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "tests/support/oci_image.py"}],
    }
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": sha256(config_bytes),
                   "size": len(config_bytes)},
        "layers": [{"mediaType": MEDIA_LAYER, "digest": sha256(layer), "size": len(layer)}],
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    index = {
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": MEDIA_MANIFEST,
            "digest": sha256(manifest_bytes),
            "size": len(manifest_bytes),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {
                "io.containerd.image.name": name,
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    }
    files = [("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode()),
             ("index.json", json.dumps(index, sort_keys=True).encode())]
    for blob in (layer, config_bytes, manifest_bytes):
        files.append(("blobs/sha256/" + hashlib.sha256(blob).hexdigest(), blob))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for path, data in files:
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    packed = len(layer) + len(config_bytes) + len(manifest_bytes)
    return out.getvalue(), sha256(config_bytes), packed, sha256(manifest_bytes)


def busybox_image(name, path, entrypoint):
    with open(path, "rb") as f:
        busybox = f.read()
    tar_bytes = layer_tar([
        ("bin", "dir", None, 0o755),
        ("bin/busybox", "file", busybox, 0o755),
        ("bin/sh", "symlink", "busybox", 0o777),
        ("bin/true", "symlink", "busybox", 0o777),
        ("bin/sleep", "symlink", "busybox", 0o777),
        ("tmp", "dir", None, 0o1777),
    ])
    cfg = {"Env": ["PATH=/bin"], "WorkingDir": "/"}
    if entrypoint:
        cfg["Entrypoint"] = entrypoint
    else:
        cfg["Cmd"] = ["/bin/sh"]
    return build_image(name, tar_bytes, cfg)


def random_image(name, size, seed):
    data = random.Random(seed).randbytes(size)
    tar_bytes = layer_tar([("data", "file", data, 0o644)])
    return build_image(name, tar_bytes, {"Env": ["PATH=/bin"], "Cmd": ["/bin/true"]})


def main(argv):
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    out_dir = argv[1]
    os.makedirs(out_dir, exist_ok=True)
    for n, spec in enumerate(argv[2:]):
        parts = spec.split(":")
        kind = parts[0]
        # NAME itself contains one ':' (repo:tag): rejoin it.
        if len(parts) < 4:
            sys.stderr.write("bad spec %r\n" % spec)
            return 2
        name = parts[1] + ":" + parts[2]
        rest = parts[3:]
        if kind == "busybox":
            entry = rest[1].split(",") if len(rest) > 1 and rest[1] else None
            blob, image_id, packed, mdigest = busybox_image(name, rest[0], entry)
        elif kind == "random":
            seed = int(rest[1]) if len(rest) > 1 else n + 1
            blob, image_id, packed, mdigest = random_image(name, int(rest[0]), seed)
        else:
            sys.stderr.write("unknown kind %r\n" % kind)
            return 2
        safe = name.replace("/", "_").replace(":", "_")
        path = os.path.join(out_dir, safe + ".tar")
        with open(path, "wb") as f:
            f.write(blob)
        print("%s\t%s\t%s\t%d\t%s" % (name, path, image_id, packed, mdigest))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
