#!/usr/bin/env python3
"""Generate Signet's image fixtures deterministically (stdlib only).

Run from anywhere:  python3 testdata/images/make.py
It rewrites, byte for byte identically on every run:
  single/                       OCI layout, one image (config + 2 plain tar layers), tagged v1
  multi/                        OCI layout, index of linux/amd64 + linux/arm64, tagged v1
  docker-save.tar               `docker save` archive as docker < 25 writes it
  docker-save.manifest.json     the manifest containers/image (skopeo) synthesises for it
  docker-save-oci.tar           `docker save` archive as docker 25+ writes it (with an OCI layout)
"""

import hashlib
import io
import json
import os
import shutil
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
EPOCH = 1700000000  # fixed mtime for files inside layers

OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
# containers/image labels every synthesised docker-archive layer like this, compressed or not.
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
REF_NAME = "org.opencontainers.image.ref.name"


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def compact(obj):
    """Go's json.Marshal: compact, keys in the order given."""
    return json.dumps(obj, separators=(",", ":")).encode()


def tar_bytes(entries, mtime=EPOCH):
    """A ustar archive of (name, data-or-None-for-dir) in the order given, fixed metadata."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = mtime
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.mode = 0o644
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def layer(files):
    entries = []
    dirs = set()
    for name, data in files:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i]) + "/"
            if d not in dirs:
                dirs.add(d)
                entries.append((d, None))
        entries.append((name, data))
    return tar_bytes(entries)


def config(arch, layers, variant=None):
    cfg = {
        "architecture": arch,
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "created": "2023-11-14T22:13:20Z",
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "signet testdata/images/make.py"}
                    for _ in layers],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha256(l) for l in layers]},
    }
    if variant:
        cfg["variant"] = variant
    return compact(cfg)


def descriptor(media_type, data, **extra):
    d = {"mediaType": media_type, "digest": sha256(data), "size": len(data)}
    d.update(extra)
    return d


def oci_manifest(cfg, layers):
    return compact({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, cfg),
        "layers": [descriptor(OCI_LAYER_TAR, l) for l in layers],
    })


def write_layout(name, blobs, index_entries):
    root = os.path.join(HERE, name)
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(os.path.join(root, "blobs", "sha256"))
    with open(os.path.join(root, "oci-layout"), "wb") as f:
        f.write(OCI_LAYOUT)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index_entries}
    with open(os.path.join(root, "index.json"), "wb") as f:
        f.write(compact(index))
    for data in blobs:
        with open(os.path.join(root, "blobs", "sha256", hashlib.sha256(data).hexdigest()), "wb") as f:
            f.write(data)


# --- shared content ---------------------------------------------------------------------------
LAYER_BASE = layer([("etc/os-release", b'NAME="Signet fixture"\nID=signet\n'),
                    ("etc/hostname", b"fixture\n")])
LAYER_APP = layer([("app/hello.txt", b"hello from the signet fixture image\n")])
LAYER_ARM = layer([("app/arch.txt", b"arm64\n")])
LAYER_AMD = layer([("app/arch.txt", b"amd64\n")])


def make_single():
    layers = [LAYER_BASE, LAYER_APP]
    cfg = config("amd64", layers)
    man = oci_manifest(cfg, layers)
    entry = descriptor(OCI_MANIFEST, man, annotations={REF_NAME: "v1"})
    write_layout("single", [cfg, man] + layers, [entry])


def make_multi():
    blobs = []
    children = []
    for arch, variant, extra in (("amd64", None, LAYER_AMD), ("arm64", "v8", LAYER_ARM)):
        layers = [LAYER_BASE, extra]
        cfg = config(arch, layers, variant)
        man = oci_manifest(cfg, layers)
        platform = {"architecture": arch, "os": "linux"}
        if variant:
            platform["variant"] = variant
        children.append(descriptor(OCI_MANIFEST, man, platform=platform))
        blobs += [cfg, man] + layers
    index = compact({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children})
    entry = descriptor(OCI_INDEX, index, annotations={REF_NAME: "v1"})
    write_layout("multi", blobs + [index], [entry])


def docker_archive(members, name):
    """docker's archive.Tar walks its temp dir in lexical order, directories included."""
    names = set()
    for member in members:
        parts = member.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            names.add("/".join(parts[:i]) + "/")
    entries = [(n, None) for n in names] + list(members.items())
    entries.sort(key=lambda e: e[0].rstrip("/"))
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(tar_bytes(entries, mtime=0))


def make_docker_save_legacy():
    """docker < 25: <config-hex>.json, <v1-id>/{VERSION,json,layer.tar}, manifest.json, repositories."""
    layers = [LAYER_BASE, LAYER_APP]
    cfg = config("amd64", layers)
    cfg_hex = hashlib.sha256(cfg).hexdigest()
    members = {f"{cfg_hex}.json": cfg}
    layer_paths = []
    parent = None
    for i, data in enumerate(layers):
        # docker derives v1 IDs from the v1 JSON, the chain ID and the parent; any stable hex will do.
        v1 = {"id": "", "created": "1970-01-01T00:00:00Z", "os": "linux"}
        v1_id = hashlib.sha256(f"{parent}:{sha256(data)}".encode()).hexdigest()
        v1["id"] = v1_id
        if parent:
            v1["parent"] = parent
        members[f"{v1_id}/VERSION"] = b"1.0"
        members[f"{v1_id}/json"] = compact(v1)
        members[f"{v1_id}/layer.tar"] = data
        layer_paths.append(f"{v1_id}/layer.tar")
        parent = v1_id
    repo = "example.com/signet/fixture"
    manifest = [{"Config": f"{cfg_hex}.json", "RepoTags": [f"{repo}:v1"], "Layers": layer_paths}]
    members["manifest.json"] = compact(manifest) + b"\n"  # json.NewEncoder appends a newline
    members["repositories"] = compact({repo: {"v1": parent}}) + b"\n"
    docker_archive(members, "docker-save.tar")
    # What containers/image's docker/internal/tarfile GetManifest returns for this archive.
    synthesised = compact({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "size": len(cfg), "digest": sha256(cfg)},
        "layers": [{"mediaType": DOCKER_LAYER_GZIP, "size": len(l), "digest": sha256(l)} for l in layers],
    })
    with open(os.path.join(HERE, "docker-save.manifest.json"), "wb") as f:
        f.write(synthesised)


def make_docker_save_oci():
    """docker 25+: blobs/sha256/*, index.json, oci-layout, manifest.json, repositories."""
    layers = [LAYER_BASE, LAYER_APP]
    cfg = config("amd64", layers)
    man = compact({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, cfg),
        "layers": [descriptor(OCI_LAYER_TAR, l) for l in layers],
    })
    blob = lambda data: "blobs/sha256/" + hashlib.sha256(data).hexdigest()
    repo = "example.com/signet/fixture"
    members = {blob(d): d for d in [cfg, man] + layers}
    members["oci-layout"] = OCI_LAYOUT
    members["index.json"] = compact({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [descriptor(OCI_MANIFEST, man, annotations={
            "io.containerd.image.name": f"{repo}:v1", REF_NAME: "v1"})],
    })
    members["manifest.json"] = compact([{
        "Config": blob(cfg), "RepoTags": [f"{repo}:v1"], "Layers": [blob(l) for l in layers],
    }]) + b"\n"
    members["repositories"] = compact({repo: {"v1": hashlib.sha256(LAYER_APP).hexdigest()}}) + b"\n"
    docker_archive(members, "docker-save-oci.tar")


if __name__ == "__main__":
    make_single()
    make_multi()
    make_docker_save_legacy()
    make_docker_save_oci()
