"""Does the inversion's domain weight change what the detectors see? Test AUC on k-step codes.

    python benchmarks/experiments/bench_domain_codes.py ../shared/data/ffhq_stylegan/manifest.csv \
        --prealigned --steps 10 --a-dom 0.1 --against runs/bench/ffhq_stylegan/codes-stylegan-10

Extracts the manifest's codes after `--steps` inversion steps with the domain term weighted
`--a-dom` (into runs/codes/domain-STEPS-ADOM; rerun to resume), then fits the four
classifiers on their train split (the forest and the MLPs with seeds 0-2, LR once: it has
no random start) and prints the mean test ROC AUC, beside the same fits on the `--against`
codes (e.g. the bench's, made with the default weight 0.5).
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from lf_core.classifiers import CLASSIFIERS  # noqa: E402
from lf_core.lab.extract import extract, load_codes  # noqa: E402
from lf_core.lab.projectors import StyleGANProjector  # noqa: E402


def test_aucs(c, kind) -> list[float]:
    tr, te = c.where("train", labelled=True), c.where("test", labelled=True)
    seeds = (0,) if kind == "lr" else (0, 1, 2)
    return [roc_auc_score(te.labels, CLASSIFIERS[kind](seed=s).fit(tr.codes, tr.labels, tr.groups)
                          .predict_proba(te.codes)[:, 1]) for s in seeds]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--a-dom", type=float, default=0.1)
    ap.add_argument("--prealigned", action="store_true")
    ap.add_argument("--against", help="a codes folder to fit the same classifiers on")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = Path(f"runs/codes/domain-{a.steps}-{a.a_dom:g}")
    extract(a.manifest, StyleGANProjector(steps=a.steps, a_dom=a.a_dom), out,
            prealigned=a.prealigned, progress=True)
    for name, folder in [(f"a_dom {a.a_dom:g}", out)] + ([(a.against, a.against)] if a.against else []):
        c = load_codes(folder)
        for kind in ("lr", "rf", "mlp2", "mlp5"):
            aucs = test_aucs(c, kind)
            print(f"{name} {kind}: test AUC {np.mean(aucs):.3f} "
                  f"({', '.join(f'{v:.3f}' for v in aucs)})", flush=True)


if __name__ == "__main__":
    main()
