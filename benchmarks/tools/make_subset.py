"""A group-disjoint DFDC subset manifest (absolute paths), for quick detector runs.

    python benchmarks/tools/make_subset.py --train 700 --val 100 --test 300 -o runs/det/dfdc_subset.csv

Samples source videos (groups) of each split of lf_core.lab.data.split_of with
random.Random(seed) over the sorted group names, and lists every crop of each group
(a real crop and its deepfake).
"""

import argparse
import csv
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lf_core.lab.data import data_dir, split_of  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=700)
    ap.add_argument("--val", type=int, default=100)
    ap.add_argument("--test", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--output", default="runs/det/dfdc_subset.csv")
    a = ap.parse_args()
    root = data_dir() / "dfdc_faces"
    groups = {}
    for r in csv.DictReader(open(root / "manifest.csv")):
        groups.setdefault(r["group"], []).append(r)
    rng = random.Random(a.seed)
    pick = []
    for split, n in (("train", a.train), ("val", a.val), ("test", a.test)):
        pick += rng.sample(sorted(g for g in groups if split_of(g) == split), n)
    out = Path(a.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "label", "group"])
        w.writeheader()
        for g in sorted(pick):
            for r in groups[g]:
                w.writerow({"path": str(root / r["path"]), "label": r["label"], "group": g})
    print(f"{out}: {sum(len(groups[g]) for g in pick)} crops of {len(pick)} source videos")


if __name__ == "__main__":
    main()
