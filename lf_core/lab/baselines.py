"""CNN baselines that classify the aligned crop's pixels directly (no latent code).

    det = CNNDetector("meso4", max_epochs=30).fit(crops, y, groups)   # crops (N, H, W, 3) uint8
    p = det.predict_proba(crops)                 # (N, 2): [p_real, p_fake]
    det.save("meso4.safetensors", metrics={...}); det = load_baseline("meso4.safetensors")

    # on the aligned crops of a manifest (lf_core.lab.extract with the "crops" projector):
    extract(manifest, CropProjector(256), "runs/crops")
    det = train_baseline("runs/crops", "xception", "runs/det/xception.safetensors")
    res = evaluate_baseline("runs/crops", det)   # the same figures as lf_core.lab.evaluate

Architectures (plain torch modules; no timm):
- `meso4`: MesoNet Meso-4 (Afchar et al., 2018): four conv + BN + max-pool blocks
  (8, 8, 16, 16 filters), dropout, dense 16, leaky ReLU, dense 1. Native input 256 px.
- `efficientnet_b0`: torchvision's EfficientNet-B0, one output logit. Input 224 px.
- `xception`: Xception (Chollet, 2017) written here: entry flow (32, 64 convs; separable
  blocks of 128, 256, 728), middle flow (8 residual blocks of three 728 separable convs),
  exit flow (728 -> 1024 block, 1536 and 2048 separable convs), global pooling, one logit.
  `width` scales every width and `middle` sets the number of middle blocks: the defaults
  (1.0, 8) are the original (~21M parameters); smaller values give a compact variant.
  Input 299 px in the paper; 256 here (the crop size, no upscaling).

All are trained FROM SCRATCH on the aligned face crops: no ImageNet weights can be had
offline, so the figures are not those of ImageNet-pretrained baselines in the literature
(those start from pretrained weights and typically score higher). Training: Adam, BCE on
one logit, random horizontal flips, early stopping on a held-out 10% of the source-video
groups (the same split helper as the latent MLPs), best weights kept.

A saved baseline is one .safetensors file: the state dict plus a JSON header (no pickle).
"""

from __future__ import annotations

import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..artifacts import atomic_write, read_lf_file, write_lf_file
from ..errors import LFError, WeightsError

FORMAT = "latentforensics.cnn"
VERSION = 1
META_KEY = "lf_cnn"


# --------------------------------------------------------------------------- architectures


class Meso4(nn.Module):
    """MesoNet Meso-4. x: (N, 3, S, S) in [-1, 1] -> (N,) logits of p_fake."""

    def __init__(self, input_size: int = 256):
        super().__init__()

        def block(cin, cout, k, pool):
            return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2), nn.ReLU(inplace=True),
                                 nn.BatchNorm2d(cout), nn.MaxPool2d(pool, pool))

        self.features = nn.Sequential(block(3, 8, 3, 2), block(8, 8, 5, 2), block(8, 16, 5, 2),
                                      block(16, 16, 5, 4))
        side = input_size // 2 // 2 // 2 // 4
        if side < 1:
            raise LFError(f"Meso4 needs an input of at least 32 px, got {input_size}")
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(16 * side * side, 16),
                                  nn.LeakyReLU(0.1), nn.Dropout(0.5), nn.Linear(16, 1))

    def forward(self, x):
        return self.head(self.features(x)).squeeze(1)


class SeparableConv(nn.Sequential):
    """Depthwise 3x3 then pointwise 1x1, no bias (Xception)."""

    def __init__(self, cin, cout):
        super().__init__(nn.Conv2d(cin, cin, 3, 1, 1, groups=cin, bias=False),
                         nn.Conv2d(cin, cout, 1, bias=False))


class XceptionBlock(nn.Module):
    """`reps` x [ReLU, separable conv, BN], optional 3x3/2 max-pool; residual (1x1 conv + BN
    when the shape changes)."""

    def __init__(self, cin, cout, reps, stride=1, start_relu=True, grow_first=True):
        super().__init__()
        layers, c = [], cin
        widths = [cout] * reps if grow_first else [cin] * (reps - 1) + [cout]
        for i, w in enumerate(widths):
            if i > 0 or start_relu:
                layers.append(nn.ReLU(inplace=False))
            layers += [SeparableConv(c, w), nn.BatchNorm2d(w)]
            c = w
        if stride != 1:
            layers.append(nn.MaxPool2d(3, stride, 1))
        self.body = nn.Sequential(*layers)
        self.skip = None
        if cout != cin or stride != 1:
            self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return self.body(x) + (x if self.skip is None else self.skip(x))


