"""Two detectors (or two sets of seeds) side by side on the same test faces, beyond chance.

    lf evaluate CODES --detector latent.safetensors --split test --json > a.json
    lf evaluate CROPS --detector cnn-s0.safetensors --split test --json > b0.json   # ... b1, b2
    python benchmarks/tools/bench_compare.py --a a.json --b b0.json,b1.json,b2.json --bootstrap 2000

Reads the `predictions` of `lf evaluate --json` files (latent classifiers or CNN baselines,
any projector) and keeps the faces every file scored (matched by path; a face that did not
align in one extraction is left out). For each side: every file's test AUC, their mean and
standard deviation (the seed spread when the files are seeds of one recipe), and the
side's ensemble, the mean of the files' logits. Then a paired bootstrap over whole groups
(source videos; all detectors on the same resample): the AUC difference a - b with its 95%
interval, for the ensembles and for a against each b file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from lf_core.stats import bootstrap_auc, percentile_ci95  # noqa: E402


def load(path: str) -> tuple[str, dict]:
    res = json.loads(Path(path).read_text())
    preds = {r["path"]: (r["label"], r["group"], r["prob_fake"])
             for r in res["predictions"] if r["label"] >= 0}
    return f"{Path(path).stem} ({res['classifier']})", preds


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="lf evaluate --json files, comma-separated")
    ap.add_argument("--b", required=True, help="the other side's files, comma-separated")
    ap.add_argument("--bootstrap", type=int, default=2000, help="resamples of the groups")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    sides = {s: [load(f) for f in getattr(args, s).split(",") if f] for s in ("a", "b")}
    every = [p for files in sides.values() for _, p in files]
    paths = sorted(set.intersection(*(set(p) for p in every)))
    y = np.array([every[0][k][0] for k in paths])
    g = np.array([every[0][k][1] for k in paths])
    print(" ".join(sys.argv))
    print(f"{len(paths)} test faces scored by all {len(every)} files, {len(np.unique(g))} groups")

    scores, names = {}, {}
    for s, files in sides.items():
        P = np.array([[p[k][2] for k in paths] for _, p in files])  # (files, faces)
        aucs = [roc_auc_score(y, q) for q in P]
        for (name, _), auc in zip(files, aucs):
            print(f"  {s}: {name}: AUC {auc:.3f}")
        if len(files) > 1:
            print(f"  {s}: {len(files)} files: mean AUC {np.mean(aucs):.3f}, sd {np.std(aucs, ddof=1):.3f}")
        scores[s] = logit(P).mean(0)  # the side's ensemble (one file: itself)
        names[s] = files[0][0] if len(files) == 1 else f"mean of {len(files)} logits"
        scores.update({f"{s}{i}": q for i, q in enumerate(P)})
        names.update({f"{s}{i}": n for i, (n, _) in enumerate(files)})

    pairs = [("a", "b")] + ([("a", f"b{i}") for i in range(len(sides["b"]))] if len(sides["b"]) > 1 else [])
    keys = sorted({k for pair in pairs for k in pair})
    B = bootstrap_auc(y, [scores[k] for k in keys], g, args.bootstrap, args.seed)
    col = {k: i for i, k in enumerate(keys)}
    def auc_ci(k):
        lo, hi = percentile_ci95(B[:, col[k]])
        return f"{names[k]} {roc_auc_score(y, scores[k]):.3f} [{lo:.3f}, {hi:.3f}]"

    for ka, kb in pairs:
        d = B[:, col[ka]] - B[:, col[kb]]
        lo, hi = percentile_ci95(d)
        diff = roc_auc_score(y, scores[ka]) - roc_auc_score(y, scores[kb])
        print(f"{auc_ci(ka)} vs {auc_ci(kb)}: difference {diff:+.3f} [{lo:+.3f}, {hi:+.3f}] "
              f"(95%, {len(B)} resamples), a not better in {(d <= 0).mean():.1%}")


if __name__ == "__main__":
    main()
