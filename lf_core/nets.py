"""StyleGAN2 synthesis network and an image -> W+ encoder, in pure torch.

The generator follows rosinality/stylegan2-pytorch module for module and key for key, so
that its `g_ema` state dicts load as they are; only the maths of the modulated convolution
is rearranged (non-fused: modulate the activations, run one shared convolution for the
whole batch, demodulate the outputs), which gives the same numbers and is faster on a CPU.

W+ at 256 px is (N, 14, 512). Style order (rosinality): conv1 <- w[0], to_rgb1 <- w[1];
then per resolution 8 ... 256: two convs <- w[i], w[i+1], its ToRGB <- w[i+2]; i += 2.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F


def make_kernel(k):
    k = torch.tensor(k, dtype=torch.float32)
    if k.ndim == 1:
        k = k[None, :] * k[:, None]
    return k / k.sum()


def blur(x, kernel, pad):
    """Depthwise FIR filter. x: (N, C, H, W); kernel: (kh, kw); pad: (p0, p1)."""
    c = x.shape[1]
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    w = torch.flip(kernel, [0, 1])[None, None].expand(c, 1, *kernel.shape)
    return F.conv2d(x, w.to(x.dtype), groups=c)


def upconv_phases(weight, kernel):
    """rosinality's up-sampling conv (3x3 transposed conv, stride 2, then a 4x4 blur with
    pad 1) as one 3x3 conv at the low resolution + pixel shuffle: same numbers, a quarter
    of the work. weight: (out, in, 3, 3); kernel: (4, 4) separable -> (4 out, in, 3, 3).
    """
    o, i = weight.shape[:2]
    k1 = kernel.sum(1) / kernel.sum().sqrt()  # (4,) per-axis taps
    # per axis, the combined 6-tap kernel is C[e] = sum_a W[a] k1[a - e + 3], e = 0..5,
    # and output phase r in {0, 1} takes taps e = 4 - 2t + r, t = 0, 1, 2.
    a = weight.new_zeros(2, 3, 3)  # (phase r, tap t, weight index)
    for r in (0, 1):
        for t in range(3):
            for j in range(3):
                m = j - (4 - 2 * t + r) + 3
                if 0 <= m < 4:
                    a[r, t, j] = k1[m]
    a = a.reshape(6, 3)  # ((r, t), weight index)
    k = a @ weight.reshape(o * i, 3, 3) @ a.t()  # (out * in, (r, t), (s, u))
    k = k.reshape(o, i, 2, 3, 2, 3).permute(0, 2, 4, 1, 3, 5)  # (out, r, s, in, t, u)
    return k.reshape(o * 4, i, 3, 3)


def upsample2(x, kernel):
    """rosinality Upsample (upfirdn2d, up=2, pad=(2, 1)). x: (N, C, H, W) -> (N, C, 2H, 2W).
    Phase r = 0 takes taps x[p-1] K[0] + x[p] K[2]; r = 1 takes x[p] K[1] + x[p+1] K[3]."""
    c = x.shape[1]
    key = (c, x.dtype, x.device, tuple(kernel.flatten().tolist()))
    if key not in _UP2:  # the same few (C, kernel) pairs every call: built once
        k = kernel.to(x)
        t = torch.zeros(2, 3, 4, dtype=x.dtype, device=x.device)  # (phase, tap, kernel index)
        t[0, 0, 0] = t[0, 1, 2] = t[1, 1, 1] = t[1, 2, 3] = 1
        ph = torch.einsum("rta,sub,ab->rstu", t, t, k)  # (2, 2, 3, 3)
        eye = torch.eye(c, dtype=x.dtype, device=x.device)
        _UP2[key] = torch.einsum("rstu,cd->crsdtu", ph, eye).reshape(c * 4, c, 3, 3)
    return F.pixel_shuffle(F.conv2d(x, _UP2[key], padding=1), 2)


_UP2 = {}


def frozen(mod, name, fn, p=None):
    """fn() of parameter p (default mod.weight; a tuple: of all of them), computed once while
    it is frozen (inversion, inference): a step then spends its time on the feature maps, not
    on re-deriving weights. Any tensor without grad works as p (losses: the inversion's
    target); mod is whatever holds the cache in its __dict__."""
    ps = (mod.weight,) if p is None else p if isinstance(p, tuple) else (p,)
    if any(t.requires_grad for t in ps):
        return fn()
    vs = tuple((t.data_ptr(), t._version) for t in ps)  # .to() moves it; a reload bumps it
    cache = mod.__dict__.setdefault("_frozen", {})  # name -> (tensors, keys, value)
    hit = cache.get(name)
    if hit is None or hit[1] != vs or any(a is not b for a, b in zip(hit[0], ps)):
        with torch.no_grad():  # the tensors are held: a new one never matches a freed one
            cache[name] = hit = (ps, vs, fn())
    return hit[2]


class PixelNorm(nn.Module):
    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    def __init__(self, in_dim, out_dim, bias_init=0.0, lr_mul=1.0, activation=False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = (1 / math.sqrt(in_dim)) * lr_mul
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x):
        out = F.linear(x, frozen(self, "w", lambda: self.weight * self.scale),
                       frozen(self, "b", lambda: self.bias * self.lr_mul, self.bias))
        if self.activation:
            out = F.leaky_relu(out, 0.2) * math.sqrt(2)
        return out


class Blur(nn.Module):
    def __init__(self, kernel, pad, upsample_factor=1):
        super().__init__()
        self.register_buffer("kernel", make_kernel(kernel) * upsample_factor**2)
        self.pad = pad

    def forward(self, x):
        return blur(x, self.kernel, self.pad)


class ModulatedConv2d(nn.Module):
    def __init__(self, in_ch, out_ch, k, style_dim, demodulate=True, upsample=False):
        super().__init__()
        self.in_ch, self.out_ch, self.k = in_ch, out_ch, k
        self.upsample, self.demodulate = upsample, demodulate
        if upsample:
            p = (4 - 2) - (k - 1)
            self.blur = Blur([1, 3, 3, 1], pad=((p + 1) // 2 + 1, p // 2 + 1), upsample_factor=2)
        self.scale = 1 / math.sqrt(in_ch * k * k)
        self.weight = nn.Parameter(torch.randn(1, out_ch, in_ch, k, k))
        self.modulation = EqualLinear(style_dim, in_ch, bias_init=1)

    def forward(self, x, w):
        # x: (N, in, H, W); w: (N, 512)
        y, d = self.parts(x, w)
        return y if d is None else y * d[:, :, None, None]

    def parts(self, x, w):
        """(the convolution of the modulated input (N, out, H', W'), the demodulation (N, out)
        or None): StyledConv applies d in one fused op with the noise and bias."""
        s = self.modulation(w)  # (N, in)
        weight = frozen(self, "w", lambda: self.weight[0] * self.scale)  # (out, in, k, k)
        if self.k == 1 and not (self.upsample or self.demodulate):  # ToRGB: a (out x in) matmul
            n, c, h, wd = x.shape
            y = torch.bmm(weight[None, :, :, 0, 0] * s[:, None], x.reshape(n, c, h * wd))
            return y.view(n, -1, h, wd), None  # 5x faster than mul + a 1x1 conv on a CPU
        x = x * s[:, :, None, None]
        if self.upsample and x.shape[-1] >= 32:  # large maps: polyphase is cheaper
            # (4 out, in, 3, 3)
            ph = frozen(self, "up", lambda: upconv_phases(weight, self.blur.kernel))
            x = F.conv2d(x, ph, padding=1)  # (N, 4 out, H, W)
            x = F.pixel_shuffle(x, 2)  # (N, out, 2H, 2W)
        elif self.upsample:  # small maps: the weight transform would cost more than it saves
            wt = frozen(self, "wt", lambda: weight.transpose(0, 1).contiguous())  # (in, out, k, k)
            x = F.conv_transpose2d(x, wt, stride=2)  # (N, out, 2H+1, 2W+1)
            x = self.blur(x)  # (N, out, 2H, 2W)
        else:
            x = F.conv2d(x, weight, padding=self.k // 2)
        if not self.demodulate:
            return x, None
        wsq = frozen(self, "wsq", lambda: weight.pow(2).sum([2, 3]))  # (out, in)
        return x, torch.rsqrt(s.pow(2) @ wsq.t() + 1e-8)  # (N, out)


class NoiseInjection(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x, noise):
        return x + self.weight * noise


class FusedLeakyReLU(nn.Module):
    clamp = None  # NVlabs' conv_clamp, set by the loader where a checkpoint has one

    def __init__(self, ch):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(ch))

    def forward(self, x):
        x = F.leaky_relu(x + self.bias[None, :, None, None], 0.2) * math.sqrt(2)
        return clamp(x, self.clamp)


def clamp(x, c):
    return x if c is None else x.clamp(-c, c)


class StyledConv(nn.Module):
    def __init__(self, in_ch, out_ch, k, style_dim, upsample=False):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, k, style_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_ch)

    def forward(self, x, w, noise):
        # = activate(noise(conv(x, w))) with the full-size maps touched twice, not five times:
        # leaky(y d + a n + b) sqrt2 = leaky(y (sqrt2 d) + sqrt2 (a n + b)), leaky being
        # positively homogeneous
        y, d = self.conv.parts(x, w)  # (N, out, H, W), (N, out)
        g = math.sqrt(2)
        nw, b = self.noise.weight, self.activate.bias
        add = frozen(self, "add", lambda: (nw * g) * noise + (b * g)[None, :, None, None],
                     (nw, b, noise))  # (1, out, H, W)
        return clamp(F.leaky_relu(torch.addcmul(add, y, (d * g)[:, :, None, None]), 0.2),
                     self.activate.clamp)


class ToRGB(nn.Module):
    clamp = None  # NVlabs' conv_clamp (before the skip sum), set by the loader

    def __init__(self, in_ch, style_dim, upsample=True):
        super().__init__()
        if upsample:
            self.upsample = Blur([1, 3, 3, 1], pad=(2, 1), upsample_factor=2)
        self.conv = ModulatedConv2d(in_ch, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x, w, skip=None):
        out = clamp(self.conv(x, w) + self.bias, self.clamp)
        if skip is not None:
            out = out + upsample2(skip, self.upsample.kernel)
        return out


class ConstantInput(nn.Module):
    def __init__(self, ch, size=4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, ch, size, size))

    def forward(self, n):
        return self.input.expand(n, -1, -1, -1)


def rosinality_channels(channel_multiplier=2):
    cm = channel_multiplier
    return {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm,
            512: 32 * cm, 1024: 16 * cm}


class Generator(nn.Module):
    """StyleGAN2 generator. forward(w: (N, n_latent, 512)) -> (N, 3, size, size), ~[-1, 1].

    `channels` maps resolution -> width (rosinality's table by default). `n_mlp=0` builds
    no mapping network (the project's compact model is trained from codes, not from z).
    """

    def __init__(self, size=256, style_dim=512, n_mlp=8, channels=None, lr_mlp=0.01):
        super().__init__()
        self.size, self.style_dim, self.n_mlp = size, style_dim, n_mlp
        self.channels = dict(channels or rosinality_channels(2))
        self.log_size = int(math.log2(size))
        self.n_latent = self.log_size * 2 - 2
        self.num_layers = (self.log_size - 2) * 2 + 1

        layers = [PixelNorm()]
        for _ in range(n_mlp):
            layers.append(EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation=True))
        self.style = nn.Sequential(*layers)

        ch = self.channels
        self.input = ConstantInput(ch[4])
        self.conv1 = StyledConv(ch[4], ch[4], 3, style_dim)
        self.to_rgb1 = ToRGB(ch[4], style_dim, upsample=False)

        self.noises = nn.Module()
        for i in range(self.num_layers):
            res = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise_{i}", torch.randn(1, 1, res, res))

        self.convs, self.to_rgbs = nn.ModuleList(), nn.ModuleList()
        in_ch = ch[4]
        for i in range(3, self.log_size + 1):
            out_ch = ch[2**i]
            self.convs.append(StyledConv(in_ch, out_ch, 3, style_dim, upsample=True))
            self.convs.append(StyledConv(out_ch, out_ch, 3, style_dim))
            self.to_rgbs.append(ToRGB(out_ch, style_dim))
            in_ch = out_ch

    def mapping(self, z):
        """z: (N, 512) -> w: (N, 512). Needs a mapping network (n_mlp > 0)."""
        if self.n_mlp == 0:
            raise RuntimeError("this generator has no mapping network; sample codes with the "
                               "encoder")
        return self.style(z)

    def forward(self, w):
        # w: (N, n_latent, 512), or (N, 512) broadcast to every layer
        if w.ndim == 2:
            w = w[:, None].expand(-1, self.n_latent, -1)
        noise = [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]
        x = self.input(w.shape[0])
        x = self.conv1(x, w[:, 0], noise[0])
        skip = self.to_rgb1(x, w[:, 1])
        i = 1
        for conv1, conv2, n1, n2, to_rgb in zip(
            self.convs[::2], self.convs[1::2], noise[1::2], noise[2::2], self.to_rgbs
        ):
            x = conv1(x, w[:, i], n1)
            x = conv2(x, w[:, i + 1], n2)
            skip = to_rgb(x, w[:, i + 2], skip)
            i += 2
        return skip  # (N, 3, size, size)


class ResBlock(nn.Module):
    """Encoder block: 3x3 conv, stride-2 3x3 conv, residual stride-2 1x1 skip."""

    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, in_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(in_ch, out_ch, 3, 2, 1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1, 2, 0, bias=False)

    def forward(self, x):
        y = F.leaky_relu(self.conv1(x), 0.2)
        y = F.leaky_relu(self.conv2(y), 0.2)
        return (y + self.skip(x)) / math.sqrt(2)


class Encoder(nn.Module):
    """Image -> W+. forward(x: (N, 3, 256, 256) in [-1, 1]) -> (N, 14, 512).

    A stride-2 stem, then residual blocks 128 -> 4 px. Codes come from three levels like
    pSp: coarse codes (layers at 4 - 8 px) from the 4 px features, middle codes (16 - 32 px)
    from the 8 px features, fine codes (64 - 256 px) from the 16 px features. Each level
    pools to a 512-d vector; one linear map per code. The output is added to `w_avg`
    (14, 512), the mean code, so a zero head gives the average face.
    """

    levels = {4: (0, 4), 8: (4, 8), 16: (8, 14)}  # feature resolution -> latent range

    def __init__(self, size=256, style_dim=512, channels=None):
        super().__init__()
        ch = dict(channels or COMPACT_E_CHANNELS)
        self.size, self.style_dim = size, style_dim
        self.n_latent = int(math.log2(size)) * 2 - 2
        self.stem = nn.Conv2d(3, ch[size // 2], 3, 2, 1)  # (N, C, 128, 128)
        self.blocks = nn.ModuleList()
        res = size // 2
        while res > 4:
            self.blocks.append(ResBlock(ch[res], ch[res // 2]))
            res //= 2
        self.pools = nn.ModuleDict()
        for lvl in self.levels:
            k = lvl // 4
            self.pools[str(lvl)] = nn.Sequential(
                nn.Conv2d(ch[lvl], style_dim // 16, k, k),  # (N, 32, 4, 4)
                nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(style_dim, style_dim), nn.LeakyReLU(0.2))
        self.heads = nn.ModuleList(nn.Linear(style_dim, style_dim) for _ in range(self.n_latent))
        for h in self.heads:
            nn.init.zeros_(h.bias)
            h.weight.data.mul_(0.1)
        self.register_buffer("w_avg", torch.zeros(self.n_latent, style_dim))

    def forward(self, x):
        x = F.leaky_relu(self.stem(x), 0.2)
        ws, res = [], self.size // 2
        for block in self.blocks:
            x = block(x)
            res //= 2
            if res in self.levels:
                h = self.pools[str(res)](x)  # (N, 512)
                lo, hi = self.levels[res]
                ws += [(i, self.heads[i](h)) for i in range(lo, hi)]
        ws = [w for _, w in sorted(ws, key=lambda t: t[0])]
        return torch.stack(ws, 1) + self.w_avg  # (N, 14, 512)


# The project's compact default: rosinality layout, narrow at high resolution.
COMPACT_G_CHANNELS = {4: 256, 8: 256, 16: 256, 32: 128, 64: 64, 128: 32, 256: 16}
COMPACT_E_CHANNELS = {128: 32, 64: 64, 32: 128, 16: 256, 8: 256, 4: 256}


def compact_generator():
    return Generator(256, 512, n_mlp=0, channels=COMPACT_G_CHANNELS)


def compact_encoder():
    return Encoder(256, 512, channels=COMPACT_E_CHANNELS)
