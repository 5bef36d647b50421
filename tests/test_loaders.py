"""Checkpoint loaders on synthetic checkpoints: exactly the public keys and shapes (read from
shared/reference/checkpoint-keys), random values, written in each real file format."""

import argparse
import builtins
import math
import os
import pickle
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from lf_core import loaders, nets, stylegan1
from lf_core.errors import UnsafeCheckpointError, WeightsError

REF = Path(os.environ.get("LF_REFERENCE", Path(__file__).resolve().parents[2] / "shared" / "reference"))
KEYS = REF / "checkpoint-keys"


def listing(name):
    """{section: {key: shape}} from a checkpoint-keys listing."""
    path = KEYS / name
    if not path.is_file():
        pytest.fail(f"reference listing not found: {path}; set LF_REFERENCE to shared/reference")
    secs, cur = {}, None
    for line in path.read_text().splitlines():
        if line.startswith("== "):
            cur = line[3:].split(":")[0].strip()
            secs[cur] = {}
        elif cur and (m := re.fullmatch(r"(\S+) \(([\d, ]*)\)", line.strip())):
            secs[cur][m[1]] = tuple(int(v) for v in m[2].split(",") if v.strip())
    return secs


ROS = listing("rosinality_stylegan2_256_cm2.txt")["size 256"]
NV = listing("nvlabs_stylegan2_G_ema_256.txt")
NV16, NV32 = NV["G_ema 256 channel_base=16384"], NV["G_ema 256 channel_base=32768"]
IDINV = listing("idinvert_ffhq256_generator_encoder_vgg16.txt")


def kernel_1331(scale=1.0):
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    k = k[:, None] * k[None]
    return k / k.sum() * scale


