"""In-Domain GAN inversion (idinvert, genforce) for FFHQ 256: StyleGAN v1 generator, its
image -> W+ encoder and its VGG16 perceptual model, in pure torch.

Module and key names follow genforce/idinvert_pytorch exactly, so the published
`styleganinv_ffhq256_generator.pth`, `styleganinv_ffhq256_encoder.pth` and `vgg16.pth`
load with strict=True (the listing in shared/reference/checkpoint-keys/ is the contract).

Generator (FFHQ 256 settings: repeat_w=False, final_tanh=True, fused_scale='auto',
fmaps_base=16384, fmaps_max=512, randomize_noise=False):
    mapping: pixel norm, dense0..dense7 (equalised lr: gain sqrt(2), lr_mul 0.01, lrelu 0.2
        after every layer, the last one too); dense7 emits all 14 codes (7168 = 14 x 512).
    truncation: w_avg (512,) and per-layer coefficients (1, 14, 1); the coefficients are
        rebuilt at load time (psi 0.7 on the first 8 layers), the stored ones are ignored.
        Only used when sampling from z; forward(w) takes W+ codes as they are.
    synthesis: 14 layers, two per resolution 4 ... 256 (layer i runs at 4 * 2**(i // 2) px
        and takes w[:, i]); layer0 starts from a constant; each even layer > 0 doubles the
        resolution (nearest + conv below 128 px, fused transposed conv at 128 and 256 px),
        then a [1, 2, 1] blur. Every layer ends in the epilogue
            noise -> bias -> lrelu(0.2) -> instance norm -> style mod (AdaIN),
        with style = dense(w) (gain 1, lr_mul 1) split into (scale, shift) and applied as
        x * (scale + 1) + shift. output0..6 are 1x1 ToRGB convs (gain 1, linear); with
        `lod` = 0 only the last one is used, then tanh -> [-1, 1].
Encoder (use_bn=True, use_wscale=False): residual blocks 64 -> 1024 channels with batch
    norm, then fc 16384 -> 7168 + BN -> (N, 14, 512). Eval mode (stored BN statistics).
VGG16: Keras-converted convs, Caffe preprocessing, conv4_3 after ReLU.

Conv and fc weights start uninitialised (torch.empty): build these modules to load a
checkpoint into (lf_core.loaders), not to train from scratch.

Uncertainty (no real checkpoint here): the maths follows genforce's PyTorch port, which
reproduces the official TF StyleGAN v1 (its authors converted the TF weights); the key
names and shapes are checked against the reference listing, the numbers are not checked
against a real model. In particular the fused up-sampling is genforce's
conv_transpose2d(stride 2, padding 1) with the 4x4 "padded-sum" kernel built from the TF
(3, 3, Cin, Cout) weight; TF's SAME transposed conv is assumed to line up the same way.
"""

import math
from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F

from .layout import N_LATENT, W_DIM

SIZE = 256
TRUNCATION_PSI, TRUNCATION_LAYERS = 0.7, 8  # genforce's defaults for idinvert


class Linear(nn.Linear):
    """nn.Linear left uninitialised (torch.empty): these networks exist to be loaded from
    checkpoints, and initialising (even zero-filling) the 165M-parameter encoder only to
    overwrite it costs seconds. Same for Conv2d. Load weights before use."""

    def reset_parameters(self):
        pass


class Conv2d(nn.Conv2d):
    reset_parameters = Linear.reset_parameters


