"""What a detector knows: where its training codes lie, and how sure its scores are.

    dom = CodeDomain().fit(Z, sources)        # Z (N, D) the classifier's standardised features
    dom.distance(Z)                           # (N, S) per training source, ~1 inside it
    dom.nearest(Z)                            # (names (N,), ratio (N,)): ratio > 1 = outside

A detector trained on DFDC video frames, FFHQ photos and LFW / UTKFace portraits knows
nothing of a face unlike all of them: its score there is a guess. `CodeDomain` models
each training source as a Gaussian in a shared PCA basis of the features (k directions)
plus an isotropic residual, and scores a code by its normalised Mahalanobis distance to
each source:

    d_s(z)^2 = 1/2 * ( mean_i (P z - mu_s)_i^2 / var_s,i  +  |z - P^T P z|^2 / ((D - k) r_s) )

Both terms average 1 over the source's own faces. A source's `limit` is the `quantile`
of d_s over its held-out faces (a face of the source is outside with probability
1 - quantile); `ratio = d_s / limit_s` of the nearest source is the out-of-distribution
score: above 1, the verdict abstains.

`fit_temperature` and `ece` calibrate and measure probabilities: a detector's log likelihood
ratio is divided by T, fitted on held-out faces. One T rarely suits every source (the
default's scores are about right on DFDC frames and too sure on FFHQ / StyleGAN portraits),
so `SourceModel` names the training source a code looks like and mixes the sources' own
temperatures by that:

    sm = SourceModel({"dfdc_faces": 1.05, "ffhq_stylegan": 1.93}, default=1.93).fit(W, src)
    sm.proba(W)                               # (N, S) P(source | code), W (N, 14, 512)
    sm.temperature(W)                         # (N,) 1 / sum_s P(s | w) / T_s
"""

from __future__ import annotations

import numpy as np

ECE_BINS = 10


class CodeDomain:
    """Per-source Gaussians in a shared PCA basis of (N, D) features. See the module."""

    def __init__(self, k: int = 64, quantile: float = 0.99, fit_rows: int = 20000, seed: int = 0):
        self.k, self.quantile = int(k), float(quantile)
        self.fit_rows, self.seed = int(fit_rows), int(seed)
        self.basis_ = None  # (k, D) float32, orthonormal rows
        self.names_: list[str] = []
        self.mu_ = self.var_ = None  # (S, k) float32
        self.res_ = self.limit_ = None  # (S,) float32

    @property
    def is_fitted(self) -> bool:
        return self.basis_ is not None

    def fit(self, Z, sources, Z_held=None, sources_held=None) -> CodeDomain:
        """Z (N, D) float32 features, sources (N,) names. The limits come from the held-out
        (Z_held, sources_held) when given (a source without held-out rows: its own rows)."""
        from sklearn.utils.extmath import randomized_svd

        Z, sources = np.asarray(Z, np.float32), np.asarray(sources).astype(str)
        rng = np.random.default_rng(self.seed)
        rows = rng.choice(len(Z), min(len(Z), self.fit_rows), replace=False)
        centre = Z[rows].mean(0)
        _, _, vt = randomized_svd(Z[rows] - centre, self.k, n_iter=4, random_state=self.seed)
        self.basis_ = vt.astype(np.float32)  # (k, D); fewer rows than k: k = rows
        self.k = len(self.basis_)
        self.names_ = sorted(set(sources))
        mu, var, res = [], [], []
        for s in self.names_:
            Zs = Z[sources == s]
            P = Zs @ self.basis_.T  # (n, k)
            mu.append(P.mean(0))
            var.append(P.var(0) + 1e-6)
            res.append(self._residual(Zs, P).mean() / (Z.shape[1] - self.k) + 1e-12)
        self.mu_, self.var_ = np.array(mu, np.float32), np.array(var, np.float32)
        self.res_ = np.array(res, np.float32)
        self.limit_ = np.ones(len(self.names_), np.float32)
        Zh, sh = (Z, sources) if Z_held is None else (np.asarray(Z_held, np.float32),
                                                      np.asarray(sources_held).astype(str))
        d = self.distance(Zh)
        for i, s in enumerate(self.names_):
            own = d[sh == s, i] if (sh == s).any() else self.distance(Z[sources == s])[:, i]
            self.limit_[i] = np.quantile(own, self.quantile)
        return self

    def _residual(self, Z, P):
        """(n,) squared norm of what the basis leaves of each row."""
        return np.maximum((Z * Z).sum(1) - (P * P).sum(1), 0.0)

    def distance(self, Z) -> np.ndarray:
        """(N, S) normalised Mahalanobis distance of each row to each source (~1 inside)."""
        Z = np.asarray(Z, np.float32)
        P = Z @ self.basis_.T  # (N, k)
        r = self._residual(Z, P)[:, None] / (Z.shape[1] - self.k)  # (N, 1)
        m = (((P[:, None, :] - self.mu_[None]) ** 2) / self.var_[None]).mean(2)  # (N, S)
        return np.sqrt(0.5 * (m + r / self.res_[None]))

    def nearest(self, Z) -> tuple[np.ndarray, np.ndarray]:
        """Per row: the nearest training source and the smallest distance / limit over the
        sources (ratio > 1: unlike every source the detector was trained on)."""
        return self.place(self.distance(Z))

    def place(self, d) -> tuple[np.ndarray, np.ndarray]:
        """(nearest source (N,), smallest distance / limit (N,)) of distances d (N, S)."""
        return np.array(self.names_)[d.argmin(1)], (d / self.limit_[None]).min(1)

    # -- storage as flat arrays + JSON-able meta (inside a detector's .safetensors)
    def arrays(self) -> dict[str, np.ndarray]:
        return {"domain.basis": self.basis_, "domain.mu": self.mu_, "domain.var": self.var_,
                "domain.res": self.res_, "domain.limit": self.limit_}

    def meta(self) -> dict:
        return {"k": self.k, "quantile": self.quantile, "sources": self.names_}

    @classmethod
    def from_arrays(cls, meta: dict, arrays: dict) -> CodeDomain:
        d = cls(k=int(meta["k"]), quantile=float(meta["quantile"]))
        d.names_ = [str(s) for s in meta["sources"]]
        d.basis_ = np.asarray(arrays["domain.basis"], np.float32)
        d.mu_, d.var_ = (np.asarray(arrays[f"domain.{n}"], np.float32) for n in ("mu", "var"))
        d.res_, d.limit_ = (np.asarray(arrays[f"domain.{n}"], np.float32) for n in ("res", "limit"))
        S, k = len(d.names_), d.k
        shapes = {"basis": (k, d.basis_.shape[1]), "mu": (S, k), "var": (S, k), "res": (S,),
                  "limit": (S,)}
        for n, want in shapes.items():
            got = getattr(d, f"{n}_").shape
            if got != want:
                raise ValueError(f"domain.{n} has shape {got}, expected {want}")
            if not np.isfinite(getattr(d, f"{n}_")).all():
                raise ValueError(f"domain.{n} is not finite")
        if (d.var_ <= 0).any() or (d.res_ <= 0).any() or (d.limit_ <= 0).any():
            raise ValueError("domain variances and limits must be positive")
        return d