class Xception(nn.Module):
    """Xception; width=1.0, middle=8 is the original. x: (N, 3, S, S) -> (N,) logits."""

    def __init__(self, width: float = 1.0, middle: int = 8, dropout: float = 0.5):
        super().__init__()

        def c(n):
            return max(8, int(round(n * width / 8)) * 8)

        self.entry = nn.Sequential(
            nn.Conv2d(3, c(32), 3, 2, bias=False), nn.BatchNorm2d(c(32)), nn.ReLU(inplace=True),
            nn.Conv2d(c(32), c(64), 3, bias=False), nn.BatchNorm2d(c(64)), nn.ReLU(inplace=True),
            XceptionBlock(c(64), c(128), 2, 2, start_relu=False),
            XceptionBlock(c(128), c(256), 2, 2),
            XceptionBlock(c(256), c(728), 2, 2))
        self.middle = nn.Sequential(*[XceptionBlock(c(728), c(728), 3) for _ in range(middle)])
        self.exit = nn.Sequential(
            XceptionBlock(c(728), c(1024), 2, 2, grow_first=False),
            SeparableConv(c(1024), c(1536)), nn.BatchNorm2d(c(1536)), nn.ReLU(inplace=True),
            SeparableConv(c(1536), c(2048)), nn.BatchNorm2d(c(2048)), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout))
        self.fc = nn.Linear(c(2048), 1)

    def forward(self, x):
        return self.fc(self.exit(self.middle(self.entry(x)))).squeeze(1)