def nf(res, base=16 << 10, fmax=512):
    """Feature maps at a resolution: 512 up to 32 px, then 256, 128, 64 at 64, 128, 256 px."""
    return min(base // res, fmax)


class WScale(nn.Module):
    """Equalised learning rate: x * gain / sqrt(fan_in) * lr_mul + bias * lr_mul.
    The weight itself lives in the preceding fc / conv; this module holds the bias."""

    def __init__(self, fan_in, out_ch, gain=math.sqrt(2), lr_mul=1.0):  # noqa: B008 (a constant)
        super().__init__()
        self.scale = gain / math.sqrt(fan_in) * lr_mul
        self.lr_mul = lr_mul
        self.bias = nn.Parameter(torch.zeros(out_ch))

    def forward(self, x):
        b = self.bias * self.lr_mul
        return x * self.scale + (b.view(1, -1, 1, 1) if x.ndim == 4 else b)


class Dense(nn.Module):
    """fc (no bias) -> wscale (scale + bias) -> optional lrelu(0.2). x: (N, in) -> (N, out)."""

    def __init__(self, in_dim, out_dim, gain=math.sqrt(2), lr_mul=0.01,  # noqa: B008 (a constant)
                 act=True):
        super().__init__()
        self.fc = Linear(in_dim, out_dim, bias=False)
        self.wscale = WScale(in_dim, out_dim, gain, lr_mul)
        self.act = act

    def forward(self, x):
        x = self.wscale(self.fc(x.flatten(1)))
        return F.leaky_relu(x, 0.2) if self.act else x


class Mapping(nn.Module):
    """z: (N, 512) -> W+ (N, 14, 512). genforce returns the flat (N, 7168) and lets the
    truncation module reshape it; here the reshape happens at the end of mapping."""

    def __init__(self, z_dim=W_DIM, w_dim=W_DIM, n_latent=N_LATENT, n_layers=8):
        super().__init__()
        self.n_latent, self.w_dim, self.n_layers = n_latent, w_dim, n_layers
        for i in range(n_layers):
            out = w_dim * n_latent if i == n_layers - 1 else w_dim
            self.add_module(f"dense{i}", Dense(z_dim if i == 0 else w_dim, out))

    def forward(self, z):
        x = z * torch.rsqrt(z.pow(2).mean(1, keepdim=True) + 1e-8)  # pixel norm
        for i in range(self.n_layers):
            x = getattr(self, f"dense{i}")(x)
        return x.view(-1, self.n_latent, self.w_dim)  # (N, 14, 512)


class Truncation(nn.Module):
    """w_avg + (w - w_avg) * coef, coef = psi on the first `layers` layers, 1 elsewhere."""

    def __init__(self, n_latent=N_LATENT, w_dim=W_DIM, psi=TRUNCATION_PSI,
                 layers=TRUNCATION_LAYERS):
        super().__init__()
        self.psi, self.layers = psi, layers
        self.register_buffer("w_avg", torch.zeros(w_dim))
        self.register_buffer("truncation", self.coefficients(n_latent))

    def coefficients(self, n_latent=N_LATENT):
        c = torch.ones(1, n_latent, 1)
        c[:, : self.layers] *= self.psi
        return c  # (1, 14, 1)

    def rebuild(self):
        """Reset the coefficients after loading (genforce ignores the stored ones)."""
        c = self.coefficients(self.truncation.shape[1])
        self.truncation = c.to(self.truncation.device)

    def forward(self, w):
        # w: (N, 14, 512)
        avg = self.w_avg.view(1, 1, -1)
        return avg + (w - avg) * self.truncation


class ApplyNoise(nn.Module):
    """x + noise * weight, noise a stored (1, 1, res, res) map (deterministic output)."""

    def __init__(self, res, ch):
        super().__init__()
        self.register_buffer("noise", torch.randn(1, 1, res, res))
        self.weight = nn.Parameter(torch.zeros(ch))

    def forward(self, x):
        return x + self.noise * self.weight.view(1, -1, 1, 1)


class StyleMod(nn.Module):
    """AdaIN: style = dense(w) (N, 2C) -> x * (scale + 1) + shift."""

    def __init__(self, ch, w_dim=W_DIM):
        super().__init__()
        self.ch = ch
        self.dense = Dense(w_dim, ch * 2, gain=1.0, lr_mul=1.0, act=False)

    def forward(self, x, w):
        style = self.dense(w).view(-1, 2, self.ch, 1, 1)
        return x * (style[:, 0] + 1) + style[:, 1]


def instance_norm(x, eps=1e-8):
    x = x - x.mean([2, 3], keepdim=True)
    return x * torch.rsqrt(x.pow(2).mean([2, 3], keepdim=True) + eps)


class Epilogue(nn.Module):
    """noise -> bias -> lrelu(0.2) -> instance norm -> style mod."""

    def __init__(self, res, ch, w_dim=W_DIM):
        super().__init__()
        self.apply_noise = ApplyNoise(res, ch)
        self.bias = nn.Parameter(torch.zeros(ch))
        self.style_mod = StyleMod(ch, w_dim)

    def forward(self, x, w):
        x = self.apply_noise(x) + self.bias.view(1, -1, 1, 1)
        x = instance_norm(F.leaky_relu(x, 0.2))
        return self.style_mod(x, w)


class Blur(nn.Module):
    """Depthwise [1, 2, 1] x [1, 2, 1] / 16 filter, padding 1. kernel: (C, 1, 3, 3)."""

    def __init__(self, ch):
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        k = k[:, None] * k[None, :]
        self.register_buffer("kernel", (k / k.sum()).expand(ch, 1, 3, 3).clone())

    def forward(self, x):
        return F.conv2d(x, self.kernel, padding=1, groups=x.shape[1])


class ConstLayer(nn.Module):
    """layer0: constant (1, C, 4, 4) input -> epilogue."""

    def __init__(self, ch, w_dim=W_DIM):
        super().__init__()
        self.const = nn.Parameter(torch.ones(1, ch, 4, 4))
        self.epilogue = Epilogue(4, ch, w_dim)

    def forward(self, w):
        return self.epilogue(self.const.expand(w.shape[0], -1, -1, -1), w)


class ConvLayer(nn.Module):
    """Second layer of a resolution: 3x3 conv (gain sqrt(2)) -> epilogue."""

    def __init__(self, res, in_ch, out_ch, w_dim=W_DIM):
        super().__init__()
        self.conv = Conv2d(in_ch, out_ch, 3, padding=1, bias=False)
        self.scale = math.sqrt(2) / math.sqrt(in_ch * 9)
        self.epilogue = Epilogue(res, out_ch, w_dim)

    def forward(self, x, w):
        return self.epilogue(self.conv(x) * self.scale, w)


class UpConvLayer(nn.Module):
    """First layer of a resolution: x2 up-sampling conv -> blur -> epilogue.

    fused=False (below 128 px): nearest x2 then 3x3 conv; weight `conv.weight` (Cout, Cin, 3, 3).
    fused=True (128, 256 px): TF-layout `weight` (3, 3, Cin, Cout); the 3x3 kernel is padded to
    5x5 and the four 1-px shifts are summed into a 4x4 kernel, run as conv_transpose2d(stride
    2, padding 1): (N, Cin, H, W) -> (N, Cout, 2H, 2W). As in TF StyleGAN, this equals nearest
    x2 followed by a true 3x3 convolution, i.e. the kernel flipped relative to the non-fused
    layers' cross-correlation (tests/test_loaders.py checks it).
    """

    def __init__(self, res, in_ch, out_ch, fused, w_dim=W_DIM):
        super().__init__()
        self.fused = fused
        if fused:
            self.weight = nn.Parameter(torch.empty(3, 3, in_ch, out_ch))
        else:
            self.conv = Conv2d(in_ch, out_ch, 3, padding=1, bias=False)
        self.scale = math.sqrt(2) / math.sqrt(in_ch * 9)
        self.blur = Blur(out_ch)
        self.epilogue = Epilogue(res, out_ch, w_dim)

    def forward(self, x, w):
        if self.fused:
            k = F.pad(self.weight * self.scale, (0, 0, 0, 0, 1, 1, 1, 1))  # (5, 5, Cin, Cout)
            k = k[1:, 1:] + k[:-1, 1:] + k[1:, :-1] + k[:-1, :-1]  # (4, 4, Cin, Cout)
            x = F.conv_transpose2d(x, k.permute(2, 3, 0, 1), stride=2, padding=1)
        else:
            x = self.conv(F.interpolate(x, scale_factor=2, mode="nearest")) * self.scale
        return self.epilogue(self.blur(x), w)


class OutputLayer(nn.Module):
    """ToRGB: 1x1 conv with gain 1 (scale 1 / sqrt(C)) + bias, no activation."""

    def __init__(self, in_ch, out_ch=3):
        super().__init__()
        self.conv = Conv2d(in_ch, out_ch, 1, bias=False)
        self.scale = 1 / math.sqrt(in_ch)
        self.bias = nn.Parameter(torch.zeros(out_ch))

    def forward(self, x):
        return self.conv(x) * self.scale + self.bias.view(1, -1, 1, 1)


class Synthesis(nn.Module):
    """W+ (N, 14, 512) -> image (N, 3, 256, 256) in [-1, 1].

    `lod` (level of detail, progressive growing) is a 0-d parameter kept for the key layout;
    it has requires_grad False so optimisers built from requires_grad parameters skip it.
    Published models have lod = 0 (all 7 blocks); with lod > 0 the last blocks are skipped
    and the image is nearest-upsampled instead, as genforce does.
    """

    def __init__(self, size=SIZE, w_dim=W_DIM, fused_min_res=128):
        super().__init__()
        self.size, self.w_dim = size, w_dim
        self.n_blocks = int(math.log2(size)) - 1  # 4, 8, ..., size
        self.n_latent = self.n_blocks * 2
        self.lod = nn.Parameter(torch.zeros(()), requires_grad=False)
        for b in range(self.n_blocks):
            res = 4 * 2**b
            if b == 0:
                self.add_module("layer0", ConstLayer(nf(res), w_dim))
            else:
                up = UpConvLayer(res, nf(res // 2), nf(res), res >= fused_min_res, w_dim)
                self.add_module(f"layer{2 * b}", up)
            self.add_module(f"layer{2 * b + 1}", ConvLayer(res, nf(res), nf(res), w_dim))
            self.add_module(f"output{b}", OutputLayer(nf(res)))

    def forward(self, w):
        # w: (N, 14, 512)
        lod = float(self.lod)
        active = [b for b in range(self.n_blocks) if b + 2 + lod <= self.n_blocks + 1]
        x = self.layer0(w[:, 0])
        x = self.layer1(x, w[:, 1])
        for b in active[1:]:
            x = getattr(self, f"layer{2 * b}")(x, w[:, 2 * b])
            x = getattr(self, f"layer{2 * b + 1}")(x, w[:, 2 * b + 1])
        img = getattr(self, f"output{active[-1]}")(x)
        for _ in range(self.n_blocks - len(active)):
            img = F.interpolate(img, scale_factor=2, mode="nearest")
        return torch.tanh(img)  # (N, 3, size, size)


class Generator(nn.Module):
    """idinvert StyleGAN v1 generator. forward(w: (N, 14, 512), or (N, 512) repeated to every
    layer) -> (N, 3, 256, 256) in [-1, 1]. No truncation on this path (W+ codes from the
    encoder or an optimiser go straight to synthesis, as in idinvert). To sample:
    G(G.truncation(G.mapping(z))).
    """

    def __init__(self, size=SIZE, w_dim=W_DIM, n_mlp=8):
        super().__init__()
        self.size, self.style_dim = size, w_dim
        self.n_latent = (int(math.log2(size)) - 1) * 2
        self.mapping = Mapping(w_dim, w_dim, self.n_latent, n_mlp)
        self.truncation = Truncation(self.n_latent, w_dim)
        self.synthesis = Synthesis(size, w_dim)

    def forward(self, w):
        if w.ndim == 2:
            w = w[:, None].expand(-1, self.n_latent, -1)
        return self.synthesis(w)


class BatchNorm(nn.Module):
    """genforce BatchNormLayer: nn.BatchNorm2d (eps 1e-5, momentum 0.1) under `.bn`."""

    def __init__(self, ch):
        super().__init__()
        self.bn = nn.BatchNorm2d(ch, eps=1e-5, momentum=0.1)

    def forward(self, x):
        return self.bn(x)


class FirstBlock(nn.Module):
    """block0: 3x3 conv (no bias, no weight scale) -> BN -> lrelu(0.2), at full resolution."""

    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.conv = Conv2d(in_ch, out_ch, 3, padding=1, bias=False)
        self.bn = BatchNorm(out_ch)

    def forward(self, x):
        return F.leaky_relu(self.bn(self.conv(x)), 0.2)


class ResBlock(nn.Module):
    """Residual block (use_wscale=False, use_bn=True as in idinvert FFHQ 256).

    shortcut (when widths differ): 1x1 conv -> BN -> lrelu; else identity.
    main: conv1 (Cin -> min(Cin, Cout)) and conv2 (-> Cout), each followed by wscale (adds
    the bias; genforce divides by the wscale factor first, so the net effect is a plain conv
    + bias), BN and lrelu. Output: main + shortcut.
    """

    def __init__(self, in_ch, out_ch):
        super().__init__()
        hid = min(in_ch, out_ch)
        self.shortcut = in_ch != out_ch
        if self.shortcut:
            self.conv = Conv2d(in_ch, out_ch, 1, bias=False)
            self.bn = BatchNorm(out_ch)
        self.conv1 = Conv2d(in_ch, hid, 3, padding=1, bias=False)
        self.wscale1 = WScale(in_ch * 9, hid)
        self.bn1 = BatchNorm(hid)
        self.conv2 = Conv2d(hid, out_ch, 3, padding=1, bias=False)
        self.wscale2 = WScale(hid * 9, out_ch)
        self.bn2 = BatchNorm(out_ch)

    def forward(self, x):
        y = F.leaky_relu(self.bn(self.conv(x)), 0.2) if self.shortcut else x
        x = F.leaky_relu(self.bn1(self.wscale1(self.conv1(x) / self.wscale1.scale)), 0.2)
        x = F.leaky_relu(self.bn2(self.wscale2(self.conv2(x) / self.wscale2.scale)), 0.2)
        return x + y


class LastBlock(nn.Module):
    """block7: flatten (N, 1024 * 4 * 4) -> fc (no bias, gain 1 wscale) -> BN -> (N, 7168)."""

    def __init__(self, in_dim, out_dim):
        super().__init__()
        self.fc = Linear(in_dim, out_dim, bias=False)
        self.scale = 1 / math.sqrt(in_dim)
        self.bn = BatchNorm(out_dim)

    def forward(self, x):
        x = self.fc(x.flatten(1)) * self.scale
        return self.bn(x[:, :, None, None])[:, :, 0, 0]


class Encoder(nn.Module):
    """idinvert encoder: image (N, 3, 256, 256) RGB in [-1, 1] -> W+ (N, 14, 512).

    block0 at 256 px (3 -> 64); blocks 1..6 each after a 2x2 average pool: 64 -> 128 -> 256
    -> 512 -> 1024 -> 1024 -> 1024 channels at 128 ... 4 px; block7: fc 16384 -> 7168 + BN.
    Uses batch norm with stored statistics: run it in eval mode.
    """

    def __init__(self, size=SIZE, w_dim=W_DIM, ch_base=64, ch_max=1024):
        super().__init__()
        self.size, self.w_dim = size, w_dim
        self.n_blocks = int(math.log2(size))
        self.n_latent = (int(math.log2(size)) - 1) * 2
        in_ch, out_ch = 3, ch_base
        for b in range(self.n_blocks):
            if b == 0:
                block = FirstBlock(in_ch, out_ch)
            elif b == self.n_blocks - 1:
                in_ch, out_ch = in_ch * 16, w_dim * 2 * b
                block = LastBlock(in_ch, out_ch)
            else:
                block = ResBlock(in_ch, out_ch)
            self.add_module(f"block{b}", block)
            in_ch, out_ch = out_ch, min(out_ch * 2, ch_max)

    def forward(self, x):
        # x: (N, 3, 256, 256)
        for b in range(self.n_blocks):
            if 0 < b < self.n_blocks - 1:
                x = F.avg_pool2d(x, 2)
            x = getattr(self, f"block{b}")(x)
        return x.view(-1, self.n_latent, self.w_dim)  # (N, 14, 512)


VGG_MEAN_BGR = (103.939, 116.779, 123.68)  # Caffe / Keras 'caffe' preprocessing
_VGG_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class VGG16(nn.Sequential):
    """idinvert's perceptual model: VGG16 convs converted from Keras, keys layer0 ... layer28.

    forward(x: (N, 3, H, W) RGB in [-1, 1]) -> conv4_3 after ReLU (layer index 22; genforce's
    output_layer_idx 23 runs layers 0..22): (N, 512, H / 8, W / 8), 512 x 32 x 32 at 256 px.
    Preprocessing: [-1, 1] -> [0, 255], RGB -> BGR, minus the Caffe means (B, G, R).
    """

    def __init__(self, output_layer_idx=23):
        layers, in_ch = OrderedDict(), 3
        for v in _VGG_CFG:
            i = len(layers)
            if v == "M":
                layers[f"layer{i}"] = nn.MaxPool2d(2, 2)
            else:
                layers[f"layer{i}"] = Conv2d(in_ch, v, 3, padding=1)
                layers[f"layer{i + 1}"] = nn.ReLU()
                in_ch = v
        super().__init__(layers)
        self.output_layer_idx = output_layer_idx

    def forward(self, x):
        x = (x + 1) * 127.5
        mean = torch.tensor(VGG_MEAN_BGR, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        x = x[:, [2, 1, 0]] - mean
        for i in range(self.output_layer_idx):
            x = getattr(self, f"layer{i}")(x)
        return x  # (N, 512, H / 8, W / 8)