class SourceModel:
    """Which training source a W+ code looks like, and the temperature that goes with it.

    A multinomial logistic regression on the standardised, flattened code (14 x 512 = 7168
    inputs; at most `rows` faces per source, so the sources weigh about alike). On the
    shipped sources' test faces it names the source of 96% of faces, and almost never takes
    a DFDC frame for an FFHQ photo or back. `temperatures`: a source's own T (sources with
    both classes: fitted on its held-out faces); a source without one (real faces only)
    takes `default` (lf train gives it the largest, the most cautious, of the others)."""

    def __init__(self, temperatures: dict | None = None, default: float = 1.0, C: float = 0.01,
                 rows: int = 3000, seed: int = 0):
        self.temperatures, self.default = dict(temperatures or {}), float(default)
        self.C, self.rows, self.seed = float(C), int(rows), int(seed)
        self.names_: list[str] = []
        self.coef_ = self.bias_ = None  # (S, 7168), (S,) float32: standardisation folded in
        self.T_ = None  # (S,) float32

    def fit(self, W, sources) -> SourceModel:
        """W (N, 14, 512) codes, sources (N,) their source names (two or more)."""
        from sklearn.linear_model import LogisticRegression

        X, sources = np.asarray(W, np.float32).reshape(len(W), -1), np.asarray(sources).astype(str)
        self.names_ = sorted(set(sources))
        if len(self.names_) < 2:
            raise ValueError("a source model needs codes from two sources or more")
        rng = np.random.default_rng(self.seed)
        rows = np.concatenate([np.sort(rng.choice(np.flatnonzero(sources == s), min(
            (sources == s).sum(), self.rows), replace=False)) for s in self.names_])
        X, y = X[rows], np.searchsorted(self.names_, sources[rows])
        mu, sd = X.mean(0), X.std(0) + 1e-6
        lr = LogisticRegression(C=self.C, max_iter=1000).fit((X - mu) / sd, y)
        coef = lr.coef_ if len(self.names_) > 2 else np.r_[-lr.coef_, lr.coef_] / 2  # (S, D)
        bias = lr.intercept_ if len(self.names_) > 2 else np.r_[-lr.intercept_, lr.intercept_] / 2
        self.coef_ = (coef / sd).astype(np.float32)
        self.bias_ = (bias - (coef / sd) @ mu).astype(np.float32)
        self.T_ = np.array([self.temperatures.get(s, self.default) for s in self.names_],
                           np.float32)
        self.temperatures = dict(zip(self.names_, self.T_.tolist()))
        return self

    def proba(self, W, W_mirror=None) -> np.ndarray:
        """(N, S) P(source | code); with W_mirror, the mean over the two views."""
        views = [W] + ([] if W_mirror is None else [W_mirror])
        P = 0.0
        for v in views:
            z = np.asarray(v, np.float32).reshape(len(v), -1) @ self.coef_.T + self.bias_  # (N, S)
            z = np.exp(z - z.max(1, keepdims=True))
            P = P + z / z.sum(1, keepdims=True)
        return P / len(views)

    def place(self, W, W_mirror=None) -> tuple[np.ndarray, np.ndarray]:
        """(N,) the name of the source each code most looks like, and (N,) its T: the
        harmonic mix 1 / sum_s P(s | w) / T_s (one pass of the model for both)."""
        P = self.proba(W, W_mirror)
        return np.array(self.names_)[P.argmax(1)], 1.0 / (P @ (1.0 / self.T_))

    def temperature(self, W, W_mirror=None) -> np.ndarray:
        """(N,) each code's T (see place)."""
        return self.place(W, W_mirror)[1]

    def nearest(self, W, W_mirror=None) -> np.ndarray:
        """(N,) the name of the source each code most looks like."""
        return self.place(W, W_mirror)[0]

    # -- storage, as CodeDomain's
    def arrays(self) -> dict[str, np.ndarray]:
        return {"source.coef": self.coef_, "source.bias": self.bias_, "source.T": self.T_}

    def meta(self) -> dict:
        return {"sources": self.names_, "temperatures": {s: float(t) for s, t in
                                                         zip(self.names_, self.T_)}}

    @classmethod
    def from_arrays(cls, meta: dict, arrays: dict) -> SourceModel:
        m = cls()
        m.names_ = [str(s) for s in meta["sources"]]
        m.coef_, m.bias_, m.T_ = (np.asarray(arrays[f"source.{n}"], np.float32)
                                  for n in ("coef", "bias", "T"))
        m.temperatures = dict(zip(m.names_, m.T_.tolist()))
        S = len(m.names_)
        for n, want in {"coef": (S, 14 * 512), "bias": (S,), "T": (S,)}.items():
            got = getattr(m, f"{n}_")
            if got.shape != want:
                raise ValueError(f"source.{n} has shape {got.shape}, expected {want}")
            if not np.isfinite(got).all():
                raise ValueError(f"source.{n} is not finite")
        if S < 2 or (m.T_ <= 0).any():
            raise ValueError("a source model needs two sources or more and temperatures > 0")
        return m


