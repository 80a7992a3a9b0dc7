#!/usr/bin/env python3
"""Build and change a TUF repository for tests/e2e/tuf.rs with python-tuf (PyPI `tuf`,
`tuf.api.metadata`) and securesystemslib's signers: a real TUF implementation, independent of the
Rust client under test (sigstore-tuf).

The repository lives in DIR/repo (served over HTTP as is: N.root.json, timestamp.json,
N.snapshot.json, N.targets.json, targets/<sha256>.<name>; consistent snapshots, as Sigstore's
repositories), the private keys in DIR/keys (test keys, made here, never used elsewhere), and the
latest versions in DIR/state.json. DIR/root.json is version 1 of the root: the client's initial
root.

    make_repo.py init DIR --trusted-root FILE    version 1 of every role
    make_repo.py publish DIR --trusted-root FILE [--signing-config FILE2]
                                                 new targets/snapshot/timestamp with FILE (and
                                                 FILE2 as signing_config.v0.2.json)
    make_repo.py rotate-root DIR                 root N+1 with new root and timestamp keys,
                                                 signed by the old and the new root keys; a new
                                                 timestamp signed with the new timestamp key
    make_repo.py expired-timestamp DIR           a new timestamp that expired a day ago
    make_repo.py bad-signature DIR --role ROLE   new ROLE (timestamp|snapshot|targets) metadata,
                                                 and what pins it, but ROLE signed by a key that
                                                 is not ROLE's (under ROLE's key id)
    make_repo.py old-snapshot DIR                a new timestamp (validly signed) that pins
                                                 snapshot version 1 again
    make_repo.py mix-and-match DIR --trusted-root FILE
                                                 new snapshot and timestamp; the snapshot pins
                                                 targets version N+1 by length and hash, but the
                                                 N+1.targets.json served (validly signed) is
                                                 another one, listing FILE
"""

import argparse
import hashlib
import json
import os
from datetime import datetime, timedelta, timezone

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner, Signature
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

ROLES = ["root", "timestamp", "snapshot", "targets"]
TRUSTED_ROOT = "trusted_root.json"
SIGNING_CONFIG = "signing_config.v0.2.json"


def later(days=30):
    return datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=days)


class Repo:
    def __init__(self, base):
        self.base = base
        self.repo = os.path.join(base, "repo")
        self.keys = os.path.join(base, "keys")
        state_path = os.path.join(base, "state.json")
        self.state = {}
        if os.path.exists(state_path):
            with open(state_path) as f:
                self.state = json.load(f)

    # keys ---------------------------------------------------------------------------------
    def new_signer(self, name):
        signer = CryptoSigner.generate_ed25519()
        os.makedirs(self.keys, exist_ok=True)
        with open(os.path.join(self.keys, name + ".pem"), "wb") as f:
            f.write(signer.private_bytes)
        return signer

    def signer(self, name):
        with open(os.path.join(self.keys, name + ".pem"), "rb") as f:
            return CryptoSigner(load_pem_private_key(f.read(), None))

    # files --------------------------------------------------------------------------------
    def write(self, name, md):
        os.makedirs(self.repo, exist_ok=True)
        data = md.to_bytes(JSONSerializer(compact=False))
        with open(os.path.join(self.repo, name), "wb") as f:
            f.write(data)
        return data

    def load(self, role):
        version = self.state[role]
        name = "timestamp.json" if role == "timestamp" else f"{version}.{role}.json"
        return Metadata.from_file(os.path.join(self.repo, name))

    def save_state(self):
        with open(os.path.join(self.base, "state.json"), "w") as f:
            json.dump(self.state, f)

    def add_target(self, targets, path, name=TRUSTED_ROOT):
        with open(path, "rb") as f:
            data = f.read()
        target = TargetFile.from_data(name, data, ["sha256", "sha512"])
        targets.signed.targets[name] = target
        os.makedirs(os.path.join(self.repo, "targets"), exist_ok=True)
        with open(os.path.join(self.repo, "targets", f"{target.hashes['sha256']}.{name}"), "wb") as f:
            f.write(data)

    # roles --------------------------------------------------------------------------------
    def sign_targets(self, targets, signer_name="targets"):
        targets.signatures.clear()
        targets.sign(self.signer(signer_name))
        name = f"{targets.signed.version}.targets.json"
        return self.write(name, targets)

    def sign_snapshot(self, snapshot, targets_bytes, targets_version, signer_name="snapshot"):
        snapshot.signed.meta["targets.json"] = pin(targets_version, targets_bytes)
        snapshot.signatures.clear()
        snapshot.sign(self.signer(signer_name))
        return self.write(f"{snapshot.signed.version}.snapshot.json", snapshot)

    def sign_timestamp(self, timestamp, snapshot_bytes, snapshot_version, signer_name="timestamp"):
        timestamp.signed.snapshot_meta = pin(snapshot_version, snapshot_bytes)
        timestamp.signatures.clear()
        timestamp.sign(self.signer(signer_name))
        return self.write("timestamp.json", timestamp)

    def bump(self, role):
        md = self.load(role)
        md.signed.version += 1
        md.signed.expires = later()
        self.state[role] = md.signed.version
        return md