def efficientnet_b0():
    """torchvision EfficientNet-B0, random init (weights=None), one output logit.

    torchvision draws the last layer from U(-1/sqrt(classes), +1/sqrt(classes)): U(-1, 1)
    for one logit, so the first logits are in the tens and training from scratch never
    recovered (train BCE 3.5 in epoch 1; AUC 0.51 on ffhq_stylegan). It starts at zero
    here, as a one-logit head should."""
    from torchvision.models import efficientnet_b0 as make

    net = make(weights=None, num_classes=1)
    head = net.classifier[-1]  # Linear(1280, 1)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)

    class _Squeeze(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.net = m

        def forward(self, x):
            return self.net(x).squeeze(1)

    return _Squeeze(net)


ARCHS = {
    "meso4": (lambda size, **kw: Meso4(size, **kw), 256),
    "efficientnet_b0": (lambda size, **kw: efficientnet_b0(**kw), 224),
    "xception": (lambda size, **kw: Xception(**kw), 256),
}


def build(arch: str, input_size: int | None = None, **arch_kw) -> tuple[nn.Module, int]:
    """(module, input size) for an architecture name."""
    if arch not in ARCHS:
        raise LFError(f"unknown baseline {arch!r}; use one of {', '.join(ARCHS)}")
    make, size = ARCHS[arch]
    size = int(input_size or size)
    return make(size, **arch_kw), size


# --------------------------------------------------------------------------- detector


def _to_input(crops: np.ndarray, size: int, device) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, size, size) float in [-1, 1] on `device`."""
    x = torch.from_numpy(np.ascontiguousarray(crops)).to(device)
    x = x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                          antialias=True)
    return x


def _check_crops(crops) -> np.ndarray:
    a = np.asarray(crops)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[-1] != 3 or a.dtype != np.uint8 or len(a) == 0:
        raise LFError(f"crops must be (N, H, W, 3) uint8 with N >= 1, got {a.shape} {a.dtype}")
    return a


class CNNDetector:
    """A CNN baseline with the latent classifiers' interface: fit / predict_proba /
    predict / save / load. `arch_kw` goes to the architecture (e.g. Xception width,
    middle). device: "cpu", "cuda"..."""

    def __init__(self, arch: str = "meso4", input_size: int | None = None, seed: int = 0,
                 lr: float = 1e-3, weight_decay: float = 1e-5, batch_size: int = 32,
                 max_epochs: int = 30, patience: int = 5, val_fraction: float = 0.1,
                 augment: bool = True, device: str = "cpu", arch_kw: dict | None = None):
        self.arch, self.seed = arch, int(seed)
        self.arch_kw = dict(arch_kw or {})
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.batch_size, self.max_epochs = int(batch_size), int(max_epochs)
        self.patience, self.val_fraction = int(patience), float(val_fraction)
        self.augment, self.device = bool(augment), str(device)
        with torch.random.fork_rng(devices=[]):  # same seed, same initial weights
            torch.manual_seed(self.seed)
            self.net, self.input_size = build(arch, input_size, **self.arch_kw)
        self.train_fake_share_ = None
        self.train_info_: dict = {}
        self.metrics = None

    def params(self):
        return {"arch": self.arch, "input_size": self.input_size, "seed": self.seed,
                "lr": self.lr, "weight_decay": self.weight_decay, "batch_size": self.batch_size,
                "max_epochs": self.max_epochs, "patience": self.patience,
                "val_fraction": self.val_fraction, "augment": self.augment, "arch_kw": self.arch_kw}

    @property
    def is_fitted(self):
        return self.train_fake_share_ is not None

    @property
    def n_parameters(self):
        return sum(p.numel() for p in self.net.parameters())

    def __repr__(self):
        return f"CNNDetector({self.arch}, {self.input_size} px, {self.n_parameters / 1e6:.2f}M params)"

    def fit(self, crops, y, groups=None, log=None, progress: bool = False,
            checkpoint=None) -> "CNNDetector":
        """progress: a tqdm bar per epoch on stderr (crops/s, ETA). checkpoint: a file
        written after every epoch (weights, optimiser, random states); a fit given an
        existing one goes on from it, to the same weights as a fit never stopped, and one
        with a larger max_epochs trains on from where it ended."""
        from tqdm import tqdm

        from ..classifiers import as_labels, fit_early_stopping, holdout_split

        crops = _check_crops(crops)
        y = as_labels(y, len(crops))
        rng = np.random.default_rng(self.seed)
        train, val = holdout_split(y, None if groups is None else np.asarray(groups),
                                    self.val_fraction, rng)
        dev = torch.device(self.device)
        torch.manual_seed(self.seed)  # dropout
        net = self.net.to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        loss_fn = nn.BCEWithLogitsLoss()
        yt = torch.from_numpy(y.astype(np.float32))
        t0 = time.perf_counter()

        epochs = [0]
        ck = _Checkpoint(checkpoint, self, crops, y)
        resume, spent = ck.load(net, opt, rng)
        if resume:
            epochs[0], t0 = len(resume["history"]), t0 - spent
            if epochs[0] > self.max_epochs:
                raise LFError(f"{checkpoint} holds {epochs[0]} epochs, more than the "
                              f"{self.max_epochs} asked for: ask for {epochs[0]} or more, "
                              "or delete it to start afresh")
            if log:
                log(f"{self.arch}: going on from {checkpoint} after epoch {epochs[0]} (of "
                    f"{self.max_epochs})" + ("; early stopping had ended that fit, so it is "
                                             "kept as it was" if resume["stopped"] else ""))

        def epoch():
            order = rng.permutation(train)
            total, seen = 0.0, 0
            epochs[0] += 1
            bar = tqdm(total=len(order), desc=f"{self.arch} epoch {epochs[0]}", unit="crop",
                       disable=not progress, leave=False)
            for s in range(0, len(order), self.batch_size):
                b = np.sort(order[s:s + self.batch_size])
                if len(b) < 2:  # BatchNorm needs two samples
                    continue
                x = _to_input(crops[b], self.input_size, dev)
                if self.augment:
                    flip = torch.from_numpy(rng.random(len(b)) < 0.5).to(dev)
                    x = torch.where(flip[:, None, None, None], x.flip(3), x)
                loss = loss_fn(net(x), yt[b].to(dev))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total, seen = total + loss.item() * len(b), seen + len(b)
                bar.update(len(b))
            bar.close()
            return total / max(seen, 1)

        def show(ep, train_loss, v):
            log(f"{self.arch} epoch {ep}: train loss {train_loss:.4f}, val loss {v:.4f}")

        info = fit_early_stopping(net, epoch, lambda: self._loss(crops[val], yt[val], loss_fn),
                                  self.max_epochs, self.patience, has_val=len(val) > 0,
                                  log=show if log else None, resume=resume,
                                  after_epoch=lambda st: ck.save(st, net, opt, rng,
                                                                 time.perf_counter() - t0))
        self.train_fake_share_ = float(y.mean())
        self.train_info_ = {"n_train": int(len(train)), "n_val": int(len(val)), **info,
                            "fit_seconds": round(time.perf_counter() - t0, 2), "device": self.device,
                            "pretrained": False}
        return self

    @torch.no_grad()
    def _logits(self, crops, batch=64):
        dev = torch.device(self.device)
        self.net.to(dev).eval()
        out = [self.net(_to_input(crops[s:s + batch], self.input_size, dev)).float().cpu()
               for s in range(0, len(crops), batch)]
        return torch.cat(out)

    def _loss(self, crops, y, loss_fn):
        return float(loss_fn(self._logits(crops), y))

    def predict_proba(self, crops) -> np.ndarray:
        """(N, 2) float64 [p_real, p_fake]."""
        if not self.is_fitted:
            raise LFError(f"{self!r} is not fitted: call fit() or load a saved baseline")
        p = torch.sigmoid(self._logits(_check_crops(crops))).double().numpy()
        return np.stack([1 - p, p], axis=1)

    def predict(self, crops, prior_fake: float = 0.5) -> np.ndarray:
        from ..classifiers import decide

        p = self.predict_proba(crops)[:, 1]
        return np.asarray(decide(p, prior_fake, self.train_fake_share_)).astype(np.int64).reshape(-1)

    def save(self, path, metrics: dict | None = None) -> Path:
        if not self.is_fitted:
            raise LFError("fit the baseline before saving it")
        if metrics is not None:
            self.metrics = json.loads(json.dumps(metrics))
        meta = {"format": FORMAT, "version": VERSION, "params": self.params(),
                "train_fake_share": self.train_fake_share_, "train_info": self.train_info_,
                "metrics": self.metrics}
        state = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        return write_lf_file(path, state, META_KEY, meta)

    @classmethod
    def load(cls, path, device: str = "cpu") -> "CNNDetector":
        meta, state = read_lf_file(path, "CNN baseline", META_KEY, FORMAT, VERSION,
                                   framework="pt")
        try:
            det = cls(**meta["params"], device=device)
            det.net.load_state_dict(state, strict=True)
        except (TypeError, RuntimeError, KeyError) as e:
            raise WeightsError(f"{path}: damaged baseline file ({e})") from e
        det.net.eval()
        det.train_fake_share_ = float(meta["train_fake_share"])
        det.train_info_ = meta.get("train_info") or {}
        det.metrics = meta.get("metrics")
        return det


class _Checkpoint:
    """A CNN fit's state after an epoch, in one torch file of our own (loaded with
    weights_only): the net, Adam, the numpy and torch random states, the early-stopping
    loop's state. It is only resumed by a fit with the same settings and data."""

    def __init__(self, path, det, crops, y):
        self.path = Path(path) if path else None
        p = det.params()
        p.pop("max_epochs")  # a larger one trains on
        self.key = json.dumps({"params": p, "n": len(crops), "n_fake": int(y.sum())},
                              sort_keys=True)

    def load(self, net, opt, rng) -> tuple[dict | None, float]:
        """The early-stopping state and the seconds the fit has taken so far; (None, 0.0)
        without a checkpoint. net, opt and rng are set to their state in it."""
        if self.path is None or not self.path.exists():
            return None, 0.0
        try:
            c = torch.load(self.path, map_location="cpu", weights_only=True)
            if c["key"] != self.key:
                raise LFError(f"{self.path} is the checkpoint of another fit (other settings "
                              "or data): delete it to start afresh")
            net.load_state_dict(c["net"])
            opt.load_state_dict(c["opt"])
            rng.bit_generator.state = json.loads(c["rng"])
            torch.set_rng_state(c["torch_rng"])
        except (OSError, EOFError, RuntimeError, KeyError, ValueError,
                pickle.UnpicklingError) as e:
            raise LFError(f"{self.path}: unreadable checkpoint ({e}); delete it to start "
                          "afresh") from e
        return c["fit"], c["seconds"]

    def save(self, st, net, opt, rng, seconds):
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        state = {"key": self.key, "net": net.state_dict(), "opt": opt.state_dict(),
                 "rng": json.dumps(rng.bit_generator.state), "torch_rng": torch.get_rng_state(),
                 "fit": st, "seconds": seconds}
        atomic_write(self.path, lambda f: torch.save(state, f))


