"""Projectors: aligned face crops -> fixed-size codes that a light classifier can read.

    proj = StyleGANProjector(load_model(), steps=0)      # encoder only (or k inversion steps)
    codes = proj.project(crops)                          # (N, 256, 256, 3) uint8 -> (N, 14, 512)

    pca = PCAProjector(n_components=512).fit(real_crops)  # unsupervised, real faces only
    codes = pca.project(crops)                            # (N, 512)
    pca.save("pca.safetensors"); pca = load_projector("pca.safetensors")
    pca.reconstruct(codes)                                # (N, 64, 64, 3) uint8, for figures

    vq = VQVAEProjector.from_file("runs/vqvae/vqvae.safetensors")  # made by lf train-vqvae
    codes = vq.project(crops)                             # (N, 1280) codebook indices
    vq.reconstruct(codes)                                 # (N, 128, 128, 3) uint8

Every projector has a `kind` ("stylegan", "pca", "vqvae", "crops"), a `meta()` dict (what
made the codes: it travels with the codes and into a detector's metrics), `project`, `fit`
(a no-op where nothing is learnt; `needs_fit` says whether it must be called) and
`save`/`load`: one `.safetensors` file, arrays as tensors plus a JSON header under
"lf_projector"; nothing in it is executed on load (no pickle). A VQ-VAE-2 takes minutes
to hours to train, so it is never fitted during extraction: `lf train-vqvae`
(lf_core.lab.vqvae) trains it and writes its file, which extraction loads (`lf extract
--projector vqvae --projector-file FILE`).

Adding a projector: subclass `Projector`, set `kind`, implement `project` (and `fit`,
`_arrays`, `_from_saved` when it learns something), and register the class in PROJECTORS.
`make_projector`, `load_projector`, `lf extract --projector` and the code folders of
lf_core.lab.extract then take it as is.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Iterable

import numpy as np

from ..artifacts import digest, read_lf_file, write_lf_file
from ..errors import LFError, WeightsError

FORMAT = "latentforensics.projector"
VERSION = 1
_META_KEY = "lf_projector"
CROP = 256  # aligned crop size every projector takes


class ProjectorError(LFError):
    """A projector used wrongly (not fitted, bad crops, unknown or unavailable kind)."""


def check_crops(crops) -> np.ndarray:
    """(N, 256, 256, 3) uint8, N >= 0; one (256, 256, 3) crop is given a batch axis."""
    a = np.asarray(crops)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[1:] != (CROP, CROP, 3) or a.dtype != np.uint8:
        raise ProjectorError(f"crops must be (N, {CROP}, {CROP}, 3) uint8 aligned faces, got "
                             f"{a.shape} {a.dtype}")
    return a


class Projector:
    """Base class. Subclasses set `kind` and implement `project`."""

    kind: ClassVar[str] = ""
    needs_fit: ClassVar[bool] = False

    @property
    def name(self) -> str:
        """Short human-readable description, e.g. 'stylegan (encoder only)'."""
        return self.kind

    @property
    def is_fitted(self) -> bool:
        return True

    @property
    def code_shape(self) -> tuple[int, ...]:
        """Shape of one code (without the batch axis)."""
        raise NotImplementedError

    def meta(self) -> dict:
        """JSON-able description of what makes the codes: kind + parameters + provenance.
        Two projectors give comparable codes when their `identity()` match."""
        return {"kind": self.kind, "name": self.name, "code_shape": list(self.code_shape)}

    def identity(self) -> dict:
        """The subset of meta() that must match for codes to be comparable."""
        m = self.meta()
        return {k: m[k] for k in m if k not in ("name",)}

    def params(self) -> dict:
        """Constructor parameters that shape the codes (fit results excluded)."""
        return {}

    def fit(self, crops) -> "Projector":
        return self

    def project(self, crops) -> np.ndarray:
        raise NotImplementedError

    # -- saving: metadata + arrays in one safetensors file
    def _arrays(self) -> dict[str, np.ndarray]:
        return {}

    @classmethod
    def _from_saved(cls, meta: dict, arrays: dict, **kw) -> "Projector":
        raise NotImplementedError

    def save(self, path) -> Path:
        if not self.is_fitted:
            raise ProjectorError(f"{self.kind} projector is not fitted: call fit() before save()")
        path = Path(path)
        arrays = {k: np.ascontiguousarray(v) for k, v in self._arrays().items()}
        if not arrays:  # safetensors needs no tensor, but keep one so every file has a body
            arrays = {"_empty": np.zeros(0, np.float32)}
        header = {"format": FORMAT, "version": VERSION, **self.meta()}
        return write_lf_file(path, arrays, _META_KEY, header)

    @classmethod
    def load(cls, path, **kw) -> "Projector":
        proj = load_projector(path, **kw)
        if cls is not Projector and not isinstance(proj, cls):
            raise WeightsError(f"{path} holds a {proj.kind!r} projector, not a {cls.kind!r} one")
        return proj

    def __repr__(self):
        return f"<{type(self).__name__} {self.name}>"


# --------------------------------------------------------------------------- StyleGAN


class StyleGANProjector(Projector):
    """W+ codes (N, 14, 512) by lf_core.inversion: encoder only (steps=0) or the encoder then
    `steps` optimisation steps per face (inversion.run_batch: a few faces per batch, each code
    as inversion.invert would give it alone; `invert_kw` goes to it, e.g. lr, a_dom, seed, or
    passes: encoder refinement passes, which apply with steps=0 too).

    meta() names the weights file and its sha256 prefix: codes from another weights file
    (the embedded generator is retrained from time to time) are not comparable.
    """

    kind = "stylegan"

    def __init__(self, model=None, steps: int = 0, batch: int = 16, **invert_kw):
        if int(steps) < 0:
            raise ProjectorError(f"steps must be >= 0, got {steps}")
        if model is None:
            from ..model import load_model

            model = load_model()
        self.model = model
        self.steps = int(steps)
        self.batch = max(1, int(batch))
        # passes=0 is the default: left out, so the identity of such codes stays as it was
        self.invert_kw = {k: v for k, v in invert_kw.items() if (k, v) != ("passes", 0)}

    @property
    def name(self):
        from ..inversion import code_name

        return code_name(self.model, self.steps, self.invert_kw)

    @property
    def code_shape(self):
        return (self.model.n_latent, int(self.model.w_avg.shape[1]))

    def meta(self):
        from ..inversion import code_meta

        return code_meta(self.model, self.steps, self.invert_kw)

    def identity(self):
        m = self.meta()
        return {k: m[k] for k in ("kind", "steps", "weights_sha256", "code_shape", "invert_kw")}

    def project(self, crops):
        from .. import inversion as inv

        crops = check_crops(crops)
        if len(crops) == 0:
            return np.zeros((0, *self.code_shape), np.float32)
        if self.steps == 0:
            out = [inv.encode(self.model, crops[i:i + self.batch],
                                 self.invert_kw.get("passes", 0))
                   for i in range(0, len(crops), self.batch)]
            return np.concatenate(out).astype(np.float32, copy=False)
        out = [inv.run_batch(self.model, crops[i:i + self.batch], steps=self.steps,
                                **self.invert_kw) for i in range(0, len(crops), self.batch)]
        return np.concatenate(out).astype(np.float32, copy=False)

    @classmethod
    def _from_saved(cls, meta, arrays, model=None, **kw):
        """Reload with the same weights file (or `model`, when given); warns nothing, but a
        different sha256 shows in meta()['weights_sha256'] and fails code comparisons."""
        if model is None:
            from ..model import load_model

            model = load_model(meta.get("weights_path"))
        return cls(model, steps=meta.get("steps", 0), **(meta.get("invert_kw") or {}))


# --------------------------------------------------------------------------- PCA


def downsample(crops, size: int) -> np.ndarray:
    """(N, 256, 256, 3) uint8 -> (N, size * size * 3) float32 in [0, 1] (area averaging)."""
    import cv2

    crops = check_crops(crops)
    if size == CROP:
        small = crops
    else:
        small = np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA)
                          for c in crops]) if len(crops) else np.zeros((0, size, size, 3), np.uint8)
    return small.reshape(len(crops), -1).astype(np.float32) / 255.0


def to_input(crops, size: int):
    """(N, 256, 256, 3) uint8 -> (N, 3, size, size) float32 in [-1, 1] (area downsampling):
    the input of the vqvae projector's network."""
    import torch

    x = torch.from_numpy(downsample(crops, size)).view(len(crops), size, size, 3)
    return x.permute(0, 3, 1, 2).mul(2).sub(1).contiguous()


