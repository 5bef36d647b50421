"""Reconstruction losses and metrics.

The paper's perceptual term is LPIPS. The lpips package ships its linear heads but its
VGG/AlexNet backbone is ImageNet weights that torchvision downloads on first use, which
this project never does on its own. So `perceptual()` returns real LPIPS when the backbone
file is already on disk, and otherwise a clearly labelled fallback, 1 - MS-SSIM (three
scales), which needs no download. Nothing here ever calls a random-backbone score LPIPS.
"""

import os
from pathlib import Path
from types import SimpleNamespace

import torch
from torch.nn import functional as F

from .nets import frozen

LPIPS_BACKBONES = {"vgg": "vgg16-397923af.pth", "alex": "alexnet-owt-7be5be79.pth"}


def _gauss(size=11, sigma=1.5):
    x = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


_G = _gauss()


def _band(n, like):
    """(n, n - 10) matrix whose column j holds the 11 Gaussian taps at rows j .. j + 10:
    x @ _band(W) filters the last axis of x (valid part only)."""
    key = (n, like.dtype, like.device)
    if key not in _BANDS:  # a few sizes (the MS-SSIM scales): built once
        b = torch.zeros(n, n - 10, dtype=like.dtype, device=like.device)
        j = torch.arange(n - 10, device=like.device)
        for t in range(11):
            b[j + t, j] = _G[t].to(like)
        _BANDS[key] = b
    return _BANDS[key]


_BANDS = {}


def _filter(x):
    """Gaussian window mean of every channel. x: (N, K, H, W) -> (N, K, H - 10, W - 10).
    Two matmuls with banded matrices: the same sums as a separable depthwise convolution,
    faster on a CPU forward and backward (the MS-SSIM term: 23 -> 19 ms on 2 cores, A/B
    in one process; its absolute time: benchmarks/speed/bench_core.py, "perceptual term").
    On a GPU they run in float64: in TF32 (10-bit mantissa; train_gen turns it on for
    matmuls), SSIM's variances E[x^2] - E[x]^2 lose their digits. Emulated on a CPU, SSIM
    moved by 0.026 on average, and joint training diverged within 200 steps on a GPU;
    float64 matmuls never take TF32, whatever the backend flags say."""
    h, w = x.shape[-2:]
    y = x if x.device.type == "cpu" else x.double()
    return (_band(h, y).t() @ (y @ _band(w, y))).to(x.dtype)  # (H', H) @ (N, K, H, W')


def _stats_b(b):
    """The target's own local statistics (mean, mean of squares), (N, 2C, H', W')."""
    b = (b + 1) / 2
    return _filter(torch.cat([b, b * b], 1))


def ssim(a, b, reduce=True, stats_b=None):
    """SSIM of images in [-1, 1]. a, b: (N, 3, H, W) -> (N,) or scalar mean. stats_b:
    _stats_b(b) when b is a fixed target (an inversion computes it once, not every step)."""
    a, b = (a + 1) / 2, (b + 1) / 2
    c = a.shape[1]
    if stats_b is None:  # the five local statistics in one grouped pass
        mu_a, mu_b, aa, bb, ab = _filter(torch.cat([a, b, a * a, b * b, a * b], 1)).split(c, 1)
    else:
        mu_a, aa, ab = _filter(torch.cat([a, a * a, a * b], 1)).split(c, 1)
        mu_b, bb = stats_b.split(c, 1)
    saa, sbb, sab = aa - mu_a**2, bb - mu_b**2, ab - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    m = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2))
    m = m.mean([1, 2, 3])
    return m.mean() if reduce else m


def psnr(a, b, reduce=True):
    """PSNR in dB of images in [-1, 1] (peak-to-peak 2). a, b: (N, 3, H, W)."""
    mse = (a.clamp(-1, 1) - b.clamp(-1, 1)).pow(2).mean([1, 2, 3])
    p = 10 * torch.log10(4.0 / mse.clamp_min(1e-10))
    return p.mean() if reduce else p


def ms_ssim_loss(a, b, scales=3):
    """1 - mean SSIM over `scales` dyadic scales. a, b: (N, 3, H, W) in [-1, 1] -> (N,).
    The same target tensor b (without grad, unchanged) as on the last call, as in the steps
    of one inversion, reuses its pyramid and statistics."""
    def pyramid():  # [(image, statistics) per scale]
        bs = [b]
        for _ in range(1, scales):
            bs.append(F.avg_pool2d(bs[-1], 2))
        return [(x, _stats_b(x)) for x in bs]

    loss = 0
    for s, (bs, st) in enumerate(frozen(_TARGET, f"pyramid{scales}", pyramid, b)):
        if s:
            a = F.avg_pool2d(a, 2)
        loss = loss + (1 - ssim(a, bs, reduce=False, stats_b=st))
    return loss / scales


_TARGET = SimpleNamespace()  # nets.frozen's cache of the last target's pyramid (held by reference)


class Perceptual(torch.nn.Module):
    """forward(a, b) -> (N,) distance. `name` says what it is; `is_lpips` whether it is LPIPS."""

    def __init__(self, net="vgg"):
        super().__init__()
        self.model = None
        path = lpips_backbone_path(net)
        if path is not None:
            import lpips

            self.model = lpips.LPIPS(net=net, verbose=False).eval()
            self.model.requires_grad_(False)
            self.name = f"LPIPS ({net})"
        else:
            self.name = "1 - MS-SSIM (LPIPS backbone not installed)"

    @property
    def is_lpips(self):
        return self.model is not None

    def forward(self, a, b):
        if self.model is not None:
            return self.model(a, b, normalize=False).flatten()
        return ms_ssim_loss(a, b)


def lpips_backbone_path(net="vgg"):
    """The torchvision ImageNet weights LPIPS needs, if already on disk; else None."""
    hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub"
    p = hub / "checkpoints" / LPIPS_BACKBONES[net]
    return p if p.is_file() else None


_PERCEPTUAL = {}


def perceptual(net="vgg") -> Perceptual:
    """Shared instance (the backbone is loaded once per process)."""
    if net not in _PERCEPTUAL:
        _PERCEPTUAL[net] = Perceptual(net)
    return _PERCEPTUAL[net]
