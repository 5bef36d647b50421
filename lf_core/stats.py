"""Confidence intervals: one function per method.

    mean_ci95(v)            -> (mean, half-width): normal approximation, 1.96 standard errors
    bootstrap_auc(y, P, g)  -> (B, K) ROC AUCs of K score vectors on B resamples of groups
    percentile_ci95(v)      -> [2.5th, 97.5th] percentile of bootstrap values (None if empty)
"""

from __future__ import annotations

import numpy as np


def mean_ci95(v) -> tuple[float, float]:
    """Mean and the half-width of its normal-approximation 95% confidence interval."""
    v = np.asarray(v, np.float64)
    half = 1.96 * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0.0
    return float(v.mean()), float(half)


def bootstrap_auc(labels, probs, groups, resamples: int = 2000, seed: int = 0) -> np.ndarray:
    """ROC AUC of each score vector in `probs` (K, N) on `resamples` resamples of whole
    groups (source videos, drawn with replacement; all K vectors on the same resample, so
    differences are paired): (B, K), B <= resamples (one-class resamples are skipped)."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(labels).astype(int)
    P = np.atleast_2d(np.asarray(probs, np.float64))  # (K, N)
    _, gi = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    members = [np.flatnonzero(gi == i) for i in range(gi.max() + 1)] if len(gi) else []
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(resamples if members else 0):
        idx = np.concatenate([members[i] for i in rng.integers(0, len(members), len(members))])
        if 0 < y[idx].sum() < len(idx):
            out.append([roc_auc_score(y[idx], q[idx]) for q in P])
    return np.array(out, np.float64).reshape(-1, len(P))


def percentile_ci95(v) -> list[float] | None:
    """2.5 and 97.5 percentiles of bootstrap values; None without any."""
    return [float(x) for x in np.percentile(v, [2.5, 97.5])] if len(v) else None


__all__ = ["bootstrap_auc", "mean_ci95", "percentile_ci95"]