class PCAProjector(Projector):
    """Linear baseline: principal components of real faces' pixels.

    Each crop is area-downsampled to `size` x `size` (64 by default: 12,288 values, so a
    512-component fit on thousands of faces takes minutes on a CPU instead of hours, and
    the face's structure is kept while fine texture is dropped), scaled to [0, 1] and
    projected on the first `n_components` components: codes (N, n_components) float32,
    not whitened (raw coordinates; the classifiers standardise).

    Fitted with sklearn's IncrementalPCA on *real* faces only (the `fit` caller's duty:
    lf_core.lab.extract fits it on the real faces of the manifest's train split), in
    mini-batches of `batch_size` (>= n_components), so memory stays bounded. Saved as
    safetensors: components (k, D), mean (D,), explained_variance (k,).
    """

    kind = "pca"
    needs_fit = True

    def __init__(self, n_components: int = 512, size: int = 64, batch_size: int | None = None):
        self.n_components = int(n_components)
        self.size = int(size)
        if self.n_components < 1 or not 4 <= self.size <= CROP:
            raise ProjectorError(f"PCA needs n_components >= 1 and 4 <= size <= {CROP}, got "
                                 f"{n_components}, {size}")
        if self.n_components > self.size * self.size * 3:
            raise ProjectorError(f"PCA of {self.size} px crops has at most "
                                 f"{self.size * self.size * 3} components, not {n_components}")
        self.batch_size = int(batch_size or max(2 * self.n_components, 256))
        if self.batch_size < self.n_components:
            raise ProjectorError(f"batch_size ({self.batch_size}) must be >= n_components "
                                 f"({self.n_components})")
        self.components_ = None  # (k, D) float32
        self.mean_ = None  # (D,) float32
        self.explained_variance_ = None  # (k,)
        self.explained_variance_ratio_ = None  # (k,)
        self.n_samples_seen_ = 0

    @property
    def name(self):
        return f"pca ({self.n_components} components of {self.size}x{self.size} px)"

    @property
    def is_fitted(self):
        return self.components_ is not None

    @property
    def code_shape(self):
        return (self.n_components,)

    def meta(self):
        m = {**super().meta(), "n_components": self.n_components, "size": self.size,
             "n_samples_seen": int(self.n_samples_seen_)}
        if self.is_fitted:
            m["fit_sha256"] = digest(self.components_.tobytes()[:1 << 20] + self.mean_.tobytes(), 16)
            m["explained_variance_ratio_sum"] = round(float(self.explained_variance_ratio_.sum()), 6)
        return m

    def identity(self):
        m = self.meta()
        return {k: m.get(k) for k in ("kind", "n_components", "size", "fit_sha256")}

    def params(self):
        return {"n_components": self.n_components, "size": self.size}

    def fit(self, crops) -> "PCAProjector":
        """crops: (N, 256, 256, 3) uint8, or an iterable of such batches (streamed, so a
        large set never sits in memory at once). Needs N >= n_components faces."""
        from sklearn.decomposition import IncrementalPCA

        batches = [crops] if isinstance(crops, np.ndarray) else crops
        ipca = IncrementalPCA(n_components=self.n_components, batch_size=self.batch_size)
        # Batches of `batch_size` faces; a flush always leaves >= n_components faces
        # behind, so the last partial_fit gets enough of them and no face is left out.
        buf, pending, n = [], 0, 0
        for b in _iter_batches(batches):
            buf.append(downsample(b, self.size))
            pending += len(b)
            while pending >= self.batch_size + self.n_components:
                X = np.concatenate(buf)
                ipca.partial_fit(X[:self.batch_size])
                n += self.batch_size
                buf, pending = [X[self.batch_size:]], len(X) - self.batch_size
        if n + pending < self.n_components:
            raise ProjectorError(f"PCA with {self.n_components} components needs at least "
                                 f"that many faces; got {n + pending}")
        if pending:
            ipca.partial_fit(np.concatenate(buf))
            n += pending
        self.components_ = ipca.components_.astype(np.float32)
        self.mean_ = ipca.mean_.astype(np.float32)
        self.explained_variance_ = ipca.explained_variance_.astype(np.float32)
        self.explained_variance_ratio_ = ipca.explained_variance_ratio_.astype(np.float32)
        self.n_samples_seen_ = int(n)
        return self

    def _check(self):
        if not self.is_fitted:
            raise ProjectorError("PCA projector is not fitted: fit() it on real faces or load a "
                                 "saved one")

    def project(self, crops):
        self._check()
        X = downsample(crops, self.size)
        return ((X - self.mean_) @ self.components_.T).astype(np.float32)

    def reconstruct(self, codes, full_size: bool = False) -> np.ndarray:
        """codes (N, k) -> (N, size, size, 3) uint8 (or 256 x 256, bicubic, with full_size)."""
        import cv2

        self._check()
        c = np.asarray(codes, np.float32)
        if c.ndim == 1:
            c = c[None]
        if c.ndim != 2 or c.shape[1] != self.n_components:
            raise ProjectorError(f"codes must be (N, {self.n_components}), got {c.shape}")
        X = c @ self.components_ + self.mean_
        img = np.clip(np.rint(X * 255.0), 0, 255).astype(np.uint8)
        img = img.reshape(len(c), self.size, self.size, 3)
        if full_size and self.size != CROP:
            img = np.stack([cv2.resize(i, (CROP, CROP), interpolation=cv2.INTER_CUBIC)
                            for i in img]) if len(img) else np.zeros((0, CROP, CROP, 3), np.uint8)
        return img

    def _arrays(self):
        return {"components": self.components_, "mean": self.mean_,
                "explained_variance": self.explained_variance_,
                "explained_variance_ratio": self.explained_variance_ratio_}

    @classmethod
    def _from_saved(cls, meta, arrays, **kw):
        p = cls(meta["n_components"], meta["size"])
        k, d = p.n_components, p.size * p.size * 3
        comp, mean = arrays["components"], arrays["mean"]
        if comp.shape != (k, d) or mean.shape != (d,):
            raise ValueError(f"components {comp.shape} / mean {mean.shape} do not match "
                             f"{k} components of {p.size} px")
        p.components_, p.mean_ = comp.astype(np.float32), mean.astype(np.float32)
        p.explained_variance_ = arrays["explained_variance"].astype(np.float32)
        p.explained_variance_ratio_ = arrays["explained_variance_ratio"].astype(np.float32)
        p.n_samples_seen_ = int(meta.get("n_samples_seen", 0))
        return p