def pin(version, data):
    return MetaFile(
        version=version,
        length=len(data),
        hashes={"sha256": hashlib.sha256(data).hexdigest()},
    )


def cmd_init(repo, args):
    signers = {role: repo.new_signer(role) for role in ROLES}
    root = Metadata(Root(expires=later(365)))
    for role in ROLES:
        root.signed.add_key(signers[role].public_key, role)
    root.sign(signers["root"])
    data = repo.write("1.root.json", root)
    with open(os.path.join(repo.base, "root.json"), "wb") as f:
        f.write(data)

    targets = Metadata(Targets(expires=later()))
    repo.add_target(targets, args.trusted_root)
    targets_bytes = repo.sign_targets(targets)
    snapshot = Metadata(Snapshot(expires=later()))
    snapshot_bytes = repo.sign_snapshot(snapshot, targets_bytes, 1)
    timestamp = Metadata(Timestamp(expires=later(1)))
    repo.sign_timestamp(timestamp, snapshot_bytes, 1)
    repo.state = {role: 1 for role in ROLES}


def cmd_publish(repo, args):
    targets = repo.bump("targets")
    repo.add_target(targets, args.trusted_root)
    if args.signing_config:
        repo.add_target(targets, args.signing_config, SIGNING_CONFIG)
    targets_bytes = repo.sign_targets(targets)
    snapshot = repo.bump("snapshot")
    snapshot_bytes = repo.sign_snapshot(snapshot, targets_bytes, targets.signed.version)
    timestamp = repo.bump("timestamp")
    repo.sign_timestamp(timestamp, snapshot_bytes, snapshot.signed.version)


def cmd_rotate_root(repo, args):
    old_root_signer = repo.signer("root")
    # Keep the old key files for the record; the new ones take the role names.
    for role in ("root", "timestamp"):
        os.replace(os.path.join(repo.keys, role + ".pem"),
                   os.path.join(repo.keys, f"{role}.v{repo.state['root']}.pem"))
    new_root_signer = repo.new_signer("root")
    new_timestamp_signer = repo.new_signer("timestamp")

    root = repo.load("root")
    for role in ("root", "timestamp"):
        for keyid in list(root.signed.roles[role].keyids):
            root.signed.revoke_key(keyid, role)
    root.signed.add_key(new_root_signer.public_key, "root")
    root.signed.add_key(new_timestamp_signer.public_key, "timestamp")
    root.signed.version += 1
    root.signed.expires = later(365)
    root.signatures.clear()
    root.sign(old_root_signer, append=True)
    root.sign(new_root_signer, append=True)
    repo.write(f"{root.signed.version}.root.json", root)
    repo.state["root"] = root.signed.version

    snapshot = repo.load("snapshot")
    with open(os.path.join(repo.repo, f"{snapshot.signed.version}.snapshot.json"), "rb") as f:
        snapshot_bytes = f.read()
    timestamp = repo.bump("timestamp")
    repo.sign_timestamp(timestamp, snapshot_bytes, snapshot.signed.version)


