"""Why did the detector say fake? Attributions of p_fake over the W+ code, and style mixing.

    att = explain(w, detector)                       # method="auto"
    att.channels    # (14,) one number per W+ row (layer); > 0 pushes towards "fake"
    att.dims        # (14, 512) per dimension
    channel_labels()[i]     # lf_core.layout: "0: 4px", "1: 4px rgb + 8px up", ...

Methods, one small class each over the shared `Explainer` base (like pytorch-grad-cam):

    IntegratedGradients  captum IG from a baseline code to w, on a torch copy of the
                         classifier (logistic regression, MLP-2, MLP-5). Completeness:
                         dims.sum() ~= p_fake(w) - p_fake(baseline).
    ChannelAblation      replace one W+ row (channels) or one block of dims by the baseline
                         code and measure the drop in p_fake (captum FeatureAblation). Only
                         calls predict_proba, so it works for any classifier, random
                         forest included.

The baseline is "the mean code": pass the generator's mean code (model.w_avg, the code of
the average face); by default the detector's own training mean is used.

W+ rows in the rosinality StyleGAN2 layout (256 px, 14 rows), from Generator.forward:
row 0 styles the 4 px conv; row 1 the 4 px ToRGB *and* the up-sampling conv to 8 px;
row 2 the second 8 px conv; row 3 the 8 px ToRGB and the up-conv to 16 px; ...; row 12 the
second 256 px conv; row 13 the 256 px ToRGB. `channel_labels` spells this out.
Groups for style mixing: coarse 0-3 (4-8 px: pose, face shape), middle 4-7 (16-32 px:
features, expression), fine 8-13 (64-256 px: colour, texture, micro-detail).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .layout import (
    GROUPS,
    N_LATENT,
    W_DIM,
    channel_labels,
)

TARGETS = ("p_fake", "logit")


# --------------------------------------------------------------------------- style mixing


def resolve_channels(channels) -> list[int]:
    """"coarse" | "middle" | "fine" | "all" | an int | an iterable of ints -> sorted rows."""
    if isinstance(channels, str):
        name = channels.strip().lower()
        if name == "all":
            return list(range(N_LATENT))
        if name not in GROUPS:
            raise ValueError(f"unknown channel group {channels!r}; use one of "
                             f"{', '.join(GROUPS)}, 'all', or row numbers 0-13")
        return list(GROUPS[name])
    if isinstance(channels, (int, np.integer)):
        channels = [channels]
    rows = sorted({int(c) for c in channels})
    if not rows or rows[0] < 0 or rows[-1] >= N_LATENT:
        raise ValueError(f"W+ rows must be in 0..{N_LATENT - 1}, got {rows}")
    return rows


def mix(w, w_other, channels) -> np.ndarray:
    """Style mixing: a copy of w with the given W+ rows taken from w_other.

    w, w_other: (1, 14, 512) or (14, 512) codes (w_other may be the mean code);
    channels: a group name ("coarse", "middle", "fine"), a row number or rows.
    Returns the shape of w, float32.
    """
    a = np.array(w, dtype=np.float32, copy=True)
    b = np.asarray(w_other, dtype=np.float32).reshape(N_LATENT, W_DIM)
    if a.shape not in ((N_LATENT, W_DIM), (1, N_LATENT, W_DIM)):
        raise ValueError(f"w must be (1, 14, 512) or (14, 512), got {a.shape}")
    rows = resolve_channels(channels)
    a.reshape(N_LATENT, W_DIM)[rows] = b[rows]
    return a


# ------------------------------------------------------------- torch view of a classifier


def torch_logit(detector):
    """A differentiable torch function codes (N, 14, 512) -> logit of p_fake (N,), from the
    classifier's fitted arrays (logistic regression, MLP-2, MLP-5); None when the
    classifier has no gradient (random forest). The detector is not modified."""
    from .classifiers import MLP, LogReg

    if not getattr(detector, "is_fitted", False):
        return None
    mean = torch.as_tensor(detector.mean_, dtype=torch.float32)
    std = torch.as_tensor(detector.std_, dtype=torch.float32)
    rows = detector.channels
    shape = tuple(detector.input_shape_ or ())

    def features(w):
        if len(shape) == 1:  # trained on flat (N, D) features
            x = w.reshape(len(w), -1)
        else:
            x = w if rows is None else w[:, rows, :]
        return (x.reshape(len(x), -1) - mean) / std

    if isinstance(detector, LogReg):
        coef = torch.as_tensor(detector.coef_, dtype=torch.float32)
        b = float(detector.intercept_)
        return lambda w: features(w) @ coef + b
    if isinstance(detector, MLP) and detector.net_ is not None:
        net = detector.net_.eval()
        return lambda w: net(features(w)).squeeze(1)
    return None


def torch_forward(detector):
    """codes (N, 14, 512) -> p_fake (N,) as a differentiable torch function, equal to
    detector.predict_proba(...)[:, 1]; None for classifiers without gradient."""
    f = torch_logit(detector)
    return None if f is None else (lambda w: torch.sigmoid(f(w)))


def default_baseline(detector) -> tuple[np.ndarray, str]:
    """The reference code (14, 512) attributions start from, and its name: a Detector's
    typical real face (the mean code of its real training faces) when its file has one,
    else the classifier's training mean (real and fake faces; rows it does not read: zeros)."""
    from .detector import Detector

    if isinstance(detector, Detector):
        if detector.real_mean is not None:
            return detector.real_mean, "typical real face (mean code of the real training faces)"
        detector = detector.clf
    base = np.zeros((N_LATENT, W_DIM), np.float32)
    name = "average training face (mean code of the real and fake training faces)"
    mean = getattr(detector, "mean_", None)
    if mean is None:
        return base, "zero code"
    rows = detector.channels
    shape = tuple(detector.input_shape_ or ())
    if len(shape) == 1:
        return mean.reshape(N_LATENT, W_DIM).astype(np.float32), name
    if rows is None:
        return mean.reshape(shape).astype(np.float32)[:N_LATENT], name
    base[rows] = mean.reshape(len(rows), W_DIM)
    return base, name