def _iter_batches(batches: Iterable):
    for b in batches:
        b = check_crops(b)
        if len(b):
            yield b


# --------------------------------------------------------------------------- VQ-VAE-2

VQVAE_FILE = Path("runs/vqvae/vqvae.safetensors")  # where `lf train-vqvae` writes it by default


class VQVAEProjector(Projector):
    """Discrete baseline: the codebook indices of a compact two-level VQ-VAE-2
    (lf_core.lab.vqvae) trained on real faces at 128 px: top (16, 16) and bottom (32, 32) index
    grids, flattened and concatenated (top first) into (1280,) float32 codes, each an
    integer in [0, n_embed).

    Trained by `lf train-vqvae` (minutes to hours), never inside extraction: load its file
    with `VQVAEProjector.from_file` (or load_projector). Saved as safetensors: the network's
    state dict (float32, keys "net.*") and its sizes + training summary in the header;
    meta() carries a sha256 prefix of the weights, so codes of another training run do not
    compare equal.
    """

    kind = "vqvae"

    def __init__(self, net=None, info: dict | None = None, batch: int = 32):
        if net is None:
            raise ProjectorError("the vqvae projector is trained, not fitted during extraction: "
                                 "train it with `lf train-vqvae`, then load its file "
                                 f"(--projector-file {VQVAE_FILE}, or VQVAEProjector.from_file)")
        self.net = net
        self.info = dict(info or {})  # training summary: step, val PSNR...
        self.batch = max(1, int(batch))
        self._digest = None

    @classmethod
    def from_file(cls, path=None) -> "VQVAEProjector":
        """The projector saved by `lf train-vqvae` (default runs/vqvae/vqvae.safetensors);
        WeightsError, saying how to make it, when the file is missing."""
        path = Path(path or VQVAE_FILE)
        if not path.is_file():
            raise WeightsError(f"VQ-VAE-2 projector file not found: {path}; train it first with "
                               f"`lf train-vqvae --out {path.parent}` (it writes "
                               f"{path.parent / 'vqvae.safetensors'}) and pass that file")
        return cls.load(path)

    @property
    def config(self) -> dict:
        return dict(self.net.config)

    @property
    def name(self):
        t, b = self.net.code_sizes
        step = f", step {self.info['step']}" if "step" in self.info else ""
        return (f"vqvae (VQ-VAE-2 of {self.net.size} px faces: {t}x{t} + {b}x{b} indices of "
                f"{self.net.n_embed}{step})")

    @property
    def code_shape(self):
        t, b = self.net.code_sizes
        return (t * t + b * b,)

    def meta(self):
        if self._digest is None:
            self._digest = digest((k.encode() + v.tobytes()
                                   for k, v in sorted(self._arrays().items())), 16)
        return {**super().meta(), "config": self.config, "weights_sha256": self._digest,
                "train": self.info}

    def identity(self):
        m = self.meta()
        return {k: m[k] for k in ("kind", "code_shape", "config", "weights_sha256")}

    def params(self):
        return {"config": self.config}

    def project(self, crops):
        import torch

        crops = check_crops(crops)
        out = []
        self.net.eval()
        with torch.no_grad():
            for i in range(0, len(crops), self.batch):
                *_, id_t, id_b = self.net.encode(to_input(crops[i:i + self.batch], self.net.size))
                out.append(torch.cat([id_t.flatten(1), id_b.flatten(1)], 1).numpy())  # (B, 1280)
        if not out:
            return np.zeros((0, *self.code_shape), np.float32)
        return np.concatenate(out).astype(np.float32)

    def reconstruct(self, codes) -> np.ndarray:
        """codes (N, 1280) -> (N, 128, 128, 3) uint8, for figures."""
        import torch

        c = np.asarray(codes, np.float32)
        if c.ndim == 1:
            c = c[None]
        k, (t, b) = self.net.n_embed, self.net.code_sizes
        if c.ndim != 2 or c.shape[1] != self.code_shape[0]:
            raise ProjectorError(f"codes must be (N, {self.code_shape[0]}), got {c.shape}")
        if np.any(c != np.rint(c)) or c.min(initial=0) < 0 or c.max(initial=0) >= k:
            raise ProjectorError(f"vqvae codes are codebook indices: integers in [0, {k})")
        ind = torch.from_numpy(c.astype(np.int64))
        self.net.eval()
        with torch.no_grad():
            y = self.net.decode_code(ind[:, :t * t].view(-1, t, t), ind[:, t * t:].view(-1, b, b))
        y = (y.clamp(-1, 1) + 1) * 127.5  # (N, 3, S, S)
        return y.round().to(torch.uint8).permute(0, 2, 3, 1).numpy()

    def _arrays(self):
        return {f"net.{k}": v.detach().cpu().float().numpy()
                for k, v in self.net.state_dict().items()}

    @classmethod
    def _from_saved(cls, meta, arrays, **kw):
        import torch

        from .vqvae import VQVAE

        net = VQVAE(**meta["config"])
        state = {k[4:]: torch.from_numpy(v.copy()) for k, v in arrays.items()
                 if k.startswith("net.")}
        try:
            net.load_state_dict(state)
        except RuntimeError as e:  # missing / unexpected keys, wrong shapes
            raise ValueError(str(e).splitlines()[0]) from e
        p = cls(net.eval(), info=meta.get("train"), **kw)
        if p.meta()["weights_sha256"] != meta.get("weights_sha256"):
            raise ValueError("weights do not match their sha256 in the header")
        return p


