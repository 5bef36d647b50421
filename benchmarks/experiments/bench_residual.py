"""Does the reconstruction residual x - G(w) hold signal that the code w does not?

    python benchmarks/experiments/bench_residual.py runs/bench/dfdc_full

Reads an `lf bench` work folder (its codes-stylegan, encoder-only, and codes-crops, the
aligned faces those codes were made from), reconstructs every face from its code (about 8
min for 12,000 faces on 2 cores; cached per generator in WORK/residual-SHA.npy) and
summarises the residual r = x - G(w) (pixels in [0, 1]) as 448 numbers: the mean |r| on a
16 x 16 grid (grey) and the mean signed r per channel on an 8 x 8 grid. Then logistic
regressions (standardised features; C picked on the val split from 1e-4, 1e-3, 1e-2) on the
residual alone, the code alone and both, and prints their val and test ROC AUC. If both
beat the code alone, the residual holds what the code misses.

For scale, one more row needs no model: the face's own spectrum (the azimuthal mean of
log |FFT| of the grey crop, 128 radii), the classic cue of GAN upsampling. Where it scores
near chance, the resizing and JPEG of the data have wiped that cue out.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from lf_core.artifacts import file_digest  # noqa: E402
from lf_core.lab.bench import machine_line  # noqa: E402
from lf_core.lab.extract import load_codes  # noqa: E402


def residuals(work: Path, codes, crops, batch=32) -> np.ndarray:
    """(N, 448) residual summaries of each face against G(its code)."""
    import torch

    from lf_core import inversion as inv

    model = codes.load_projector().model
    path = work / f"residual-{file_digest(model.path)}.npy"
    if path.exists():
        return np.load(path)
    t, out = time.perf_counter(), []
    for s in range(0, len(codes), batch):
        x = crops[s:s + batch].astype(np.float32) / 255  # (n, 256, 256, 3)
        with torch.no_grad():
            r = x - inv.reconstruct(model, codes.codes[s:s + batch]).astype(np.float32) / 255
        n = len(r)
        grey = np.abs(r).mean(-1).reshape(n, 16, 16, 16, 16).mean((2, 4)).reshape(n, -1)
        signed = r.reshape(n, 8, 32, 8, 32, 3).mean((2, 4)).reshape(n, -1)
        out.append(np.concatenate([grey, signed], 1))
    feats = np.concatenate(out).astype(np.float32)
    print(f"reconstructed {len(feats)} faces in {time.perf_counter() - t:.0f} s")
    np.save(path, feats)
    return feats


def spectrum(crops: np.ndarray) -> np.ndarray:
    """(N, 128) azimuthal mean of log |FFT| of each grey (256, 256) crop, per integer radius."""
    yy, xx = np.mgrid[-128:128, -128:128]
    rad = np.hypot(yy, xx).astype(int).clip(0, 127).ravel()  # (65536,)
    count = np.bincount(rad, minlength=128)
    out = []
    for c in crops:
        g = c.astype(np.float32).mean(-1)
        f = np.log(np.abs(np.fft.fftshift(np.fft.fft2(g - g.mean()))) + 1e-6).ravel()
        out.append(np.bincount(rad, weights=f, minlength=128) / count)
    return np.stack(out).astype(np.float32)


def fit_lr(X, y, split):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    X = StandardScaler().fit(X[split == "train"]).transform(X).astype(np.float32)
    best = None
    for c in (1e-4, 1e-3, 1e-2):
        m = LogisticRegression(C=c, max_iter=300).fit(X[split == "train"], y[split == "train"])
        auc = {s: roc_auc_score(y[split == s], m.decision_function(X[split == s]))
               for s in ("val", "test")}
        if best is None or auc["val"] > best[1]["val"]:
            best = (c, auc)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("work", type=Path, help="an lf bench work folder (e.g. runs/bench/dfdc_full)")
    a = ap.parse_args(argv)
    print(machine_line())
    codes = load_codes(a.work / "codes-stylegan").where(labelled=True)
    crops = load_codes(a.work / "codes-crops")
    pos = {p: i for i, p in enumerate(crops.paths)}
    keep = np.array([p in pos for p in codes.paths])  # faces both extractions aligned
    codes = codes.take(keep)
    x = crops.codes[[pos[p] for p in codes.paths]]
    r = residuals(a.work, codes, x)
    w = codes.codes.reshape(len(codes), -1)
    rows = (("residual", r), ("code", w), ("code + residual", np.concatenate([w, r], 1)),
            ("spectrum", spectrum(x)))
    for name, X in rows:
        c, auc = fit_lr(X, codes.labels, codes.splits)
        print(f"{name:16s} LR (C={c:g}): val AUC {auc['val']:.3f}, test AUC {auc['test']:.3f}")


if __name__ == "__main__":
    main()
