"""Light classifiers over W+ latent codes (N, 14, 512): real (0) vs fake (1).

The paper's four models, behind one scikit-learn-like interface:

    RandomForest  1500 trees, gini, max_features="sqrt/2" (fit with sklearn, predict in numpy)
    LogReg        L2 logistic regression, C by group CV     (fit with sklearn, predict in numpy)
    MLP2          hidden 512                                (torch)
    MLP5          hidden 2048-512-512-512                   (torch)

    clf = MLP2(channels=range(8, 12), seed=0).fit(X_train, y_train)
    p = clf.predict_proba(X_test)            # (N, 2): [p_real, p_fake]
    y_hat = clf.predict(X_test, prior_fake=0.1)
    clf.save("mlp2.safetensors"); clf = load_classifier("mlp2.safetensors")

Features are the selected W+ rows, flattened and standardised with the training
mean/std (stored with the model). A model file is one `.safetensors` file: arrays as
tensors plus a JSON header; nothing in it is executed on load (no pickle), so a loaded
random forest needs neither pickle nor sklearn.

Decision with a prior (the paper): call a code fake when the likelihood ratio
p(x|fake) / p(x|real) >= pi_real / pi_fake, where pi_fake is the share of fakes expected
where the model is used. A classifier outputs a posterior under its *training* class
balance, so the ratio is the posterior odds divided by the training prior odds; see
`likelihood_ratio` and `decide`.
"""

from __future__ import annotations

import inspect
import math
import time
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from .artifacts import read_lf_file, write_lf_file
from .decision import check_open_unit, decide, likelihood_ratio, prior_threshold
from .errors import InvalidValueError, LFError, WeightsError

FORMAT = "latentforensics.classifier"
VERSION = 1
CLASS_NAMES = ("real", "fake")  # label 0, label 1
_META_KEY = "lf_classifier"


ClassifierInputError = InvalidValueError  # training or prediction input it cannot use


class NotFittedError(LFError, RuntimeError):
    """The classifier was used before `fit` (or `load`)."""


# --------------------------------------------------------------------------- base class


