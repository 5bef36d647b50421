"""Benchmark the four latent classifiers on synthetic W+ codes.

    python benchmarks/speed/bench_classify.py            # N=12,000 x 14 x 512
    python benchmarks/speed/bench_classify.py --n 3000 --rf-trees 150
    # real codes (train split -> fit, val split -> accuracy and AUC), forest knobs:
    python benchmarks/speed/bench_classify.py --only rf \
        --codes runs/bench/dfdc_full/codes-stylegan --rf-max-features 28

Synthetic data: every code is N(0, 1); fakes are shifted by --shift in every dimension
of W+ rows 8..11 (a weak per-feature signal spread over 2,048 dims, so no single feature
separates the classes and trees grow deep: a pessimistic case for the forest's time).

Prints, per classifier: fit time, held-out accuracy, predict time per face (one face per
call, and in a batch of 1,000), file size and load time. With --rf-trees below 1500 the
forest's fit time is also scaled linearly to 1500 trees (trees are independent, so fit
time is proportional to their number); that column is marked as extrapolated.
With --codes the data are real codes from `lf extract`: fitted on the train split,
scored on the val split (held-out accuracy and ROC AUC).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from lf_core.classifiers import CLASSIFIERS, load_classifier  # noqa: E402
from lf_core.cli import max_features  # noqa: E402  (lf train's parser of the same option)
from lf_core.lab.bench import machine_line  # noqa: E402


def make_codes(n: int, seed: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """(n, 14, 512) float32 codes, labels (n,) alternating 0/1; fakes shifted in rows 8..11."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype(np.int64)
    X = rng.standard_normal((n, 14, 512), dtype=np.float32)
    X[y == 1, 8:12, :] += shift
    return X, y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=12_000, help="training codes (default 12000)")
    ap.add_argument("--n-test", type=int, default=1_000, help="held-out codes (default 1000)")
    ap.add_argument("--shift", type=float, default=0.05, help="fake shift per dim of rows 8..11")
    ap.add_argument("--rf-trees", type=int, default=1500, help="trees to actually fit (time scaled to 1500)")
    ap.add_argument("--rf-max-samples", type=float, default=None, help="RandomForest max_samples (fraction)")
    ap.add_argument("--rf-max-features", default="sqrt/2", type=max_features,
                    help="RandomForest max_features: sqrt/2 (default, lf train's), sqrt, log2 or a count")
    ap.add_argument("--codes", help="a codes folder (lf extract): real codes instead of synthetic")
    ap.add_argument("--rf-jobs", type=int, default=-1, help="RandomForest n_jobs (default -1)")
    ap.add_argument("--mlp-max-epochs", type=int, default=None, help="cap MLP epochs (default: the model's)")
    ap.add_argument("--only", nargs="+", choices=list(CLASSIFIERS), default=list(CLASSIFIERS))
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="torch threads")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import sklearn.ensemble  # noqa: F401,E401  one-time imports, kept out of the timings

    if args.codes:
        from lf_core.lab.extract import load_codes

        c = load_codes(args.codes)
        tr, va = c.where("train", labelled=True), c.where("val", labelled=True)
        X, y, Xt, yt = tr.codes.astype(np.float32), tr.labels, va.codes.astype(np.float32), va.labels
    else:
        X, y = make_codes(args.n, args.seed, args.shift)
        Xt, yt = make_codes(args.n_test, args.seed + 1, args.shift)
    print(" ".join(sys.argv))
    print(f"train {X.shape} ({X.nbytes / 2**20:.0f} MiB), test {Xt.shape}, shift {args.shift}, "
          f"{machine_line()}")

    rows, total_fit, total_cpu = [], 0.0, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.only:
            extra = {}
            if kind == "rf":
                extra = {"n_trees": args.rf_trees, "n_jobs": args.rf_jobs, "max_samples": args.rf_max_samples,
                         "max_features": args.rf_max_features}
            elif kind.startswith("mlp") and args.mlp_max_epochs:
                extra = {"max_epochs": args.mlp_max_epochs}
            model = CLASSIFIERS[kind](seed=args.seed, **extra)
            t0, c0 = time.perf_counter(), time.process_time()
            model.fit(X, y)
            fit_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
            scale = 1500 / args.rf_trees if kind == "rf" else 1.0
            total_fit += fit_s * scale
            total_cpu += cpu_s * scale

            acc = float((model.predict(Xt) == yt).mean())
            auc = roc_auc_score(yt, model.predict_proba(Xt)[:, 1])
            t0 = time.perf_counter()
            for i in range(20):
                model.predict_proba(Xt[i : i + 1])
            one_ms = (time.perf_counter() - t0) / 20 * 1e3
            batch = Xt[:1000]
            t0 = time.perf_counter()
            proba = model.predict_proba(batch)
            batch_ms = (time.perf_counter() - t0) / len(batch) * 1e3

            path = model.save(Path(tmp) / f"{kind}.safetensors")
            size_mb = path.stat().st_size / 2**20
            t0 = time.perf_counter()
            loaded = load_classifier(path)
            load_s = time.perf_counter() - t0
            same = np.array_equal(loaded.predict_proba(batch), proba)
            info = {k: v for k, v in model.train_info_.items() if k in ("epochs", "best_epoch", "n_iter", "n_nodes")}
            if "epochs" in info:
                info["s/epoch"] = round(fit_s / info["epochs"], 1)
                info["val_loss"] = model.train_info_["val_loss_history"]
            rows.append((kind, fit_s, fit_s * scale, cpu_s * scale, acc, auc, one_ms, batch_ms, size_mb, load_s, same, info))
            print(f"  done {kind}: fit {fit_s:.1f}s", flush=True)
            del model, loaded

    print(f"\nN = {len(X)} training codes of {'x'.join(map(str, X.shape[1:]))}; held-out accuracy "
          f"and AUC on {len(Xt)}" + (f" (val split of {args.codes})" if args.codes else ""))
    head = f"{'model':6} {'fit s':>8} {'fit s@1500t':>11} {'cpu s@1500t':>11} {'acc':>6} {'AUC':>6} {'ms/face 1':>9} {'ms/face b':>9} " \
           f"{'file MiB':>8} {'load s':>6} {'same':>5}  info"
    print(head)
    print("-" * len(head))
    for kind, fit_s, scaled, cpu, acc, auc, one_ms, batch_ms, size_mb, load_s, same, info in rows:
        mark = "*" if kind == "rf" and args.rf_trees != 1500 else " "
        print(f"{kind:6} {fit_s:8.1f} {scaled:10.1f}{mark} {cpu:10.1f}{mark} {acc:6.3f} {auc:6.3f} {one_ms:9.2f} {batch_ms:9.3f} "
              f"{size_mb:8.1f} {load_s:6.2f} {str(same):>5}  {info}")
    print(f"\ntotal fit time (forest scaled to 1500 trees): {total_fit:.0f} s = {total_fit / 60:.1f} min"
          + (f"  (* forest fitted with {args.rf_trees} trees, time x{1500 / args.rf_trees:.1f})"
             if args.rf_trees != 1500 else ""))
    print(f"total CPU time (all threads): {total_cpu:.0f} s; on 2 free cores the wall time is about "
          f"that / (threads actually used): the forest uses --rf-jobs, torch --threads")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (> 2 means the cores were shared)")
    print("ms/face 1: one face per predict_proba call; ms/face b: per face in a batch of up to 1000")


if __name__ == "__main__":
    main()