# --------------------------------------------------------------------------- explainers


@dataclass
class Attribution:
    channels: np.ndarray  # (14,) float: effect of each W+ row on the score (> 0: towards fake)
    dims: np.ndarray  # (14, 512) float
    method: str  # "integrated_gradients" | "channel_ablation"
    target: str = "p_fake"  # or "logit": log(p_fake / (1 - p_fake))
    p_fake: float = float("nan")  # the verdict's p_fake (both views for a two-view detector)
    p_fake_baseline: float = float("nan")  # p_fake of the baseline code
    baseline: str = "mean code"
    notes: str = ""
    labels: list = field(default_factory=channel_labels)
    views: int = 1  # 2: the face and its mirror image, moved together from the baseline

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The k rows with the largest |attribution|, as (label, value)."""
        order = np.argsort(-np.abs(self.channels))[:k]
        return [(self.labels[i], float(self.channels[i])) for i in order]


def _parts(detector):
    """(Detector or None, classifier) of a Detector, a fitted classifier or a path."""
    from .detector import Detector

    if isinstance(detector, Detector):
        return detector, detector.clf
    return None, detector


class Explainer:
    """Base: holds the detector and the baseline code; `explain(w, w_mirror) -> Attribution`.

    With a two-view Detector and w_mirror, the score explained is the verdict's: p_fake of
    the face and its mirror together; both views move from the baseline at once, so the
    rows' attributions add up to p_fake(verdict) - p_fake(baseline)."""

    name = ""

    def __init__(self, detector, baseline=None, baseline_name: str | None = None,
                 target: str = "p_fake"):
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        self.det, self.clf = _parts(detector)
        self.detector = self.clf
        self.target = target
        if baseline is None:
            base, bname = default_baseline(self.det or self.clf)
        else:
            base = np.asarray(baseline, np.float32).reshape(N_LATENT, W_DIM)
            bname = "mean code"
        self.baseline = base
        self.baseline_name = baseline_name or bname

    def score(self, *views) -> np.ndarray:
        """(N,) p_fake of codes (N, 14, 512), one array per view: the verdict's score."""
        if self.det is not None:
            return self.det.prob_fake(views[0], views[1] if len(views) > 1 else None)
        return self.clf.predict_proba(views[0])[:, 1]

    def explain(self, w, w_mirror=None) -> Attribution:
        ws = [w] + ([w_mirror] if w_mirror is not None and self.det is not None
                    and self.det.views == 2 else [])
        xs = []
        for v in ws:
            v = np.asarray(v, np.float32)
            if v.size != N_LATENT * W_DIM:
                raise ValueError(f"w must be a (1, 14, 512) code, got shape {v.shape}")
            xs.append(torch.from_numpy(v.reshape(1, N_LATENT, W_DIM).copy()))
        xs = tuple(xs)
        bs = tuple(torch.from_numpy(self.baseline[None].copy()) for _ in xs)
        dims, channels, notes = self._attribute(xs, bs)
        p = float(self.score(*(x.numpy() for x in xs))[0])
        pb = float(self.score(*(b.numpy() for b in bs))[0])
        return Attribution(np.asarray(channels, np.float64), np.asarray(dims, np.float64),
                           self.name, target=self.target, p_fake=p, p_fake_baseline=pb,
                           baseline=self.baseline_name, notes=notes, views=len(xs))

    def _attribute(self, xs, bs):
        """xs, bs: tuples of (1, 14, 512) tensors, one per view -> (dims (14, 512),
        channels (14,), notes), summed over the views."""
        raise NotImplementedError