# --------------------------------------------------------------------------- crops


class CropProjector(Projector):
    """The aligned crops themselves, resized to `size` (N, size, size, 3) uint8: input for
    the CNN baselines (lf_core.lab.baselines), so they reuse extract's alignment, failure list,
    resume and group splits. Not a latent code: `lf train` refuses these folders."""

    kind = "crops"

    def __init__(self, size: int = CROP):
        self.size = int(size)
        if not 16 <= self.size <= CROP:
            raise ProjectorError(f"crop size must be in [16, {CROP}], got {size}")

    @property
    def name(self):
        return f"aligned crops ({self.size} px)"

    @property
    def code_shape(self):
        return (self.size, self.size, 3)

    def meta(self):
        return {**super().meta(), "size": self.size}

    def project(self, crops):
        import cv2

        crops = check_crops(crops)
        if self.size == CROP:
            return crops.copy()
        if not len(crops):
            return np.zeros((0, *self.code_shape), np.uint8)
        return np.stack([cv2.resize(c, (self.size, self.size), interpolation=cv2.INTER_AREA)
                         for c in crops])

    @classmethod
    def _from_saved(cls, meta, arrays, **kw):
        return cls(meta.get("size", CROP))


# --------------------------------------------------------------------------- registry

PROJECTORS: dict[str, type[Projector]] = {
    "stylegan": StyleGANProjector, "pca": PCAProjector, "vqvae": VQVAEProjector,
    "crops": CropProjector}