def cmd_expired_timestamp(repo, args):
    snapshot = repo.load("snapshot")
    with open(os.path.join(repo.repo, f"{snapshot.signed.version}.snapshot.json"), "rb") as f:
        snapshot_bytes = f.read()
    timestamp = repo.bump("timestamp")
    timestamp.signed.expires = later(-1)
    repo.sign_timestamp(timestamp, snapshot_bytes, snapshot.signed.version)


def cmd_old_snapshot(repo, args):
    with open(os.path.join(repo.repo, "1.snapshot.json"), "rb") as f:
        snapshot_bytes = f.read()
    timestamp = repo.bump("timestamp")
    repo.sign_timestamp(timestamp, snapshot_bytes, 1)


def cmd_bad_signature(repo, args):
    # An impostor key signs, and its signature is filed under the real key's id.
    impostor = CryptoSigner.generate_ed25519()

    def forge(md, role):
        keyid = repo.load("root").signed.roles[role].keyids[0]
        md.signatures.clear()
        sig = md.sign(impostor)
        md.signatures.clear()
        md.signatures[keyid] = Signature(keyid, sig.signature)

    targets = repo.load("targets")
    with open(os.path.join(repo.repo, f"{targets.signed.version}.targets.json"), "rb") as f:
        targets_bytes = f.read()
    if args.role == "targets":
        targets = repo.bump("targets")
        forge(targets, "targets")
        targets_bytes = repo.write(f"{targets.signed.version}.targets.json", targets)
    snapshot = repo.bump("snapshot")
    snapshot.signed.meta["targets.json"] = pin(targets.signed.version, targets_bytes)
    if args.role == "snapshot":
        forge(snapshot, "snapshot")
        snapshot_bytes = repo.write(f"{snapshot.signed.version}.snapshot.json", snapshot)
    else:
        snapshot_bytes = repo.sign_snapshot(snapshot, targets_bytes, targets.signed.version)
    timestamp = repo.bump("timestamp")
    if args.role == "timestamp":
        timestamp.signed.snapshot_meta = pin(snapshot.signed.version, snapshot_bytes)
        forge(timestamp, "timestamp")
        repo.write("timestamp.json", timestamp)
    else:
        repo.sign_timestamp(timestamp, snapshot_bytes, snapshot.signed.version)


def cmd_mix_and_match(repo, args):
    # The targets metadata the snapshot pins (never served)...
    pinned = repo.bump("targets")
    pinned_bytes = repo.sign_targets(pinned)
    # ...and another one of the same version, validly signed, served in its place.
    served = repo.load("targets")
    repo.add_target(served, args.trusted_root)
    served.signed.expires = later(29)
    repo.sign_targets(served)
    snapshot = repo.bump("snapshot")
    snapshot_bytes = repo.sign_snapshot(snapshot, pinned_bytes, pinned.signed.version)
    timestamp = repo.bump("timestamp")
    repo.sign_timestamp(timestamp, snapshot_bytes, snapshot.signed.version)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("init", "publish", "mix-and-match"):
        p = sub.add_parser(name)
        p.add_argument("dir")
        p.add_argument("--trusted-root", required=True)
        if name == "publish":
            p.add_argument("--signing-config")
    for name in ("rotate-root", "expired-timestamp", "old-snapshot"):
        sub.add_parser(name).add_argument("dir")
    p = sub.add_parser("bad-signature")
    p.add_argument("dir")
    p.add_argument("--role", choices=["timestamp", "snapshot", "targets"], default="timestamp")
    args = parser.parse_args()

    repo = Repo(args.dir)
    {
        "init": cmd_init,
        "publish": cmd_publish,
        "rotate-root": cmd_rotate_root,
        "expired-timestamp": cmd_expired_timestamp,
        "old-snapshot": cmd_old_snapshot,
        "bad-signature": cmd_bad_signature,
        "mix-and-match": cmd_mix_and_match,
    }[args.command](repo, args)
    repo.save_state()


if __name__ == "__main__":
    main()
