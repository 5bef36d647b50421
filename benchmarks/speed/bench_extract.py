"""End-to-end extraction throughput (decode + align + project), as `lf extract` runs it.

    python benchmarks/speed/bench_extract.py --faces 320                 # encoder-only W+ codes
    python benchmarks/speed/bench_extract.py --faces 320 --projector pca

Extracts the first N rows of the DFDC test split (a temporary codes folder) and prints
faces per second. Target (issue 4): encoder-only >= 20 faces/s on the 2-core CPU.
"""

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--faces", type=int, default=320)
    ap.add_argument("--projector", choices=["stylegan", "pca"], default="stylegan")
    ap.add_argument("--data", type=Path,
                    default=Path(os.environ.get("LF_DATA", ROOT.parent / "shared" / "data")))
    a = ap.parse_args()

    from lf_core.lab.bench import machine_line
    from lf_core.lab.data import read_manifest, split_of
    from lf_core.lab.extract import extract, load_codes
    from lf_core.lab.projectors import PCAProjector, StyleGANProjector

    items = [it for it in read_manifest(a.data / "dfdc_faces" / "manifest.csv")
             if split_of(it.group) == "test"][:a.faces]
    with tempfile.TemporaryDirectory() as tmp:
        man = Path(tmp) / "m.csv"
        with open(man, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "label", "group"])
            w.writerows([it.path, it.label, it.group] for it in items)
        if a.projector == "pca":  # fitted beforehand: the fit is not what is timed
            proj = PCAProjector(64, size=64)
            proj.fit(extract_crops(items[:128]))
        else:
            proj = StyleGANProjector(steps=0)
        proj.project(extract_crops(items[:2]))  # warm-up
        t = time.perf_counter()
        extract(man, proj, Path(tmp) / "codes", progress=False, log=lambda m: None)
        s = time.perf_counter() - t
        c = load_codes(Path(tmp) / "codes")
    n = len(c) + len(c.failed)
    print(f"{a.projector}: {n} faces in {s:.1f} s = {n / s:.1f} faces/s end to end "
          f"({len(c.failed)} did not align)\n{machine_line()}")


def extract_crops(items):
    import numpy as np

    from lf_core.lab.extract import load_crop

    return np.stack([load_crop(it.path) for it in items])


if __name__ == "__main__":
    main()
