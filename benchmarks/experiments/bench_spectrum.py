"""A pixel-statistics reference: the azimuthal power spectrum of each face, classified by LR.

    python benchmarks/experiments/bench_spectrum.py ../shared/data/ffhq_stylegan/manifest.csv
    python benchmarks/experiments/bench_spectrum.py ../shared/data/dfdc_faces/manifest.csv

GAN up-sampling leaves peaks in the high frequencies of its images (Durall et al., "Watch
your up-convolution", CVPR 2020), and a linear model on the 1-D azimuthal average of the
log spectrum finds them from a few hundred faces when the images are not resized or
compressed. It needs no model and no training beyond LR, so it tells how much of a
data set's signal is plain frequency content: where it is near chance, the fakes do not
differ from the real faces in that way at this size and JPEG quality. Same split and the
same classifier as the bench's latent LR rows: `lf_core.classifiers.LogReg` fitted on the
train split (it standardises and picks C by group folds), the test split scored once.
No alignment: the whole image as stored, in grey.
"""

from __future__ import annotations

import argparse
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from lf_core.classifiers import LogReg, decide  # noqa: E402
from lf_core.lab.data import read_manifest, split_of  # noqa: E402


@lru_cache
def radii(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(H*W,) integer distance of each pixel from the centre of a shifted FFT, and the
    number of pixels at each distance."""
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(yy - h // 2, xx - w // 2).astype(int).ravel()
    return r, np.bincount(r)


def spectrum(path: Path) -> np.ndarray:
    """(S/2,) mean log-magnitude per integer radius of the centred 2-D FFT, minus its mean."""
    g = np.asarray(Image.open(path).convert("L"), np.float32)  # (H, W)
    h, w = g.shape
    mag = np.log(np.abs(np.fft.fftshift(np.fft.fft2(g))) + 1e-6)
    r, count = radii(h, w)
    prof = np.bincount(r, mag.ravel()) / count
    prof = prof[: min(h, w) // 2]
    return prof - prof.mean()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest")
    args = ap.parse_args()
    items = [it for it in read_manifest(args.manifest) if it.label >= 0]
    X = np.array([spectrum(it.path) for it in items])  # (N, S/2); one image size per set
    y = np.array([it.label for it in items])
    groups = np.array([it.group for it in items])
    part = np.array([split_of(g) for g in groups])
    tr, te = part == "train", part == "test"
    lr = LogReg().fit(X[tr], y[tr], groups[tr])
    p = lr.predict_proba(X[te])[:, 1]
    cv = lr.train_info_["cv_auc"]
    print(" ".join(sys.argv))
    print(f"{len(items)} faces ({tr.sum()} train, {te.sum()} test), {X.shape[1]} radii; "
          f"C {lr.train_info_['C']:g} (group-fold AUC {max(cv.values()):.3f})")
    print(f"test: AUC {roc_auc_score(y[te], p):.3f}, "
          f"balanced accuracy {balanced_accuracy_score(y[te], decide(p, 0.5, lr.train_fake_share_)):.3f} "
          f"(decision at equal priors)")


if __name__ == "__main__":
    main()