def logit(p) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def posterior(llr, prior_fake) -> np.ndarray:
    """p(fake | x) from log p(x|fake)/p(x|real) under a share of fakes `prior_fake`."""
    return 1 / (1 + np.exp(-(np.asarray(llr, np.float64) + logit(prior_fake))))


def fit_temperature(llr, y, groups=None) -> float:
    """T > 0 minimising the held-out log loss of posterior(llr / T, share of fakes in y):
    T > 1 softens over-confident likelihood ratios. With `groups` (one name per face, e.g.
    its source), each group's mean log loss is taken at its own share of fakes and the
    groups weigh alike, so a small source is calibrated as much as a large one."""
    llr, y = np.asarray(llr, np.float64), np.asarray(y, np.float64)
    groups = np.zeros(len(y), int) if groups is None else np.asarray(groups)
    parts = []
    for g in np.unique(groups):
        k = groups == g
        parts.append((llr[k], y[k], float(np.clip(y[k].mean(), 1e-3, 1 - 1e-3))))

    def nll(T):
        loss = 0.0
        for lr, t, share in parts:
            q = np.clip(posterior(lr / T, share), 1e-12, 1 - 1e-12)
            loss -= np.mean(t * np.log(q) + (1 - t) * np.log(1 - q))
        return loss / len(parts)

    grid = np.exp(np.linspace(np.log(0.25), np.log(4.0), 161))  # 1.7% steps
    return float(grid[np.argmin([nll(T) for T in grid])])


def ece(p, y, bins: int = ECE_BINS) -> float:
    """Expected calibration error: sum over equal-width bins of p(fake) of
    (share of faces) x |mean p - share of fakes|."""
    p, y = np.asarray(p, np.float64), np.asarray(y, np.float64)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    return float(sum(abs(p[idx == b].mean() - y[idx == b].mean()) * (idx == b).mean()
                     for b in range(bins) if (idx == b).any()))


def reliability(p, y, bins: int = ECE_BINS) -> list[dict]:
    """A reliability curve: per non-empty bin, its range, n, mean p(fake), share of fakes."""
    p, y = np.asarray(p, np.float64), np.asarray(y, np.float64)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    return [{"lo": b / bins, "hi": (b + 1) / bins, "n": int((idx == b).sum()),
             "mean_p": float(p[idx == b].mean()), "fake_share": float(y[idx == b].mean())}
            for b in range(bins) if (idx == b).any()]


def ece_floor(p, bins: int = ECE_BINS, draws: int = 1000, seed: int = 0) -> float:
    """The ECE a perfectly calibrated detector shows on these faces by chance alone: the
    mean of ece(p, y) over labels drawn y ~ Bernoulli(p). A measured ECE near it says no
    more than "calibrated, within what this many faces can tell"."""
    p = np.asarray(p, np.float64)
    rng = np.random.default_rng(seed)
    return float(np.mean([ece(p, rng.random(len(p)) < p, bins) for _ in range(draws)]))