class IntegratedGradients(Explainer):
    """captum Integrated Gradients from the baseline code to w (differentiable classifiers
    only: logistic regression and the MLPs).

    The path integral is taken on the classifier's logit (the mean of the views' logits),
    which does not saturate in float32 (a confident classifier's sigmoid is flat at 0 or 1
    along most of the path, where gradients of p_fake vanish and IG on p_fake misses the
    crossing). For target "p_fake" the logit attributions are then rescaled by
    (p(w) - p(baseline)) / (logit(w) - logit(baseline)), p being the verdict's calibrated
    score: for one view of a logistic regression this is exactly IG of p_fake; otherwise
    the rescale rule at the output. Either way the attributions add up to
    p(w) - p(baseline) (completeness).
    """

    name = "integrated_gradients"

    def __init__(self, detector, baseline=None, n_steps: int = 32, **kw):
        super().__init__(detector, baseline, **kw)
        self.logit = torch_logit(self.clf)
        if self.logit is None:
            raise ValueError(f"{type(self.clf).__name__} is not differentiable; "
                             "use ChannelAblation (method='ablation')")
        self.n_steps = int(n_steps)

    def _attribute(self, xs, bs):
        from captum.attr import IntegratedGradients as IG

        def f(*views):  # mean logit over the views, (N,)
            return torch.stack([self.logit(v) for v in views]).mean(0)

        ig = IG(f)
        with torch.enable_grad():
            att, delta = ig.attribute(xs, baselines=bs, n_steps=self.n_steps,
                                      internal_batch_size=self.n_steps,
                                      return_convergence_delta=True)
        raw = sum(a[0].detach().double().numpy() for a in att)  # (14, 512)
        dims = raw
        note = f"Integrated Gradients on the logit, {self.n_steps} steps"
        if self.target == "p_fake":
            # the rows then add up to p(w) - p(baseline) exactly: the rescale divides by the
            # attributions' own sum (the logit difference up to IG's convergence gap)
            with torch.no_grad():
                dl = float(f(*xs)[0] - f(*bs)[0])
            total = float(raw.sum())
            dl = total if abs(total) > 1e-9 and abs(total - dl) <= 0.5 * abs(dl) else dl
            px = float(self.score(*(x.numpy() for x in xs))[0])
            pb = float(self.score(*(b.numpy() for b in bs))[0])
            scale = (px - pb) / dl if abs(dl) > 1e-6 else px * (1 - px)
            dims = raw * scale
            note += ", rescaled to p_fake through the sigmoid"
        rel = float(delta.abs().max()) / max(1e-12, float(np.abs(raw).sum()))
        return dims, dims.sum(axis=1), f"{note}; completeness gap {rel:.1e} (relative)"