def synth(keys, seed, plain_convs=False):
    """Random tensors with the listed shapes. Equalised-lr weights stay N(0, 1) as stored;
    plain convs / fcs (idinvert encoder, VGG) get N(0, 1 / fan_in); BN statistics and the
    fixed FIR kernels get valid values, synthesis.lod 0 (as published). Tensors over 4M
    values tile a random 1M-value block (the encoder's 117M-value fc: speed)."""
    g = torch.Generator().manual_seed(seed)

    def randn(shape):
        n = math.prod(shape)
        if n <= 1 << 22:
            return torch.randn(shape, generator=g)
        return torch.randn(1 << 20, generator=g).repeat(-(-n // (1 << 20)))[:n].view(shape)

    out = {}
    for k, shape in keys.items():
        if k.endswith("num_batches_tracked"):
            t = torch.tensor(1000, dtype=torch.int64)
        elif k == "synthesis.lod":
            t = torch.zeros(())
        elif k.endswith("running_var"):
            t = torch.rand(shape, generator=g) + 0.5
        elif k.endswith(".blur.kernel") and len(shape) == 4:  # idinvert [1, 2, 1] blur
            b = torch.tensor([1.0, 2.0, 1.0])
            t = ((b[:, None] * b[None]) / 16).expand(shape).clone()
        elif k.endswith((".blur.kernel", ".upsample.kernel")):  # rosinality
            t = kernel_1331(4.0)
        elif k.endswith("resample_filter"):  # NVlabs
            t = kernel_1331()
        elif plain_convs and len(shape) >= 2:
            t = randn(shape).mul_(1 / math.sqrt(math.prod(shape[1:])))
        elif k.endswith(("bn.weight",)):
            t = 1 + 0.1 * torch.randn(shape, generator=g)
        elif len(shape) <= 1 and not k.endswith(("w_avg", "latent_avg")):
            t = 0.1 * torch.randn(shape, generator=g)  # biases, noise strengths
        else:
            t = randn(shape)
        out[k] = t
    return out


def shapes(sd):
    return {k: tuple(v.shape) for k, v in sd.items()}


def check_frozen(m):
    assert not m.training
    assert all(not p.requires_grad for p in m.parameters())


def check_image(y):
    assert y.shape == (1, 3, 256, 256)
    assert torch.isfinite(y).all()
    assert y.clamp(-1, 1).abs().max() <= 1


W = torch.randn(1, 14, 512, generator=torch.Generator().manual_seed(1))


# ------------------------------------------------------------------------------ rosinality


@pytest.fixture(scope="module")
def ros_sd():
    return synth(ROS, 0)


def test_rosinality_pt(tmp_path, ros_sd):
    avg = torch.randn(512)
    path = tmp_path / "stylegan2-ffhq-256.pt"
    torch.save({"g_ema": ros_sd, "latent_avg": avg}, path)
    ld = loaders.load_checkpoint(path)
    assert ld.kind == "rosinality" and ld.E is None
    assert isinstance(ld.G, nets.Generator)
    assert shapes(ld.G.state_dict()) == ROS
    assert ld.meta["channel_multiplier"] == 2 and ld.meta["n_mlp"] == 8
    assert torch.equal(ld.w_avg, avg[None].expand(14, -1))
    check_frozen(ld.G)
    with torch.no_grad():
        y = ld.G(W)
    check_image(y)
    assert torch.equal(ld.G.state_dict()["convs.3.conv.weight"], ros_sd["convs.3.conv.weight"])


def test_rosinality_training_checkpoint_with_namespace(tmp_path, ros_sd):
    args = argparse.Namespace(size=256, channel_multiplier=2, latent=512, n_mlp=8, iter=800000)
    path = tmp_path / "080000.pt"
    torch.save({"g": ros_sd, "d": {"convs.0.0.weight": torch.randn(4, 3, 1, 1)}, "g_ema": ros_sd,
                "g_optim": {}, "d_optim": {}, "args": args}, path)
    with pytest.raises(pickle.UnpicklingError):  # why the loader retries with Namespace allowed
        torch.load(path, weights_only=True)
    ld = loaders.load_checkpoint(path)
    assert ld.kind == "rosinality"
    assert ld.meta["args"]["size"] == 256
    assert ld.meta["w_avg_from"].startswith("mean of mapping")  # no latent_avg stored
    assert torch.isfinite(ld.w_avg).all() and torch.equal(ld.w_avg[0], ld.w_avg[13])


def test_rosinality_1024_is_refused(tmp_path):
    sd = nets.Generator(1024, 512, channels=nets.rosinality_channels(2)).state_dict()  # random init
    path = tmp_path / "stylegan2-ffhq-config-f.pt"
    torch.save({"g_ema": sd, "latent_avg": torch.zeros(512)}, path)
    with pytest.raises(WeightsError, match=r"1024 px .* 18 latents.*256 px .*14 latents"):
        loaders.load_checkpoint(path)


def test_unknown_and_missing_files(tmp_path):
    path = tmp_path / "resnet.pt"
    torch.save({"model": {"fc.weight": torch.randn(2, 2)}, "epoch": 3}, path)
    expect = r"unknown checkpoint layout.*rosinality.*NVlabs.*idinvert.*'model', 'epoch'"
    with pytest.raises(WeightsError, match=expect):
        loaders.load_checkpoint(path)
    legacy = tmp_path / "legacy.pt"  # pre-zip torch.save format: still weights-only
    torch.save({"state": torch.randn(3)}, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(WeightsError, match="unknown checkpoint layout.*'state'"):
        loaders.load_checkpoint(legacy)
    with pytest.raises(WeightsError, match="not found"):
        loaders.load_checkpoint(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"hello world, not a checkpoint")
    with pytest.raises(WeightsError, match="not a checkpoint"):
        loaders.load_checkpoint(junk)


# ------------------------------------------------------------------------------ NVlabs


def nv_class(path):
    last = path.split(".")[-1]
    if path == "mapping":
        return "MappingNetwork"
    if path == "synthesis":
        return "SynthesisNetwork"
    if re.fullmatch(r"b\d+", last):
        return "SynthesisBlock"
    if last in ("conv0", "conv1"):
        return "SynthesisLayer"
    if last == "torgb":
        return "ToRGBLayer"
    return "FullyConnectedLayer"


def write_nvlabs_pickle(path, sd, sentinel, conv_clamp):
    """Pickle fake NVlabs modules the way stylegan2-ada's persistence does: each module
    reduces to torch_utils.persistence._reconstruct_persistent_obj(meta) with its source code
    and its __dict__ (tensors pickle through torch's own reducers)."""
    src = f"open({str(sentinel)!r}, 'w').write('module source executed')\n"
    with pytest.MonkeyPatch.context() as mp:
        persistence = types.ModuleType("torch_utils.persistence")

        def _reconstruct_persistent_obj(meta):  # what NVlabs does: run the stored source
            exec(compile(meta["module_src"], "<stored>", "exec"), {})
            raise AssertionError("unreachable")

        _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
        _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
        persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
        tu = types.ModuleType("torch_utils")
        tu.persistence = persistence
        util = types.ModuleType("dnnlib.util")
        EasyDict = type("EasyDict", (dict,), {"__module__": "dnnlib.util"})
        util.EasyDict = EasyDict
        dnnlib = types.ModuleType("dnnlib")
        dnnlib.util = util
        for name, mod in [("torch_utils", tu), ("torch_utils.persistence", persistence),
                          ("dnnlib", dnnlib), ("dnnlib.util", util)]:
            mp.setitem(sys.modules, name, mod)

        class Persistent(nn.Module):
            def __init__(self, class_name, **attrs):
                super().__init__()
                self._nv_class = class_name
                self.__dict__.update(attrs)

            def __reduce__(self):
                state = {k: v for k, v in self.__dict__.items() if k != "_nv_class"}
                meta = dict(type="class", version=4, module_src=src, class_name=self._nv_class, state=state)
                return (_reconstruct_persistent_obj, (meta,))

        syn_kw = EasyDict(channel_base=16384, channel_max=512, num_fp16_res=4, conv_clamp=conv_clamp)
        G = Persistent("Generator", z_dim=512, c_dim=0, w_dim=512, img_resolution=256, img_channels=3,
                       num_ws=14, _init_args=(), _init_kwargs=EasyDict(
                           z_dim=512, c_dim=0, w_dim=512, img_resolution=256, img_channels=3,
                           mapping_kwargs=EasyDict(num_layers=8), synthesis_kwargs=syn_kw))
        for key, t in sd.items():
            *mods, leaf = key.split(".")
            node, p = G, ""
            for m in mods:
                p = f"{p}.{m}" if p else m
                if m not in node._modules:
                    cls, attrs = nv_class(p), {}
                    if cls == "SynthesisLayer":
                        attrs = dict(up=2 if m == "conv0" else 1, activation="lrelu", padding=1,
                                     act_gain=np.sqrt(2), conv_clamp=conv_clamp, use_noise=True)
                    elif cls == "ToRGBLayer":
                        attrs = dict(conv_clamp=conv_clamp, weight_gain=np.float64(1.0))
                    elif cls == "SynthesisBlock":
                        attrs = dict(architecture="skip", use_fp16=int(m[1:]) >= 32, resolution=int(m[1:]))
                    elif cls == "MappingNetwork":
                        attrs = dict(num_ws=14, w_avg_beta=0.995, z_dim=512)
                    elif cls == "SynthesisNetwork":  # stylegan3 pickles carry numpy arrays
                        attrs = dict(block_resolutions=[4, 8, 16, 32, 64, 128, 256],
                                     sampling=np.arange(4, dtype=np.float32))
                    node.add_module(m, Persistent(cls, **attrs))
                node = node._modules[m]
            if leaf in ("noise_const", "resample_filter", "w_avg"):
                node.register_buffer(leaf, t)
            else:
                node.register_parameter(leaf, nn.Parameter(t, requires_grad=False))
        D = Persistent("Discriminator")
        D.register_parameter("fromrgb", nn.Parameter(torch.randn(8, 3, 1, 1), requires_grad=False))
        data = dict(G=G, D=D, G_ema=G, augment_pipe=None,
                    training_set_kwargs=dict(resolution=256, use_labels=False, xflip=True))
        with open(path, "wb") as f:
            pickle.dump(data, f)


def nv_reference(sd, ws):
    """StyleGAN2 as NVlabs computes it (networks.py, conv2d_resample, upfirdn2d reference
    paths, fused modconv, noise_mode='const'), written from the raw arrays.
    Returns run(conv_clamp) -> (image, number of values each clamp changed)."""

    def upfirdn(x, f, up, pad, gain):
        n, c, h, w = x.shape
        if up > 1:  # zero insertion
            x = F.pad(x.reshape(n, c, h, 1, w, 1), [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)
        x = F.pad(x, list(pad))
        f = (f * gain ** (f.ndim / 2)).flip([0, 1])
        return F.conv2d(x, f[None, None].repeat(c, 1, 1, 1), groups=c)

    def modconv(x, weight, styles, demod, up, f):
        n, (o, i, kh, kw) = x.shape[0], weight.shape
        w = weight[None] * styles[:, None, :, None, None]  # (n, o, i, k, k)
        if demod:
            w = w * (w.square().sum([2, 3, 4]) + 1e-8).rsqrt()[:, :, None, None, None]
        x = x.reshape(1, n * i, *x.shape[2:])
        if up == 1:
            x = F.conv2d(x, w.reshape(n * o, i, kh, kw), padding=kh // 2, groups=n)
        else:  # transpose conv (stride 2, no padding) then the filter, padding (1, 1)
            wt = w.transpose(1, 2).reshape(n * i, o, kh, kw)
            x = F.conv_transpose2d(x, wt, stride=2, groups=n)
            x = upfirdn(x, f, 1, (1, 1, 1, 1), 4)
        return x.reshape(n, o, *x.shape[2:])

    def affine(p, w):
        return w @ (sd[f"{p}.affine.weight"] / math.sqrt(w.shape[1])).t() + sd[f"{p}.affine.bias"]

    clamped = []  # how many values each clamp changed

    def clamp_(x, c):
        clamped.append(int((x.abs() > c).sum()))
        return x.clamp(-c, c)

    def layer(p, x, w, up, clamp):
        x = modconv(x, sd[f"{p}.weight"], affine(p, w), True, up, sd[f"{p}.resample_filter"])
        x = x + sd[f"{p}.noise_const"] * sd[f"{p}.noise_strength"]
        x = F.leaky_relu(x + sd[f"{p}.bias"].view(1, -1, 1, 1), 0.2) * math.sqrt(2)
        return clamp_(x, clamp)

    def torgb(p, x, w, clamp):
        s = affine(p, w) / math.sqrt(sd[f"{p}.weight"].shape[1])
        x = modconv(x, sd[f"{p}.weight"], s, False, 1, None) + sd[f"{p}.bias"].view(1, -1, 1, 1)
        return clamp_(x, clamp)

    def run(clamp):
        x = sd["synthesis.b4.const"][None].repeat(ws.shape[0], 1, 1, 1)
        x = layer("synthesis.b4.conv1", x, ws[:, 0], 1, clamp)
        img = torgb("synthesis.b4.torgb", x, ws[:, 1], clamp)
        for i, r in enumerate([8, 16, 32, 64, 128, 256]):
            b = f"synthesis.b{r}"
            x = layer(f"{b}.conv0", x, ws[:, 2 * i + 1], 2, clamp)
            x = layer(f"{b}.conv1", x, ws[:, 2 * i + 2], 1, clamp)
            img = upfirdn(img, sd[f"{b}.resample_filter"], 2, (2, 1, 2, 1), 4)  # upsample2d
            img = img + torgb(f"{b}.torgb", x, ws[:, 2 * i + 3], clamp)
        return img, clamped

    return run


def nv_mapping(sd, z):
    x = z * (z.square().mean(1, keepdim=True) + 1e-8).rsqrt()
    for k in range(8):
        w, b = sd[f"mapping.fc{k}.weight"], sd[f"mapping.fc{k}.bias"]
        x = x @ (w * (0.01 / math.sqrt(w.shape[1]))).t() + b * 0.01
        x = F.leaky_relu(x, 0.2) * math.sqrt(2)
    return x


def test_nvlabs_pickle_matches_nvlabs_maths(tmp_path):
    sd = synth(NV16, 2)
    path, sentinel = tmp_path / "network-snapshot-025000.pkl", tmp_path / "EXECUTED"
    clamp = 2.0  # NVlabs' configs use 256 (never reached with these weights): 2 exercises it
    write_nvlabs_pickle(path, sd, sentinel, clamp)
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules
    raw = path.read_bytes()
    assert b"torch_utils.persistence" in raw and b"_reconstruct_persistent_obj" in raw
    assert b"_load_from_bytes" in raw

    ld = loaders.load_checkpoint(path)
    assert not sentinel.exists()  # the stored module source never ran
    assert "torch_utils" not in sys.modules
    assert ld.kind == "nvlabs" and ld.E is None
    assert set(ld.G.state_dict()) == set(ROS)  # rosinality layout
    assert ld.meta["channel_multiplier"] == 1 and ld.meta["conv_clamp"] == [clamp]
    assert torch.equal(ld.w_avg, sd["mapping.w_avg"][None].expand(14, -1))
    check_frozen(ld.G)

    run = nv_reference(sd, W)
    with torch.no_grad():
        y = ld.G(W)
        ref, clamped = run(clamp)
    check_image(y)
    assert sum(clamped) > 1000  # the clamp matters here...
    assert torch.allclose(y, ref, atol=1e-4, rtol=1e-4), (y - ref).abs().max()  # ...and is reproduced
    z = torch.randn(3, 512)
    assert torch.allclose(ld.G.mapping(z), nv_mapping(sd, z), atol=1e-5, rtol=1e-4)

    stored = loaders.read_nvlabs_pickle(path)
    assert stored["G_ema"].class_name == "Generator"
    assert stored["G_ema"]["num_ws"] == 14
    assert shapes(loaders.flatten_stored(stored["G_ema"])) == NV16


def test_nvlabs_conversion_is_rosinality_layout():
    ros, _ = loaders.nvlabs_to_rosinality({k: torch.empty(s) for k, s in NV32.items()})
    assert shapes(ros) == ROS  # channel_base 32768 == rosinality channel_multiplier 2


# ------------------------------------------------------------------------------ refusals


def _payloads(sentinel):
    s = str(sentinel)

    class OsSystem:
        def __reduce__(self):
            return (os.system, (f"touch {s}",))

    class Eval:
        def __reduce__(self):
            return (builtins.eval, (f"open({s!r}, 'w').close()",))

    class Subprocess:
        def __reduce__(self):
            return (subprocess.call, (["touch", s],))

    class Harmless:  # not code, but not on the allow-list either
        def __reduce__(self):
            return (nn.Linear, (2, 2))

    return {"os.system": OsSystem(), "eval": Eval(), "subprocess": Subprocess(), "linear": Harmless()}


@pytest.mark.parametrize("name", ["os.system", "eval", "subprocess", "linear"])
@pytest.mark.parametrize("nested", [False, True])
def test_malicious_pickle_is_refused(tmp_path, name, nested):
    sentinel = tmp_path / "PWNED"
    payload = _payloads(sentinel)[name]
    if nested:  # hidden in what looks like a stored G_ema
        payload = {"G_ema": {"_modules": {"synthesis": payload}}, "training_set_kwargs": {}}
    path = tmp_path / "network-snapshot.pkl"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(UnsafeCheckpointError, match=r"refused: this pickle asks to import \S+; only NVlabs"):
        loaders.load_checkpoint(path)
    assert not sentinel.exists()


def test_malicious_torch_files_are_refused(tmp_path):
    sentinel = tmp_path / "PWNED"
    payload = _payloads(sentinel)["os.system"]
    pt = tmp_path / "evil.pt"
    torch.save({"g_ema": payload}, pt)  # zip torch file
    with pytest.raises(UnsafeCheckpointError, match="refused"):
        loaders.load_checkpoint(pt)

    class EvilStorage:  # a "tensor storage" whose bytes are a pickle that runs code
        def __reduce__(self):
            return (torch.storage._load_from_bytes, (pickle.dumps(payload, protocol=2),))

    pkl = tmp_path / "evil.pkl"
    pkl.write_bytes(pickle.dumps({"G_ema": EvilStorage()}))
    with pytest.raises(UnsafeCheckpointError, match="storage"):
        loaders.load_checkpoint(pkl)
    assert not sentinel.exists()


# ------------------------------------------------------------------------------ idinvert


@pytest.fixture(scope="module")
def idinvert_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("idinvert")
    g = synth(IDINV["G"], 3)
    torch.save(g, d / "styleganinv_ffhq256_generator.pth")
    # the encoder in the pre-zip torch format (torch < 1.6 wrote it; also faster to write)
    torch.save(synth(IDINV["E"], 4, plain_convs=True), d / "styleganinv_ffhq256_encoder.pth",
               _use_new_zipfile_serialization=False)
    torch.save(synth(IDINV["VGG"], 5, plain_convs=True), d / "vgg16.pth")
    return d, g


def test_idinvert_generator_and_encoder(idinvert_files):
    d, g = idinvert_files
    ld = loaders.load_checkpoint(d / "styleganinv_ffhq256_generator.pth",
                                 encoder=d / "styleganinv_ffhq256_encoder.pth")
    assert ld.kind == "idinvert"
    assert isinstance(ld.G, stylegan1.Generator) and isinstance(ld.E, stylegan1.Encoder)
    assert shapes(ld.G.state_dict()) == IDINV["G"] and list(ld.G.state_dict()) == list(IDINV["G"])
    assert shapes(ld.E.state_dict()) == IDINV["E"] and list(ld.E.state_dict()) == list(IDINV["E"])
    check_frozen(ld.G)
    check_frozen(ld.E)
    assert ld.G.synthesis.lod.ndim == 0 and not ld.G.synthesis.lod.requires_grad
    assert torch.equal(ld.G.truncation.truncation.flatten(), torch.tensor([0.7] * 8 + [1.0] * 6))
    assert torch.equal(ld.w_avg, g["truncation.w_avg"][None].expand(14, -1))
    with torch.no_grad():
        y = ld.G(W)  # deterministic: the noise maps are the stored buffers
        assert y.abs().max() <= 1  # tanh
        check_image(y)
        w = ld.E(y)
        assert w.shape == (1, 14, 512) and torch.isfinite(w).all()
        assert ld.G.mapping(torch.randn(2, 512)).shape == (2, 14, 512)
    fresh = stylegan1.Generator()
    assert "synthesis.lod" not in [n for n, p in fresh.named_parameters() if p.requires_grad]


def test_idinvert_needs_generator_first(idinvert_files):
    d, _ = idinvert_files
    with pytest.raises(WeightsError, match="idinvert encoder"):
        loaders.load_checkpoint(d / "styleganinv_ffhq256_encoder.pth")
    with pytest.raises(WeightsError, match="load_perceptual"):
        loaders.load_checkpoint(d / "vgg16.pth")


def test_idinvert_vgg16(idinvert_files):
    d, _ = idinvert_files
    vgg = loaders.load_perceptual(d / "vgg16.pth")
    assert shapes(vgg.state_dict()) == IDINV["VGG"]
    check_frozen(vgg)
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        f = vgg(x)
    assert f.shape == (1, 512, 32, 32) and torch.isfinite(f).all() and (f >= 0).all()
    # Caffe preprocessing: [-1, 1] -> [0, 255], RGB -> BGR, minus BGR means, then layer0
    sd = vgg.state_dict()
    pre = (x + 1) * 127.5
    pre = pre[:, [2, 1, 0]] - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    with torch.no_grad():
        first = F.conv2d(pre, sd["layer0.weight"], sd["layer0.bias"], padding=1)
        assert torch.allclose(vgg.layer0(vgg_input(vgg, x)), first, atol=1e-4)


def vgg_input(vgg, x):
    """The tensor VGG16.forward feeds to layer0 (captured with a hook)."""
    seen = []
    h = vgg.layer0.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    with torch.no_grad():
        vgg(x)
    h.remove()
    return seen[0]


def test_stylegan1_fused_upsampling_is_upsample_then_conv():
    """genforce's / TF's fused kernel (3x3 padded to 4x4, four shifts summed, transposed conv
    stride 2) equals nearest x2 + a true 3x3 convolution (flipped kernel), borders included."""
    torch.manual_seed(0)
    fused = stylegan1.UpConvLayer(16, 8, 4, fused=True)
    plain = stylegan1.UpConvLayer(16, 8, 4, fused=False)
    fused.weight.data.normal_()
    plain.conv.weight.data = fused.weight.data.permute(3, 2, 0, 1).flip([2, 3])  # TF -> torch, flipped
    x = torch.randn(2, 8, 8, 8)
    seen = []
    for m in (fused, plain):
        h = m.blur.register_forward_hook(lambda mod, i, o: seen.append(i[0]))
        m(x, torch.randn(2, 512))
        h.remove()
    assert seen[0].shape == (2, 4, 16, 16)
    assert torch.allclose(seen[0], seen[1], atol=1e-5)


# ------------------------------------------------------------------------------ our own


def test_weight_files_keep_fortran_ordered_arrays(tmp_path):
    """safetensors.numpy writes a Fortran-ordered array's buffer as if it were C-ordered;
    a weight file must hold the array itself (a fitted sklearn coef_ can be Fortran-ordered)."""
    from lf_core.artifacts import read_lf_file, write_lf_file

    a = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    write_lf_file(tmp_path / "f.safetensors", {"a": a}, "k", {"format": "f", "version": 1})
    _, arrays = read_lf_file(tmp_path / "f.safetensors", "test file", "k", "f", 1)
    np.testing.assert_array_equal(arrays["a"], a)


@pytest.mark.parametrize("variant", ["export", "fp32-w_avg-no-channels"])
def test_lf_safetensors(tmp_path, variant):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    G, E = nets.compact_generator(), nets.compact_encoder()
    E.w_avg.normal_()
    t = {f"G.{k}": v for k, v in G.state_dict().items()}
    t.update({f"E.{k}": v for k, v in E.state_dict().items()})
    if variant == "export":  # what lf_core.lab.train_gen.export writes
        t = {k: v.half().contiguous() for k, v in t.items()}
        import json

        md = {"kind": "lf", "g_channels": json.dumps(nets.COMPACT_G_CHANNELS),
              "e_channels": json.dumps(nets.COMPACT_E_CHANNELS), "train": "{}"}
    else:
        t = {k: v.contiguous() for k, v in t.items()}
        t["w_avg"] = torch.randn(14, 512)
        md = {"kind": "lf"}
    path = tmp_path / "lf-compact-256.safetensors"
    save_file(t, str(path), metadata=md)
    ld = loaders.load_checkpoint(path)
    assert ld.kind == "lf" and ld.meta["g_channels"] == nets.COMPACT_G_CHANNELS
    assert ld.meta["e_channels"] == nets.COMPACT_E_CHANNELS
    check_frozen(ld.G)
    check_frozen(ld.E)
    expect_avg = t["w_avg"] if "w_avg" in t else t["E.w_avg"].float()
    assert torch.equal(ld.w_avg, expect_avg)
    for k, v in ld.G.state_dict().items():
        assert v.dtype == torch.float32 and torch.equal(v, t[f"G.{k}"].float())
    if variant != "export":
        return
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        w = ld.E(x)
        assert w.shape == (1, 14, 512)
        check_image(ld.G(w))


def test_safetensors_of_another_kind(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "classifier.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"kind": "classifier"})
    with pytest.raises(WeightsError, match="not a LatentForensics model"):
        loaders.load_checkpoint(path)
