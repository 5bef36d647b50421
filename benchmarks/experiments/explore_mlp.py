"""Which light classifier of the W+ codes does best on the validation split?

    python benchmarks/experiments/explore_mlp.py runs/codes/dfdc-mirror                        # MLP-2 recipes, two views
    python benchmarks/experiments/explore_mlp.py runs/bench/dfdc_full/codes-stylegan --others  # + SVM, boosted trees
    python benchmarks/experiments/explore_mlp.py runs/bench/dfdc_full/codes-stylegan --variations  # around --regularise

Fits on the `train` split of a codes folder (lf extract; with --mirror, on both views of
each face) and prints the ROC AUC on the `val` split, the split the default detector was
chosen on (the test split stays untouched). MLP-2 recipes: the paper's (SGD lr 5e-4,
early stopping after 3 epochs without progress), and `lf train --regularise` (dropout,
AdamW) with early stopping after 3 and after 8 epochs. --others adds an RBF support-vector
machine (C = 1) and histogram gradient-boosted trees on the standardised codes (one view).
A two-view detector is scored on the mean logit of a face's two views, as lf evaluate does.
About 2 min per MLP on 8,281 faces (one view), 5-8 min on both views; the SVM 6 min.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from lf_core.classifiers import MLP2, mean_logit  # noqa: E402
from lf_core.lab.bench import machine_line  # noqa: E402
from lf_core.lab.extract import load_codes  # noqa: E402

RECIPES = {
    "paper": {},
    "regularised, patience 3": {**MLP2.REGULARISED, "patience": 3},
    "regularised, patience 8 (--regularise)": MLP2.REGULARISED,
}

VARIATIONS = {  # --variations: around --regularise, one change each
    "input dropout 0.5": {**MLP2.REGULARISED, "dropout": (0.5, 0.5)},
    "lr 3e-4": {**MLP2.REGULARISED, "lr": 3e-4},
    "weight decay 0.1": {**MLP2.REGULARISED, "weight_decay": 0.1},
    "no input dropout": {**MLP2.REGULARISED, "dropout": (0.0, 0.5)},
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("codes", help="codes folder (lf extract), W+ codes")
    ap.add_argument("--others", action="store_true", help="also an SVM and boosted trees")
    ap.add_argument("--variations", action="store_true",
                    help="also four variations of the --regularise recipe")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    c = load_codes(a.codes)
    tr, va = c.where("train", labelled=True), c.where("val", labelled=True)
    two = tr.mirror is not None
    print(machine_line())
    print(f"{len(tr)} train faces{' and their mirrors' if two else ''}, {len(va)} val faces")
    X, y, g = tr.codes, tr.labels.astype(int), tr.groups
    if two:
        X, y, g = np.concatenate([X, tr.mirror]), np.concatenate([y, y]), np.concatenate([g, g])

    for name, kw in {**RECIPES, **(VARIATIONS if a.variations else {})}.items():
        t0 = time.perf_counter()
        m = MLP2(seed=a.seed, **kw).fit(X, y, groups=g)
        p = m.predict_proba(va.codes)[:, 1]
        line = f"MLP-2 {name}: val AUC {roc_auc_score(va.labels, p):.4f} (one view)"
        if two:
            p2 = mean_logit(p, m.predict_proba(va.mirror)[:, 1])
            line += f", {roc_auc_score(va.labels, p2):.4f} (both views)"
        info = m.train_info_
        print(f"{line}; epochs {info['epochs']}, best {info['best_epoch']}; "
              f"{time.perf_counter() - t0:.0f} s", flush=True)

    if a.others:
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.svm import SVC

        Xt = tr.codes.reshape(len(tr), -1).astype(np.float32)
        Xv = va.codes.reshape(len(va), -1).astype(np.float32)
        mu, sd = Xt.mean(0), Xt.std(0) + 1e-6
        Zt, Zv = (Xt - mu) / sd, (Xv - mu) / sd
        yt = tr.labels.astype(int)
        for name, make in (
            ("RBF SVM (C = 1)", lambda: SVC(C=1.0, kernel="rbf", gamma="scale", cache_size=4000)),
            ("boosted trees", lambda: HistGradientBoostingClassifier(
                max_iter=400, early_stopping=True, validation_fraction=0.1, random_state=a.seed)),
        ):
            t0 = time.perf_counter()
            f = make().fit(Zt, yt)
            print(f"{name}: val AUC {roc_auc_score(va.labels, f.decision_function(Zv)):.4f} "
                  f"(one view); {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