def load_baseline(path, device: str = "cpu") -> CNNDetector:
    return CNNDetector.load(path, device=device)


# --------------------------------------------------------------------------- on crop folders


def _crops(path, split):
    from .extract import load_codes

    c = load_codes(path)
    if c.projector.get("kind") != "crops":
        raise LFError(f"{path} holds {c.projector.get('name')} codes; the CNN baselines need "
                      "aligned crops: lf extract MANIFEST --projector crops -o CROPS")
    return c, c.where(split, labelled=True)


def train_baseline(crops_path, arch: str, out, split: str = "train", log=None,
                   progress: bool = False, **kw) -> CNNDetector:
    """Train a baseline on the `split` rows of a crops folder (extract + CropProjector);
    saved at `out` with metrics like lf_core.lab.evaluate.train_detector's. kw: CNNDetector's
    parameters; progress: a bar per epoch. A killed fit resumes from OUT's .ckpt file
    beside it (kept: a later call with more epochs trains on)."""
    log = log or (lambda m: print(m, file=sys.stderr))
    codes, tr = _crops(crops_path, split)
    if len(tr) == 0:
        raise LFError(f"{crops_path}: no labelled face in the {split} split")
    det = CNNDetector(arch, **kw)
    ck = Path(out).with_suffix(".ckpt")  # after each epoch; the same command goes on from it
    log(f"training {det!r} from scratch on {len(tr)} crops ({split} split); checkpoint {ck}")
    det.fit(tr.codes, tr.labels, tr.groups, log=log, progress=progress, checkpoint=ck)
    m = {"projector": codes.projector, "baseline": arch, "pretrained": False,
         "data": {"codes": str(Path(crops_path).resolve()), "manifest": codes.meta.get("manifest"),
                  "manifest_sha256": codes.meta.get("manifest_sha256")},
         "split": split, "n_train": int(len(tr)), "n_real": int((tr.labels == 0).sum()),
         "n_fake": int((tr.labels == 1).sum())}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    det.save(out, metrics=m)
    return det


