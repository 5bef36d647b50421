"""Reconstruction losses and metrics.

The paper's perceptual term is LPIPS. The lpips package ships its linear heads but its
VGG/AlexNet backbone is ImageNet weights that torchvision downloads on first use, which
this project never does on its own. So `perceptual()` returns real LPIPS when the backbone
file is already on disk, and otherwise a clearly labelled fallback, 1 - MS-SSIM (three
scales), which needs no download. Nothing here ever calls a random-backbone score LPIPS.
"""

import os
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

LPIPS_BACKBONES = {"vgg": "vgg16-397923af.pth", "alex": "alexnet-owt-7be5be79.pth"}


def _gauss(size=11, sigma=1.5):
    x = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


_G = _gauss()


def ssim(a, b, reduce=True):
    """SSIM of images in [-1, 1]. a, b: (N, 3, H, W) -> (N,) or scalar mean."""
    a, b = (a + 1) / 2, (b + 1) / 2
    c = a.shape[1]
    k = 5 * c  # the five local statistics filtered in one pass (1.5x faster than five)
    g = _G.to(a)
    kx = g[None, None, None, :].expand(k, 1, 1, -1)
    ky = g[None, None, :, None].expand(k, 1, -1, 1)
    s = torch.cat([a, b, a * a, b * b, a * b], 1)  # (N, 5C, H, W)
    s = F.conv2d(F.conv2d(s, kx, groups=k), ky, groups=k)
    mu_a, mu_b, aa, bb, ab = s.split(c, 1)
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


def image_scores(x, y):
    """PSNR (dB) and SSIM per image of uint8 batches x, y: (N, H, W, 3) -> ((N,), (N,))."""
    from .invert import to_tensor

    a, b = to_tensor(x), to_tensor(y)
    return psnr(b, a, reduce=False).numpy(), ssim(b, a, reduce=False).numpy()


def mean_ci95(v) -> tuple[float, float]:
    """Mean and the half-width of its normal-approximation 95% confidence interval."""
    v = np.asarray(v, np.float64)
    half = 1.96 * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0.0
    return float(v.mean()), float(half)


def ms_ssim_loss(a, b, scales=3):
    """1 - mean SSIM over `scales` dyadic scales. a, b: (N, 3, H, W) in [-1, 1] -> (N,)."""
    loss = 0
    for s in range(scales):
        if s:
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
        loss = loss + (1 - ssim(a, b, reduce=False))
    return loss / scales


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
