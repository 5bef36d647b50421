"""Does the latent code add to a pixel CNN? Late fusion of a latent detector and a CNN.

    python benchmarks/experiments/bench_fusion.py runs/bench/dfdc_full

Reads an `lf bench` work folder (its codes-stylegan, codes-crops and detectors/), scores
the val and test faces with the CNN (default Xception) and each latent classifier, and
prints ROC AUC alone and fused: the mean of the two probabilities, and the mean of their
ranks. Faces are matched by path (both extractions list the same faces that aligned).
If the fused AUC beats the CNN alone, the latent code carries what the CNN misses.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from lf_core.classifiers import load_classifier  # noqa: E402
from lf_core.lab.baselines import load_baseline  # noqa: E402
from lf_core.lab.extract import load_codes  # noqa: E402


def _rank(p):
    return np.argsort(np.argsort(p)) / len(p)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("work", help="an lf bench work folder, e.g. runs/bench/dfdc_full")
    ap.add_argument("--cnn", default="xception")
    ap.add_argument("--latent", default="rf,mlp2,lr", help="latent classifiers to fuse")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    w = Path(args.work)
    crops, codes = load_codes(w / "codes-crops"), load_codes(w / "codes-stylegan")
    cnn = load_baseline(w / "detectors" / f"cnn-{args.cnn}.safetensors")
    lat = {k: load_classifier(w / "detectors" / f"stylegan-{k}.safetensors") for k in args.latent.split(",")}
    print(" ".join(sys.argv))
    for split in ("val", "test"):
        a, b = crops.where(split, labelled=True), codes.where(split, labelled=True)
        ia = {p: i for i, p in enumerate(a.paths)}
        both = [(ia[p], j) for j, p in enumerate(b.paths) if p in ia]
        ia_, ib_ = np.array([i for i, _ in both]), np.array([j for _, j in both])
        y = a.labels[ia_]
        pc = np.concatenate([cnn.predict_proba(a.codes[ia_[i:i + 64]])[:, 1]
                             for i in range(0, len(ia_), 64)])
        print(f"{split}: {len(y)} faces, {args.cnn} alone AUC {roc_auc_score(y, pc):.3f}")
        for k, det in lat.items():
            pl = det.predict_proba(b.codes[ib_])[:, 1]
            print(f"  + {k:5s} alone {roc_auc_score(y, pl):.3f}   mean of probabilities "
                  f"{roc_auc_score(y, (pl + pc) / 2):.3f}   mean of ranks "
                  f"{roc_auc_score(y, _rank(pl) + _rank(pc)):.3f}   correlation "
                  f"{np.corrcoef(pl, pc)[0, 1]:.2f}")


if __name__ == "__main__":
    main()