class LatentClassifier:
    """Base: channel selection, standardisation, labels, decision rule, safe save/load.

    channels: W+ rows to use, e.g. `range(8, 12)` or `8` (None = all rows). Only for
    3-D input X (N, rows, 512); with 2-D input X (N, D) it must be None.
    seed: same seed + same data (+ same torch thread count) -> same predictions.
    Subclasses implement `_fit`, `_predict_fake`, `_arrays`, `_set_arrays`.
    """

    KIND: ClassVar[str] = ""

    def __init__(self, channels=None, seed: int = 0):
        self.channels = _normalise_channels(channels)
        self.seed = int(seed)
        self._reset()

    def _reset(self) -> None:
        self.input_shape_: tuple[int, ...] | None = None  # X.shape[1:] seen by fit
        self.mean_: np.ndarray | None = None  # (D,) float32
        self.std_: np.ndarray | None = None  # (D,) float32
        self.train_fake_share_: float | None = None
        self.train_info_: dict[str, Any] = {}
        self.metrics: dict[str, Any] | None = None

    # -- sklearn-style parameters
    def get_params(self) -> dict[str, Any]:
        names = [n for n in inspect.signature(type(self).__init__).parameters if n != "self"]
        return {n: _jsonable(getattr(self, n)) for n in names}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    @property
    def is_fitted(self) -> bool:
        return self.mean_ is not None

    @property
    def n_features(self) -> int:
        self._check_fitted()
        return int(self.mean_.shape[0])

    # -- public API
    def fit(self, X, y, groups=None) -> LatentClassifier:
        """Train on codes X (N, 14, 512) or (N, D) with labels y (N,) in {0 real, 1 fake}.

        groups (N,), optional: e.g. source-video ids; models with an internal held-out
        split (the MLPs' early stopping, LogReg's folds for C) keep each group on one side
        of it. The forest ignores them.
        """
        self._reset()
        X = self._select(_as_codes(X), fitting=True)  # (N, D) float32
        y = as_labels(y, len(X))
        if groups is not None:
            groups = np.asarray(groups)
            if groups.shape != (len(X),):
                raise ClassifierInputError(f"groups must have shape ({len(X)},), got {groups.shape}")
        self.mean_, self.std_ = _mean_std(X)
        Z = self._standardise(X)
        del X
        self.train_fake_share_ = float(y.mean())
        t0 = time.perf_counter()
        try:
            info = self._fit(Z, y, groups) or {}
        except BaseException:
            self._reset()  # never leave a half-fitted model behind
            raise
        self.train_info_ = {"n_train": int(len(y)), "fit_seconds": round(time.perf_counter() - t0, 3), **info}
        return self

    def features(self, X) -> np.ndarray:
        """Selected, flattened, standardised features (N, D) float32, as the model sees them."""
        self._check_fitted()
        return self._standardise(self._select(_as_codes(X), fitting=False))

    def predict_proba(self, X) -> np.ndarray:
        """(N, 2) float64, columns [p_real, p_fake] (posterior under the training balance)."""
        p = np.asarray(self._predict_fake(self.features(X)), dtype=np.float64)  # (N,)
        return np.stack([1.0 - p, p], axis=1)

    def likelihood_ratio(self, X) -> np.ndarray:
        """(N,) p(x|fake) / p(x|real)."""
        return likelihood_ratio(self.predict_proba(X)[:, 1], self.train_fake_share_)

    def predict(self, X, prior_fake: float = 0.5) -> np.ndarray:
        """(N,) int, 1 = fake, by `decide` with the given expected share of fakes."""
        check_open_unit("prior_fake", prior_fake)
        p = self.predict_proba(X)[:, 1]
        return decide(p, prior_fake, self.train_fake_share_).astype(np.int64).reshape(-1)

    def save(self, path, metrics: dict | None = None, half: bool = False,
             extra: dict[str, np.ndarray] | None = None) -> Path:
        """Write one .safetensors file (arrays + JSON header). Returns the path.

        half: store the weight matrices of an MLP as float16 (half the file; loaded back
        as float32, probabilities move by ~1e-4). Other kinds are saved unchanged.
        extra: more float32 arrays kept beside the model's (a detector's domain record;
        `load` ignores them)."""
        self._check_fitted()
        if metrics is not None:
            self.metrics = _jsonable(dict(metrics))
        arrays = {"mean": self.mean_, "std": self.std_, **self._arrays()}
        half = half and any(self._halvable(k) for k in arrays)
        if half:
            arrays = {k: v.astype(np.float16) if self._halvable(k) else v for k, v in arrays.items()}
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "kind": self.KIND,
            "params": self.get_params(),
            "channels": self.channels,
            "input_shape": list(self.input_shape_),
            "n_features": self.n_features,
            "mean_shape": list(self.mean_.shape),
            "std_shape": list(self.std_.shape),
            "train_fake_share": self.train_fake_share_,
            "float16_weights": half,
            "class_names": list(CLASS_NAMES),
            "train_info": _jsonable(self.train_info_),
            "metrics": self.metrics,
        }
        arrays = {k: np.ascontiguousarray(v) for k, v in {**arrays, **(extra or {})}.items()}
        return write_lf_file(path, arrays, _META_KEY, meta)  # atomic: never half a model file

    @classmethod
    def load(cls, path) -> LatentClassifier:
        """Load a file written by `save`. On the base class, any kind; else that kind only."""
        meta, arrays = _read_file(path)
        kind = meta.get("kind")
        if kind not in CLASSIFIERS:
            raise WeightsError(f"{path}: unknown classifier kind {kind!r}; known: {sorted(CLASSIFIERS)}")
        target = CLASSIFIERS[kind]
        if cls is not LatentClassifier and target is not cls:
            raise WeightsError(
                f"{path} holds a {target.__name__} ({kind!r}), not a {cls.__name__}; use load_classifier()"
            )
        try:
            model = target(**meta["params"])
            model.input_shape_ = tuple(int(s) for s in meta["input_shape"])
            model.train_fake_share_ = check_open_unit("train_fake_share", meta["train_fake_share"])
            model.train_info_ = dict(meta.get("train_info") or {})
            model.metrics = meta.get("metrics")
            mean, std = arrays.pop("mean"), arrays.pop("std")
            d = int(meta["n_features"])
            if mean.shape != (d,) or std.shape != (d,) or d != model._expected_features():
                raise ValueError(f"feature mean/std shapes {mean.shape}/{std.shape} do not match {d} features")
            if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
                raise ValueError("feature mean/std are not finite and positive")
            model.mean_, model.std_ = mean.astype(np.float32), std.astype(np.float32)
            model._set_arrays(arrays)
        except WeightsError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise WeightsError(f"{path}: damaged or inconsistent {kind!r} classifier file ({err})") from err
        return model

    # -- helpers
    def _check_fitted(self) -> None:
        if self.mean_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit() or load a saved model first")

    def _expected_features(self) -> int:
        shape = self.input_shape_
        if len(shape) == 1:
            return shape[0]
        rows = len(self.channels) if self.channels is not None else shape[0]
        return rows * int(np.prod(shape[1:]))

    def _select(self, X: np.ndarray, fitting: bool) -> np.ndarray:
        """(N, rows, 512) or (N, D) -> (N, D) float32 of the selected channels."""
        if fitting:
            if X.ndim == 2 and self.channels is not None:
                raise ClassifierInputError(
                    "channels can only be chosen for 3-D codes (N, 14, 512); got 2-D X, use channels=None"
                )
            if self.channels is not None and max(self.channels) >= X.shape[1]:
                raise ClassifierInputError(f"channels {self.channels} out of range for {X.shape[1]} W+ rows")
            self.input_shape_ = tuple(X.shape[1:])
        elif tuple(X.shape[1:]) != self.input_shape_:
            want = ", ".join(map(str, self.input_shape_))
            hint = "; for a single code use X[None]" if tuple(X.shape) == self.input_shape_ else ""
            raise ClassifierInputError(f"expected X of shape (N, {want}) as in training, got {X.shape}{hint}")
        if X.ndim == 3 and self.channels is not None:
            X = X[:, self.channels, :]
        return np.ascontiguousarray(X.reshape(len(X), -1), dtype=np.float32)

    def _standardise(self, X: np.ndarray) -> np.ndarray:
        Z = X - self.mean_
        Z /= self.std_
        return Z

    # -- subclass hooks
    def _fit(self, Z: np.ndarray, y: np.ndarray, groups) -> dict | None:
        raise NotImplementedError

    def _predict_fake(self, Z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _arrays(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _halvable(self, name: str) -> bool:  # arrays that save(half=True) may store as fp16
        return False

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError


# --------------------------------------------------------------------------- random forest


def _features_per_split(mf, d):
    """sklearn's max_features for `mf` over d features; "sqrt/2" -> max(1, int(sqrt(d) / 2))."""
    return max(1, int(math.sqrt(d) / 2)) if mf == "sqrt/2" else mf


class RandomForest(LatentClassifier):
    """Random forest: `n_trees` gini trees grown to purity, bootstrap; `max_features`
    features tried per split: "sqrt/2" (default: half of sklearn's sqrt, 42 of the 7,168 W+
    features), "sqrt", "log2", a count or a fraction. The paper fixes 1,500 gini trees, not
    this. On 8,281 DFDC codes "sqrt/2" fits in half the time of "sqrt" (299 vs 581 s) for
    a val AUC of 0.684 vs 0.690, and is what lets the four classifiers train on 12,000
    codes in under 15 minutes (benchmarks/speed/bench_classify.py; README, classifier training).

    max_samples: bootstrap sample size per tree (None = N, the paper's/sklearn's default;
    a fraction or a count). Fit time is roughly proportional to it, so e.g. 0.25 is the
    knob when 1500 full-size trees are too slow (a deviation from the paper).

    Fitted with sklearn (threads, n_jobs=-1) on float32 features; then every tree is
    exported to flat arrays (children, feature, threshold, leaf class probabilities) and
    prediction runs in vectorised numpy, so a loaded forest needs no sklearn. `fit` checks
    the export against sklearn's predict_proba (to 1e-6). The fitted sklearn model stays
    available as `sklearn_model_` until the object is saved and reloaded.
    """

    KIND = "rf"

    def __init__(
        self,
        channels=None,
        seed: int = 0,
        n_trees: int = 1500,
        max_features: str | int | float = "sqrt/2",
        min_samples_leaf: int = 1,
        max_samples: int | float | None = None,
        n_jobs: int = -1,
    ):
        super().__init__(channels, seed)
        self.n_trees = int(n_trees)
        self.max_features = max_features
        self.min_samples_leaf = int(min_samples_leaf)
        self.max_samples = max_samples
        self.n_jobs = int(n_jobs)

    def _reset(self) -> None:
        super()._reset()
        self.sklearn_model_ = None
        self._tree: dict[str, np.ndarray] | None = None

    def _fit(self, Z, y, groups):
        from sklearn.ensemble import RandomForestClassifier

        rf = RandomForestClassifier(
            n_estimators=self.n_trees,
            criterion="gini",
            max_features=_features_per_split(self.max_features, Z.shape[1]),
            min_samples_leaf=self.min_samples_leaf,
            bootstrap=True,
            max_samples=self.max_samples,
            n_jobs=self.n_jobs,
            random_state=self.seed,
        )
        rf.fit(Z, y)
        self.sklearn_model_ = rf
        self._tree = _export_forest(rf)
        check = Z[:: max(1, len(Z) // 200)]
        gap = np.abs(self._predict_fake(check) - rf.predict_proba(check)[:, 1]).max()
        if gap > 1e-6:  # would be a bug in the export
            raise RuntimeError(f"exported forest differs from sklearn by {gap:.2e}")
        return {"n_nodes": int(len(self._tree["feature"]))}

    def _predict_fake(self, Z):
        t = self._tree
        return _forest_proba_fake(Z, t["roots"], t["left"], t["right"], t["feature"], t["threshold"], t["value"])

    def _arrays(self):
        return dict(self._tree)

    def _set_arrays(self, arrays):
        t = {k: arrays[k] for k in ("roots", "left", "right", "feature", "threshold", "value")}
        n, d = len(t["feature"]), self.n_features
        for k in ("left", "right", "feature"):
            if t[k].shape != (n,):
                raise ValueError(f"tree array {k} has shape {t[k].shape}, expected ({n},)")
        if t["threshold"].shape != (n,) or t["value"].shape != (n, 2):
            raise ValueError("tree threshold/value shapes are inconsistent")
        if t["roots"].ndim != 1 or len(t["roots"]) == 0:
            raise ValueError("forest has no trees")
        leaf = t["left"] < 0
        inner = ~leaf
        ok = (
            _in_range(t["roots"], n)
            and _in_range(t["left"][inner], n)
            and _in_range(t["right"][inner], n)
            and _in_range(t["feature"][inner], d)
            and np.all(t["left"][inner] > np.flatnonzero(inner))  # children after parent: no loops
            and np.all(t["right"][inner] > np.flatnonzero(inner))
        )
        if not ok:
            raise ValueError("tree node or feature indices out of range")
        t["left"], t["right"], t["feature"], t["roots"] = (t[k].astype(np.int64) for k in ("left", "right", "feature", "roots"))
        t["threshold"] = t["threshold"].astype(np.float64)
        t["value"] = t["value"].astype(np.float32)
        self._tree = t


def _in_range(a: np.ndarray, n: int) -> bool:
    return bool(a.size == 0 or (a.min() >= 0 and a.max() < n))


def _export_forest(rf) -> dict[str, np.ndarray]:
    """sklearn forest -> concatenated node arrays; child indices are global (offset added)."""
    left, right, feature, threshold, value, roots = [], [], [], [], [], []
    offset = 0
    for est in rf.estimators_:
        t = est.tree_
        leaf = t.children_left < 0
        left.append(np.where(leaf, -1, t.children_left + offset))
        right.append(np.where(leaf, -1, t.children_right + offset))
        feature.append(np.where(leaf, -1, t.feature))
        threshold.append(t.threshold)
        v = t.value[:, 0, :].astype(np.float64)  # (n_nodes, 2) counts or fractions
        value.append(v / v.sum(axis=1, keepdims=True))
        roots.append(offset)
        offset += t.node_count
    return {
        "roots": np.asarray(roots, dtype=np.int64),  # (T,)
        "left": np.concatenate(left).astype(np.int32),  # (n_nodes,) -1 at leaves
        "right": np.concatenate(right).astype(np.int32),
        "feature": np.concatenate(feature).astype(np.int32),
        "threshold": np.concatenate(threshold).astype(np.float64),  # float64 as in sklearn
        "value": np.concatenate(value).astype(np.float32),  # (n_nodes, 2) [p_real, p_fake]
    }


def _forest_proba_fake(Z, roots, left, right, feature, threshold, value) -> np.ndarray:
    """Mean leaf p_fake over all trees, (N,). Goes left where x[feature] <= threshold
    (float32 feature compared in float64, exactly as sklearn does)."""
    n_trees = len(roots)
    out = np.empty(len(Z), dtype=np.float64)
    step = max(1, (1 << 21) // n_trees)  # samples per chunk: ~2M (sample, tree) pairs
    for s in range(0, len(Z), step):
        x = Z[s : s + step]  # (n, D)
        node = np.tile(roots, len(x))  # (n * T,) current node of each (sample, tree)
        row = np.repeat(np.arange(len(x)), n_trees)
        active = np.flatnonzero(left[node] >= 0)
        while active.size:
            nd = node[active]
            go_left = x[row[active], feature[nd]] <= threshold[nd]
            nxt = np.where(go_left, left[nd], right[nd])
            node[active] = nxt
            active = active[left[nxt] >= 0]
        out[s : s + len(x)] = value[node, 1].astype(np.float64).reshape(len(x), n_trees).mean(axis=1)
    return out


# --------------------------------------------------------------------------- logistic regression


class LogReg(LatentClassifier):
    """L2-regularised logistic regression (sklearn lbfgs for fitting; numpy prediction).

    C: inverse regularisation strength, or "auto" (the default): the C in `CS` whose fits
    score the best mean ROC AUC over 3 folds of the training codes, by group when groups
    are given (a source video never on both sides). With 7,168 features and a few hundred
    faces only a strong penalty generalises, and no one C suits every training-set size.
    The grid stops at 0.1: with fewer faces than features, sklearn's C = 1 is all but
    unpenalised and lbfgs does not converge on DFDC codes (AUC level with 0.1, 2x the time).
    The chosen C and each C's fold AUC are in `train_info_`.
    """

    KIND = "lr"
    CS = (1e-4, 1e-3, 1e-2, 1e-1)
    FOLDS = 3

    def __init__(self, channels=None, seed: int = 0, C: float | str = "auto", max_iter: int = 1000):
        super().__init__(channels, seed)
        if C != "auto" and not (isinstance(C, (int, float)) and C > 0):
            raise ClassifierInputError(f"C must be a positive number or 'auto', got {C!r}")
        self.C = C if C == "auto" else float(C)
        self.max_iter = int(max_iter)

    def _reset(self) -> None:
        super()._reset()
        self.coef_: np.ndarray | None = None  # (D,)
        self.intercept_: float = 0.0

    def _fit(self, Z, y, groups):
        info = {}
        C = self.C
        if C == "auto":
            fold_auc = self._cv_auc(Z, y, groups)
            C = max(fold_auc, key=fold_auc.get) if fold_auc else 1.0
            info["cv_auc"] = {f"{c:g}": round(a, 4) for c, a in fold_auc.items()} or "too few faces per class"
        # one cold fit at C: walking the C path with warm starts was slower here (DFDC codes,
        # C = 0.1: 44.6 s against 32.5 s), unlike inside the folds, where the path is needed anyway
        lr, converged = self._lbfgs(Z, y, C)
        if not converged:
            warnings.warn(f"LogReg did not converge in {self.max_iter} iterations; raise max_iter", stacklevel=3)
        self.coef_ = lr.coef_[0].astype(np.float64)
        self.intercept_ = float(lr.intercept_[0])
        return {"C": C, **info, "n_iter": int(lr.n_iter_[0]), "converged": converged}

    def _lbfgs(self, Z, y, C, lr=None):
        """Fit at C; `lr`, a model fitted at another C, is the starting point (warm start)."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        if lr is None:
            lr = LogisticRegression(max_iter=self.max_iter, random_state=self.seed, warm_start=True)
        lr.C = C
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            lr.fit(Z, y)
        return lr, not any(issubclass(w.category, ConvergenceWarning) for w in caught)

    def _cv_auc(self, Z, y, groups) -> dict[float, float]:
        """{C: mean validation ROC AUC over the folds}; {} when the codes are too few to fold
        (fewer than FOLDS faces of a class, or of groups)."""
        from sklearn.metrics import roc_auc_score
        from sklearn.model_selection import GroupKFold, StratifiedKFold

        if np.bincount(y, minlength=2).min() < self.FOLDS:
            return {}
        if groups is not None and len(np.unique(groups)) >= self.FOLDS:
            folds = list(GroupKFold(self.FOLDS).split(Z, y, groups))
        else:
            folds = list(StratifiedKFold(self.FOLDS, shuffle=True, random_state=self.seed).split(Z, y))
        folds = [(t, v) for t, v in folds if len(np.unique(y[t])) == 2 and len(np.unique(y[v])) == 2]
        auc = {c: [] for c in self.CS}
        for t, v in folds:
            lr = None
            for c in self.CS:  # from the strongest penalty up, each fit starting from the last (13% faster than cold)
                lr = self._lbfgs(Z[t], y[t], c, lr)[0]
                auc[c].append(roc_auc_score(y[v], lr.decision_function(Z[v])))
        return {c: float(np.mean(a)) for c, a in auc.items() if a}

    def _predict_fake(self, Z):
        return _sigmoid(Z @ self.coef_ + self.intercept_)

    def _arrays(self):
        return {"coef": self.coef_, "intercept": np.array([self.intercept_])}

    def _set_arrays(self, arrays):
        coef, b = arrays["coef"], arrays["intercept"]
        if coef.shape != (self.n_features,) or b.shape != (1,):
            raise ValueError(f"coef shape {coef.shape} does not match {self.n_features} features")
        self.coef_, self.intercept_ = coef.astype(np.float64), float(b[0])


def _sigmoid(t: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * t))  # stable for large |t|


def two_views(det) -> bool:
    """Trained on each face and its mirror image (lf extract --mirror, then lf train): it
    scores the mean_logit of the two views."""
    return bool((det.metrics or {}).get("mirror"))


def mean_logit(*ps) -> np.ndarray:
    """sigmoid of the mean logit of probabilities (views of one face, or nets)."""
    p = np.clip(np.stack(ps), 1e-7, 1 - 1e-7)
    return _sigmoid(np.log(p / (1 - p)).mean(0))


# --------------------------------------------------------------------------- MLPs


class MLP(LatentClassifier):
    """Fully connected net: Linear+ReLU per hidden layer, one sigmoid output, BCE loss.

    Paper: SGD, learning rate 5e-4. Deviations, so training reliably converges:
    momentum 0.9; mini-batches of `batch_size`; up to `max_epochs` epochs with early
    stopping when the loss on a held-out `val_fraction` (10%, stratified, or by `groups`)
    has not improved for `patience` epochs, keeping the best weights. The sigmoid+BCE
    pair is computed as BCEWithLogitsLoss (same maths, numerically stable). Hidden
    layers use He (Kaiming-normal) initialisation, zero biases: with torch's default init
    the deep MLP5 barely moves at this learning rate.

    members > 1: that many nets, fitted with seeds seed, seed + 1, ... (each its own init,
    held-out split and batch order), whose logits are averaged. One fit's test AUC moves
    by about 0.01 from seed to seed (benchmarks/RESULTS.md, "Beyond chance?"); the mean
    of several is steadier. members = 1 is the paper's single net.

    Beyond the paper (all off by default): dropout = (p_input, p_hidden), dropout on the
    input code and after each hidden ReLU while training; optimizer "adamw" for SGD;
    weight_decay (AdamW's decoupled decay, or SGD's L2 term).
    """

    HIDDEN: ClassVar[tuple[int, ...]] = ()
    # `lf train --regularise`: the default detector's recipe (weights/README.md)
    REGULARISED: ClassVar[dict] = {"dropout": (0.2, 0.5), "optimizer": "adamw", "lr": 1e-4,
                                   "weight_decay": 1e-2, "patience": 8}

    def __init__(
        self,
        channels=None,
        seed: int = 0,
        lr: float = 5e-4,
        momentum: float = 0.9,
        batch_size: int = 32,
        max_epochs: int = 60,
        patience: int = 3,
        val_fraction: float = 0.1,
        members: int = 1,
        dropout: tuple[float, float] = (0.0, 0.0),
        optimizer: str = "sgd",
        weight_decay: float = 0.0,
    ):
        super().__init__(channels, seed)
        self.members = int(members)
        if self.members < 1:
            raise ClassifierInputError(f"members must be >= 1, got {members}")
        self.dropout = tuple(float(p) for p in dropout)
        if len(self.dropout) != 2 or not all(0.0 <= p < 1.0 for p in self.dropout):
            raise ClassifierInputError(f"dropout must be (p_input, p_hidden) in [0, 1), got {dropout}")
        self.optimizer = str(optimizer)
        if self.optimizer not in ("sgd", "adamw"):
            raise ClassifierInputError(f"optimizer must be 'sgd' or 'adamw', got {optimizer!r}")
        self.weight_decay = float(weight_decay)
        if self.weight_decay < 0:
            raise ClassifierInputError(f"weight_decay must be >= 0, got {weight_decay}")
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.batch_size = int(batch_size)
        self.max_epochs = int(max_epochs)
        self.patience = int(patience)
        self.val_fraction = float(val_fraction)
        if not 0.0 < self.val_fraction < 0.5:
            raise ClassifierInputError(f"val_fraction must be in (0, 0.5), got {val_fraction}")

    def _reset(self) -> None:
        super()._reset()
        self.net_: torch.nn.Sequential | None = None

    def _build(self, d: int) -> torch.nn.Module:
        """The net for d inputs: one MLP, or the mean of `members` of them."""
        if self.members > 1:
            return _MeanLogit([self._build_one(d) for _ in range(self.members)])
        return self._build_one(d)

    def _build_one(self, d: int) -> torch.nn.Sequential:
        layers: list[torch.nn.Module] = []
        for h in self.HIDDEN:
            layer = torch.nn.Linear(d, h)
            torch.nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")  # He init
            torch.nn.init.zeros_(layer.bias)
            layers += [layer, _ReLUDropout(self.dropout[1])]  # a ReLU when p = 0
            d = h
        layers.append(torch.nn.Linear(d, 1))  # logit of p_fake (torch default init)
        return torch.nn.Sequential(*layers)

    def _fit(self, Z, y, groups):
        Zt = torch.from_numpy(Z)  # (N, D) shares memory
        yt = torch.from_numpy(y.astype(np.float32))
        fits = [self._fit_one(Zt, yt, y, groups, self.seed + i) for i in range(self.members)]
        if self.members == 1:
            self.net_, info = fits[0]
            return info
        self.net_ = _MeanLogit([net for net, _ in fits]).eval()
        infos = [info for _, info in fits]
        return {"members": infos, "epochs": sum(i["epochs"] for i in infos),
                "n_val": infos[0]["n_val"]}

    def _fit_one(self, Zt, yt, y, groups, seed):
        rng = np.random.default_rng(seed)
        train, val = holdout_split(y, groups, self.val_fraction, rng)
        with torch.random.fork_rng(devices=[]):  # init and dropout masks follow the seed
            torch.manual_seed(seed)
            net = self._build_one(Zt.shape[1])
            Zv, yv = Zt[val], yt[val]
            loss_fn = torch.nn.BCEWithLogitsLoss()
            if self.optimizer == "adamw":
                opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            else:
                opt = torch.optim.SGD(net.parameters(), lr=self.lr, momentum=self.momentum,
                                      weight_decay=self.weight_decay)

            def epoch():
                order = torch.from_numpy(rng.permutation(train))
                for start in range(0, len(order), self.batch_size):
                    b = order[start : start + self.batch_size]
                    x = Zt[b]  # (B, D)
                    if self.dropout[0]:
                        x = torch.nn.functional.dropout(x, self.dropout[0])
                    opt.zero_grad(set_to_none=True)
                    loss = loss_fn(net(x).squeeze(1), yt[b])
                    loss.backward()
                    opt.step()

            info = fit_early_stopping(net, epoch, lambda: _eval_loss(net, Zv, yv, loss_fn),
                                      self.max_epochs, self.patience, has_val=len(val) > 0)
        return net, {**info, "n_val": int(len(val))}

    @torch.no_grad()
    def _predict_fake(self, Z):
        self.net_.eval()
        out = [torch.sigmoid(self.net_(torch.from_numpy(Z[s : s + 4096])).squeeze(1)) for s in range(0, len(Z), 4096)]
        return torch.cat(out).double().numpy() if out else np.zeros(0)

    def _arrays(self):
        return {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()}

    def _halvable(self, name):
        return name.startswith("net.") and name.endswith(".weight")

    def _set_arrays(self, arrays):
        net = self._build(self.n_features)
        state = {k[4:]: torch.from_numpy(v.astype(np.float32)) for k, v in arrays.items()
                 if k.startswith("net.")}
        net.load_state_dict(state, strict=True)  # RuntimeError on missing/extra/misshapen weights
        net.eval()
        self.net_ = net


class _ReLUDropout(torch.nn.ReLU):
    """ReLU, then dropout with probability p while training (no parameters, so a net's
    weight names are the same with or without it)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x):
        x = super().forward(x)
        return torch.nn.functional.dropout(x, self.p, self.training) if self.p else x


class _MeanLogit(torch.nn.Module):
    """Several nets (N, D) -> (N, 1) as one: the mean of their logits."""

    def __init__(self, nets):
        super().__init__()
        self.members = torch.nn.ModuleList(nets)

    def forward(self, x):
        return torch.stack([m(x) for m in self.members]).mean(0)


class MLP2(MLP):
    __doc__ = "MLP with one hidden layer of 512 units.\n\n" + MLP.__doc__
    KIND = "mlp2"
    HIDDEN = (512,)


class MLP5(MLP):
    __doc__ = "MLP with hidden layers 2048-512-512-512 (5 linear layers).\n\n" + MLP.__doc__
    KIND = "mlp5"
    HIDDEN = (2048, 512, 512, 512)


@torch.no_grad()
def _eval_loss(net, Z, y, loss_fn) -> float:
    net.eval()
    return float(sum(loss_fn(net(Z[s : s + 4096]).squeeze(1), y[s : s + 4096]) * len(y[s : s + 4096])
                     for s in range(0, len(Z), 4096)) / len(Z))


def holdout_split(y, groups, fraction, rng) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx): ~`fraction` held out, stratified by class, or whole groups."""
    if groups is not None and len(np.unique(groups)) >= 2:
        _, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
        order = rng.permutation(len(sizes))  # groups in random order
        n_take = int(np.searchsorted(np.cumsum(sizes[order]), fraction * len(y))) + 1
        is_val = np.isin(inverse, order[: min(n_take, len(sizes) - 1)])
    else:
        is_val = np.zeros(len(y), dtype=bool)
        for c in (0, 1):
            idx = rng.permutation(np.flatnonzero(y == c))
            k = int(round(fraction * len(idx))) if len(idx) >= 2 else 0
            is_val[idx[:k]] = True
    train, val = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    if len(np.unique(y[train])) < 2:
        raise ClassifierInputError("after holding out the validation groups, training data has one class only")
    return train, val


# --------------------------------------------------------------------------- input helpers


def _normalise_channels(channels) -> list[int] | None:
    if channels is None:
        return None
    if isinstance(channels, (int, np.integer)):
        channels = [channels]
    try:
        out = [int(c) for c in channels]
    except (TypeError, ValueError) as err:
        raise ClassifierInputError(f"channels must be None, an int or a sequence of ints, got {channels!r}") from err
    if not out or min(out) < 0 or len(set(out)) != len(out):
        raise ClassifierInputError(f"channels must be distinct non-negative row indices, got {out}")
    return out


def _as_codes(X) -> np.ndarray:
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    X = np.asarray(X)
    if X.ndim not in (2, 3) or X.shape[0] == 0 or 0 in X.shape:
        raise ClassifierInputError(
            f"X must be codes of shape (N, 14, 512) or features (N, D) with N >= 1, got {X.shape}"
            + ("; for one code use X[None]" if X.ndim == 2 and X.shape == (14, 512) else "")
        )
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise ClassifierInputError(f"X must be real numbers, got dtype {X.dtype}")
    X = X.astype(np.float32, copy=False)
    if not np.isfinite(X).all():
        raise ClassifierInputError("X contains NaN or inf")
    return X


def as_labels(y, n: int) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,):
        raise ClassifierInputError(f"y must have shape ({n},) to match X, got {y.shape}")
    if y.dtype == bool:
        y = y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.number) or not np.isin(y, (0, 1)).all():
        raise ClassifierInputError("y must contain only 0 (real) and 1 (fake)")
    y = y.astype(np.int64)
    if y.min() == y.max():
        raise ClassifierInputError(f"y has one class only ({CLASS_NAMES[y[0]]}); need both real (0) and fake (1)")
    return y


def _mean_std(X: np.ndarray, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std (float64 accumulation, two passes, chunked); std floored."""
    mean = np.zeros(X.shape[1])
    for s in range(0, len(X), chunk):
        mean += X[s : s + chunk].sum(axis=0, dtype=np.float64)
    mean /= len(X)
    var = np.zeros(X.shape[1])
    for s in range(0, len(X), chunk):
        var += ((X[s : s + chunk] - mean) ** 2).sum(axis=0)
    std = np.sqrt(var / len(X))
    std = np.where(std > 1e-6, std, 1.0)  # constant features: leave unscaled
    return mean.astype(np.float32), std.astype(np.float32)


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise TypeError(f"cannot store {type(v).__name__} in classifier metadata")


def fit_early_stopping(net, epoch, val_loss, max_epochs, patience, has_val=True, log=None,
                       resume=None, after_epoch=None):
    """Train `net` by calling epoch() (one pass; may return its mean training loss) up to
    max_epochs times, keeping the weights of the best val_loss() and stopping after
    `patience` epochs without improvement. Without held-out data (has_val False) it runs
    every epoch and keeps the last weights. Used by the MLPs and the CNN baselines.
    after_epoch(s) gets the loop's state after each epoch (history, best, best_epoch,
    best_state, stopped) to checkpoint it; resume=s goes on from such a state."""
    s = resume or {"history": [], "best": math.inf, "best_epoch": 0, "best_state": None,
                   "stopped": False}
    while len(s["history"]) < max_epochs and not s["stopped"]:
        ep = len(s["history"]) + 1
        net.train()
        train_loss = epoch()
        if not has_val:
            s["best_state"], s["best_epoch"] = None, ep
            s["history"].append(None)
        else:
            v = val_loss()
            s["history"].append(round(v, 5))
            if log:
                log(ep, train_loss, v)
            if v < s["best"] - 1e-4:
                s["best"], s["best_epoch"] = v, ep
                s["best_state"] = {k: t.detach().clone() for k, t in net.state_dict().items()}
            elif ep - s["best_epoch"] >= patience:
                s["stopped"] = True
        if after_epoch:
            after_epoch(s)
    if s["best_state"] is not None:
        net.load_state_dict(s["best_state"])
    net.eval()
    return {"epochs": len(s["history"]), "best_epoch": s["best_epoch"],
            "best_val_loss": round(s["best"], 5) if s["best"] < math.inf else None,
            "val_loss_history": list(s["history"])}


def _read_file(path) -> tuple[dict, dict[str, np.ndarray]]:
    """Header JSON + arrays of a classifier file; WeightsError for anything else."""
    return read_lf_file(path, "classifier", _META_KEY, FORMAT, VERSION)


def load_classifier(path) -> LatentClassifier:
    """Load any classifier written by `LatentClassifier.save`, dispatching on its kind."""
    return LatentClassifier.load(path)


CLASSIFIERS: dict[str, type[LatentClassifier]] = {"rf": RandomForest, "lr": LogReg, "mlp2": MLP2, "mlp5": MLP5}

__all__ = [
    "CLASSIFIERS", "CLASS_NAMES", "ClassifierInputError", "LatentClassifier", "LogReg", "MLP2", "MLP5",
    "NotFittedError", "RandomForest", "decide", "likelihood_ratio", "load_classifier",
    "prior_threshold",
    "mean_logit", "two_views",
]