def _sigmoid(t: float) -> float:
    return 0.5 * (1.0 + float(np.tanh(0.5 * t)))


class ChannelAblation(Explainer):
    """Replace one W+ row (in every view) by the baseline's and measure
    p_fake(w) - p_fake(w ablated) (captum FeatureAblation). dims: the same for blocks of
    `block` dims, each block's effect spread evenly over its dims. Any classifier (only
    predictions are called)."""

    name = "channel_ablation"

    def __init__(self, detector, baseline=None, block: int = 32, **kw):
        super().__init__(detector, baseline, **kw)
        if W_DIM % block:
            raise ValueError(f"block must divide {W_DIM}, got {block}")
        self.block = int(block)

    def forward(self, *views):
        p = self.score(*(v.detach().cpu().numpy().reshape(len(v), N_LATENT, W_DIM)
                         for v in views))
        if self.target == "logit":
            p = np.clip(p, 1e-6, 1 - 1e-6)
            p = np.log(p / (1 - p))
        return torch.as_tensor(p, dtype=torch.float32)

    def _attribute(self, xs, bs):
        from captum.attr import FeatureAblation

        fa = FeatureAblation(self.forward)
        rows = torch.arange(N_LATENT)[:, None].expand(N_LATENT, W_DIM)
        masks = tuple(rows[None].contiguous() for _ in xs)  # a row of every view at once
        ch = fa.attribute(xs, baselines=bs, feature_mask=masks,
                          perturbations_per_eval=N_LATENT)[0][0, :, 0].numpy()
        nb = W_DIM // self.block
        blocks = rows * nb + torch.arange(W_DIM)[None, :] // self.block
        per_eval = max(1, min(N_LATENT * nb, 4096 // max(1, _cost(self.clf))))
        bmasks = tuple(blocks[None].contiguous() for _ in xs)
        dims = fa.attribute(xs, baselines=bs, feature_mask=bmasks,
                            perturbations_per_eval=per_eval)[0][0].numpy() / self.block
        return dims, ch, (f"ablation of {self.target}: each row (and each block of "
                          f"{self.block} dims) replaced by the {self.baseline_name}")


def _cost(detector) -> int:
    """Rough relative cost of one prediction, to size ablation batches."""
    return max(1, getattr(detector, "n_trees", 1) // 64)


METHODS = {"integrated_gradients": IntegratedGradients, "ig": IntegratedGradients,
           "channel_ablation": ChannelAblation, "ablation": ChannelAblation}


def explainer_for(detector, method: str = "auto", baseline=None, **kw) -> Explainer:
    """method: "auto" (IG when the classifier is differentiable, else ablation), "ig",
    "integrated_gradients", "ablation" or "channel_ablation"."""
    if method == "auto":
        method = "ig" if torch_logit(_parts(detector)[1]) is not None else "ablation"
    if method not in METHODS:
        raise ValueError(f"unknown explanation method {method!r}; use auto, "
                         + ", ".join(sorted(METHODS)))
    return METHODS[method](detector, baseline, **kw)


def explain(w, detector=None, method: str = "auto", baseline=None, target: str = "p_fake",
            w_mirror=None, **kw) -> Attribution:
    """Attributions of the verdict's p_fake (or its logit) over the 14 W+ rows and their
    512 dims.

    w: (1, 14, 512) code; detector: a Detector, a fitted classifier, or a path (None: the
    default; of a detector set, the member that judges w); w_mirror: the mirror image's
    code, for a two-view Detector (the verdict's score); baseline: the reference code,
    default the detector's typical real face; target: "p_fake" or "logit" (use "logit"
    when p_fake is saturated at both ends).
    """
    from .detector import LatentClassifier, as_detector

    if not isinstance(detector, LatentClassifier):
        detector = as_detector(detector).expert(w, w_mirror)
    return explainer_for(detector, method, baseline, target=target, **kw).explain(w, w_mirror)


__all__ = ["Attribution", "ChannelAblation", "Explainer", "IntegratedGradients", "explain",
           "explainer_for", "mix", "torch_forward", "torch_logit"]