def evaluate_baseline(crops_path, detector, split: str = "test", prior_fake: float = 0.5,
                      bootstrap: int = 0, work=None, progress: bool = False) -> dict:
    """lf_core.lab.evaluate.metrics of a baseline on the `split` rows of a crops folder, or of
    a manifest (its `split` faces are aligned into `work`, default a temporary folder). With
    bootstrap = B > 0, the AUC's 95% interval over B resamples of the source videos."""
    import tempfile
    from contextlib import nullcontext

    from ..classifiers import prior_threshold
    from .data import split_of
    from .evaluate import add_auc_interval, metrics, refuse_training_faces
    from .extract import extract, is_codes_folder
    from .projectors import CropProjector

    det = detector if isinstance(detector, CNNDetector) else load_baseline(detector)
    if not is_codes_folder(crops_path) and Path(crops_path).is_file():  # a manifest
        with nullcontext() if work else tempfile.TemporaryDirectory(prefix="lf-eval-") as tmp:
            folder = Path(work) if work else Path(tmp) / "crops"
            size = ((det.metrics or {}).get("projector") or {}).get("size", 256)
            extract(crops_path, CropProjector(size), folder, split=split, progress=progress)
            res = evaluate_baseline(folder, det, split, prior_fake, bootstrap)
        return {**res, "data": str(crops_path)}
    codes, ev = _crops(crops_path, split)
    refuse_training_faces(det.metrics or {}, codes, ev)
    if len(ev) == 0:
        raise LFError(f"{crops_path}: no labelled face in the {split} split")
    p = det.predict_proba(ev.codes)[:, 1]
    res = metrics(ev.labels, p, ev.groups, ev.paths,
                  threshold=prior_threshold(prior_fake, det.train_fake_share_))
    add_auc_interval(res, ev.labels, p, ev.groups, bootstrap)
    failed = [r for r in codes.failed if split in (None, "all") or split_of(r["group"]) == split]
    return {"detector": det.arch, "classifier": det.arch, "projector": codes.projector.get("name"),
            "data": str(crops_path), "split": split, "prior_fake": prior_fake,
            "n_failed": len(failed), "failed": failed, **res}


__all__ = ["ARCHS", "CNNDetector", "Meso4", "Xception", "build", "efficientnet_b0",
           "evaluate_baseline", "load_baseline", "train_baseline"]
