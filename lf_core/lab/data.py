"""Manifests and the project's fixed, group-disjoint splits.

A manifest is a CSV with `path,label[,group]` (as in ../shared/data); paths are relative
to the manifest's folder. The split of a DFDC source video (group) is a pure function of
its name, so every command (generator training, extraction, detector training) agrees on
it without a file: the generator never trains on a face of a group the detector is
tested on.
"""

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPLITS = (("train", 0.7), ("val", 0.1), ("test", 0.2))


def data_dir() -> Path:
    """../shared/data beside the repository, or $LF_DATA."""
    return Path(os.environ.get("LF_DATA", ROOT.parent / "shared" / "data"))


def split_of(key: str) -> str:
    """'train' | 'val' | 'test' for a group name (or an identity), stable across runs."""
    u = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 2**32
    acc = 0.0
    for name, frac in SPLITS:
        acc += frac
        if u < acc:
            return name
    return SPLITS[-1][0]


@dataclass
class Item:
    path: Path
    label: int  # 0 real, 1 fake, -1 unknown
    group: str


LABELS = {"real": 0, "fake": 1, "0": 0, "1": 1}


def read_manifest(manifest) -> list[Item]:
    """Read a `path,label[,group]` CSV. Without a group column, each path is its own group.
    Paths must stay inside the manifest's folder or the data folder, and be listed once
    (lf_core.untrusted.manifest_rows): LFError otherwise."""
    from lf_core.untrusted import manifest_rows  # paths confined, duplicates refused

    items = []
    for path, row in manifest_rows(manifest, data_dir()):
        label = LABELS.get(str(row.get("label", "")).strip().lower(), -1)
        group = row.get("group") or row.get("identity") or row["path"]
        items.append(Item(path, label, group))
    return items
