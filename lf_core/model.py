"""The projector bundle: generator G, encoder E (or None), mean code, provenance.

    model = load_model()                 # the embedded default (weights/), or $LF_WEIGHTS
    model = load_model("ffhq.pt")        # an official checkpoint the user brings

Official checkpoints are recognised from their keys (lf_core.loaders). idinvert needs its
encoder too: load_model("styleganinv_ffhq256_generator.pth",
encoder="styleganinv_ffhq256_encoder.pth"), or $LF_ENCODER.
"""

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import WeightsError
from .layout import N_LATENT

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "lf-compact-256.safetensors"


@dataclass
class Model:
    G: torch.nn.Module  # (N, 14, 512) -> (N, 3, 256, 256) in ~[-1, 1]
    E: torch.nn.Module | None  # (N, 3, 256, 256) -> (N, 14, 512)
    w_avg: torch.Tensor  # (14, 512) mean code
    kind: str  # "lf" | "rosinality" | "nvlabs" | "idinvert"
    path: str
    meta: dict = field(default_factory=dict)

    @property
    def name(self):
        return f"{Path(self.path).name} ({self.kind})"

    @property
    def n_latent(self):
        return int(self.w_avg.shape[0])


_CACHE, _LOCK = {}, threading.Lock()


def default_weights() -> Path:
    return Path(os.environ.get("LF_WEIGHTS") or DEFAULT_WEIGHTS)


def load_model(path=None, encoder=None) -> Model:
    """Load (once per process) the generator + encoder at `path`; default: embedded."""
    from .loaders import load_checkpoint

    path = Path(path) if path else default_weights()
    encoder = encoder or os.environ.get("LF_ENCODER") or None
    key = (str(path), str(encoder))
    with _LOCK:
        if key not in _CACHE:
            if not path.exists():
                raise WeightsError(
                    f"weights not found: {path}. The embedded model ships in weights/; for an "
                    "official checkpoint give its path (or set LF_WEIGHTS)")
            ld = load_checkpoint(path, encoder=encoder) if encoder else load_checkpoint(path)
            if ld.w_avg.shape[0] != N_LATENT:
                raise WeightsError(f"{path.name}: this tool needs a 256 px generator with "
                                   f"{N_LATENT} W+ codes; this one has {ld.w_avg.shape[0]}")
            _CACHE[key] = Model(ld.G, ld.E, ld.w_avg.float(), ld.kind, str(path), ld.meta)
        return _CACHE[key]