# Known kinds not implemented yet: name -> why, shown to the user as is (none at present).
PLANNED: dict[str, str] = {}


def make_projector(kind: str, **kw) -> Projector:
    """A new projector of `kind` with its parameters (stylegan: model, steps; pca:
    n_components, size; vqvae: net, a trained lf_core.lab.vqvae.VQVAE (or use
    VQVAEProjector.from_file); crops: size). ProjectorError for a planned or unknown kind."""
    if kind in PLANNED:
        raise ProjectorError(PLANNED[kind])
    if kind not in PROJECTORS:
        raise ProjectorError(f"unknown projector {kind!r}; known: {', '.join(PROJECTORS)}")
    return PROJECTORS[kind](**kw)


def read_header(path) -> tuple[dict, dict]:
    """(header, arrays) of a saved projector; WeightsError for anything else."""
    meta, arrays = read_lf_file(path, "projector", _META_KEY, FORMAT, VERSION)
    arrays.pop("_empty", None)
    return meta, arrays


def load_projector(path, **kw) -> Projector:
    """Load a projector saved by `Projector.save`. kw: e.g. model= for stylegan."""
    meta, arrays = read_header(path)
    kind = meta.get("kind")
    if kind in PLANNED:
        raise ProjectorError(PLANNED[kind])
    if kind not in PROJECTORS:
        raise WeightsError(f"{path}: unknown projector kind {kind!r}")
    try:
        return PROJECTORS[kind]._from_saved(meta, arrays, **kw)
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"{path}: damaged {kind!r} projector file ({e})") from e


__all__ = ["CropProjector", "PCAProjector", "PLANNED", "PROJECTORS", "Projector",
           "ProjectorError", "StyleGANProjector", "VQVAEProjector", "check_crops",
           "load_projector", "make_projector"]
