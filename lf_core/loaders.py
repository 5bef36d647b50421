"""Read the StyleGAN checkpoints a user brings, without running code from them.

    ld = load_checkpoint("stylegan2-ffhq-256.pt")                  # rosinality
    ld = load_checkpoint("network-snapshot.pkl")                   # NVlabs stylegan2-ada / stylegan3
    ld = load_checkpoint("styleganinv_ffhq256_generator.pth",
                         encoder="styleganinv_ffhq256_encoder.pth")  # idinvert (StyleGAN v1)
    ld = load_checkpoint("lf-compact-256.safetensors")             # our own model
    ld.G(w)  # (N, 14, 512) -> (N, 3, 256, 256);  ld.E(x) -> (N, 14, 512) or ld.E is None
    vgg = load_perceptual("vgg16.pth")  # idinvert's VGG16 conv4_3 features

The format is recognised from keys and shapes, never from the file name:
- rosinality stylegan2-pytorch `.pt`: a dict with `g_ema` (plus `latent_avg` from the weight
  converter; `g`, `d`, optimisers and an argparse `args` in training checkpoints), or a bare
  `g_ema` state dict. Loads into `nets.Generator` (strict). Widths come from the weights
  (`channel_multiplier` is not stored: 128 channels in `convs.10` at 256 px means 2, 64
  means 1), the number of mapping layers from the `style.*` keys.
- NVlabs stylegan2-ada-pytorch / stylegan3 `.pkl` (StyleGAN2 synthesis only): a pickle whose
  modules normally rebuild themselves by executing source code stored in the file. Here a
  restricted unpickler maps that hook (`torch_utils.persistence._reconstruct_persistent_obj`)
  to a function that returns the stored state (`_modules`, `_parameters`, `_buffers` and
  plain attributes) as a `StoredModule` dict, and refuses every other import outside a short
  allow-list with UnsafeCheckpointError. Tensors inside such pickles arrive as
  `torch.storage._load_from_bytes(bytes)`, i.e. a nested torch file: that one is read with
  `torch.load(weights_only=True)`. G_ema is converted to the rosinality layout (see
  `nvlabs_to_rosinality`); the maths is the same (checked in tests/test_loaders.py against
  an NVlabs-style forward written from the raw arrays), including NVlabs' `conv_clamp`.
- idinvert: `styleganinv_ffhq256_generator.pth` (+ `encoder=styleganinv_ffhq256_encoder.pth`),
  plain state dicts, into `lf_core.stylegan1` modules (strict). `truncation.truncation` is
  rebuilt, `synthesis.lod` stays frozen.
- LatentForensics `.safetensors`: `G.*`, `E.*` tensors (fp16 or fp32), optional `w_avg`, JSON
  metadata {"kind": "lf", "g_channels": ..., "e_channels": ...}.

Every torch file is read with `torch.load(weights_only=True)`. rosinality training
checkpoints store their command line as an `argparse.Namespace`, which weights_only refuses:
on that refusal (and only that one) the file is read again with Namespace, and nothing
else, added to torch's allow-list (`torch.serialization.safe_globals`). A Namespace only
holds attributes; its values still go through the weights_only unpickler.

All returned modules are in eval mode, float32, with requires_grad False. Output range of
G: idinvert ends in tanh, so [-1, 1]; rosinality / NVlabs / lf generators are not clamped
(about [-1, 1]); clamp for display and metrics.
"""

import argparse
import io
import json
import math
import pickle
import re
import warnings
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import nets, stylegan1
from .errors import UnsafeCheckpointError, WeightsError

SIZE, N_LATENT, W_DIM = 256, 14, 512
SUPPORTED = (
    "rosinality stylegan2-pytorch .pt (a dict with 'g_ema'), NVlabs stylegan2-ada / stylegan3 "
    ".pkl (StyleGAN2 G_ema), idinvert styleganinv_ffhq256_generator.pth (+ encoder=...), "
    "LatentForensics .safetensors (kind 'lf')"
)
_TORCH_MAGIC = 0x1950A86A20F9469CFC6C  # first object of a legacy (pre-zip) torch.save file


@dataclass
class Loaded:
    G: nn.Module  # forward(w (N, 14, 512)) -> (N, 3, 256, 256), ~[-1, 1] (idinvert: tanh)
    E: nn.Module | None  # image (N, 3, 256, 256) in [-1, 1] -> (N, 14, 512)
    w_avg: torch.Tensor  # (14, 512) mean code
    kind: str  # 'rosinality' | 'nvlabs' | 'idinvert' | 'lf'
    meta: dict = field(default_factory=dict)


def load_checkpoint(path, device="cpu", encoder=None) -> Loaded:
    """Load a 256 px / 14-latent StyleGAN checkpoint (see the module docstring).

    encoder: the idinvert encoder `.pth` that goes with an idinvert generator (ignored, with a
    warning, for the other kinds). Raises WeightsError (missing file, unknown layout, wrong
    resolution) or UnsafeCheckpointError (a pickle that asks for code).
    """
    path = _existing(path)
    obj, fmt = _read(path)
    meta = {"path": str(path), "format": fmt}
    if fmt == "safetensors":
        ld = _load_lf(path, *obj, meta)
    elif fmt == "nvlabs-pickle":
        ld = _load_nvlabs_pickle(path, obj, meta)
    else:
        ld = _load_torch_obj(path, obj, meta, encoder)
    if encoder is not None and ld.kind != "idinvert":
        warnings.warn(f"encoder={encoder} ignored: only idinvert generators take a separate encoder",
                      stacklevel=2)
        ld.meta["encoder_ignored"] = str(encoder)
    ld.G = _finish(ld.G, device)
    ld.E = _finish(ld.E, device) if ld.E is not None else None
    ld.w_avg = ld.w_avg.detach().float().reshape(N_LATENT, W_DIM).contiguous().to(device)
    return ld


def load_perceptual(path, device="cpu") -> stylegan1.VGG16:
    """idinvert's `vgg16.pth` -> stylegan1.VGG16 (x in [-1, 1] -> conv4_3 features)."""
    path = _existing(path)
    obj, fmt = _read(path)
    sd = obj if fmt == "torch" and isinstance(obj, dict) else {}
    if "layer0.weight" not in sd or "layer28.weight" not in sd:
        raise WeightsError(f"{path}: not idinvert's vgg16.pth (expected keys layer0.weight ... "
                           f"layer28.weight; found {_some_keys(obj)})")
    return _finish(_build(stylegan1.VGG16, sd, path), device)


# ---------------------------------------------------------------------------- reading files


def _existing(path):
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"weights file not found: {path}")
    if not path.is_file():
        raise WeightsError(f"weights path is not a file: {path}")
    return path


def _is_safetensors(path):
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return head[8:9] == b"{" and 0 < n < path.stat().st_size


def _read(path):
    """(object, format): format 'safetensors' | 'torch' | 'nvlabs-pickle'."""
    if _is_safetensors(path):
        from safetensors import safe_open

        try:
            with safe_open(str(path), "pt") as f:
                md = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as err:
            raise WeightsError(f"{path}: unreadable .safetensors file ({err})") from err
        return (tensors, md), "safetensors"
    if zipfile.is_zipfile(path):
        return _torch_load(path), "torch"
    with open(path, "rb") as f:
        first = f.read(1)
        if first != b"\x80":  # every pickle protocol >= 2 starts with PROTO
            raise WeightsError(f"{path}: not a checkpoint (neither a torch file, a pickle nor "
                               f".safetensors). Supported: {SUPPORTED}")
        f.seek(0)
        obj = read_nvlabs_pickle(f, name=str(path))
    if isinstance(obj, int) and obj == _TORCH_MAGIC:  # legacy torch.save file
        return _torch_load(path), "torch"
    return obj, "nvlabs-pickle"


def _torch_load(path):
    def load():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)

    try:
        return load()
    except pickle.UnpicklingError as err:
        if "argparse.Namespace" not in str(err):
            raise UnsafeCheckpointError(
                f"{path}: refused: torch's weights-only reader found more than tensors in this "
                f"file ({_last_line(err)}). Supported: {SUPPORTED}") from err
    except Exception as err:
        raise WeightsError(f"{path}: unreadable torch file ({_last_line(err)})") from err
    # rosinality training checkpoint: its `args` is an argparse.Namespace (plain attributes)
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return load()
    except Exception as err:
        raise UnsafeCheckpointError(f"{path}: refused by torch's weights-only reader "
                                    f"({_last_line(err)})") from err


def _last_line(err):
    lines = [s.strip() for s in str(err).splitlines() if s.strip()]
    return lines[-1][:300] if lines else type(err).__name__


# ----------------------------------------------------------- restricted (NVlabs) unpickling


class StoredModule(dict):
    """The stored state of one NVlabs persistent object: its `__dict__` (`_parameters`,
    `_buffers`, `_modules`, plain attributes such as num_ws, w_avg_beta, conv_clamp).
    `class_name` is the NVlabs class it was (e.g. 'SynthesisLayer'); its source is dropped."""

    class_name = ""


def _stored_module(meta):
    """Stands in for torch_utils.persistence._reconstruct_persistent_obj: keeps the state,
    never compiles or runs `meta['module_src']`."""
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise UnsafeCheckpointError("refused: malformed persistent object in this pickle")
    out = StoredModule(meta.get("state") or {})
    out.class_name = str(meta.get("class_name", ""))
    return out


def _rebuild_tensor(storage, offset, size, stride, *_):
    if not isinstance(storage, torch.storage.TypedStorage):
        raise UnsafeCheckpointError("refused: a tensor in this pickle does not point at a storage")
    return torch._utils._rebuild_tensor(storage, int(offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, *_):
    if not isinstance(data, torch.Tensor):
        raise UnsafeCheckpointError("refused: a parameter in this pickle holds no tensor")
    return data  # plain tensor; hooks and extra state are dropped


def _storage_from_bytes(b):
    """torch.storage._load_from_bytes, but weights-only."""
    if not isinstance(b, (bytes, bytearray)):
        raise UnsafeCheckpointError("refused: a storage in this pickle is not bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = torch.load(io.BytesIO(bytes(b)), map_location="cpu", weights_only=True)
    except Exception as err:
        raise UnsafeCheckpointError(
            f"refused: a tensor storage inside this pickle is not plain data ({_last_line(err)})") from err
    if not isinstance(s, torch.storage.TypedStorage):
        raise UnsafeCheckpointError("refused: a tensor storage inside this pickle is not a storage")
    return s


def _np_reconstruct(subtype, *args):
    if subtype is not np.ndarray:
        raise UnsafeCheckpointError("refused: numpy array subclass in this pickle")
    return _np_multiarray()._reconstruct(np.ndarray, *args)


def _np_scalar(*args):
    return _np_multiarray().scalar(*args)


def _np_multiarray():
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    return multiarray


def _fresh(fn):
    # a new function object per lookup: a pickle's BUILD opcode could otherwise set
    # attributes (e.g. __defaults__) on our shared functions
    return lambda *a, **k: fn(*a, **k)


def _easydict_class():
    return type("EasyDict", (dict,), {})  # fresh class per lookup, for the same reason


_ALLOWED = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): lambda: _fresh(_stored_module),
    ("torch._utils", "_rebuild_tensor_v2"): lambda: _fresh(_rebuild_tensor),
    ("torch._utils", "_rebuild_parameter"): lambda: _fresh(_rebuild_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"): lambda: _fresh(_rebuild_parameter),
    ("torch.storage", "_load_from_bytes"): lambda: _fresh(_storage_from_bytes),
    ("dnnlib.util", "EasyDict"): _easydict_class,
    ("dnnlib", "EasyDict"): _easydict_class,
    ("collections", "OrderedDict"): lambda: OrderedDict,
    ("numpy", "dtype"): lambda: np.dtype,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy.core.multiarray", "_reconstruct"): lambda: _fresh(_np_reconstruct),
    ("numpy._core.multiarray", "_reconstruct"): lambda: _fresh(_np_reconstruct),
    ("numpy.core.multiarray", "scalar"): lambda: _fresh(_np_scalar),
    ("numpy._core.multiarray", "scalar"): lambda: _fresh(_np_scalar),
}
for _mod in ("builtins", "__builtin__"):
    for _name, _obj in [("set", set), ("frozenset", frozenset), ("dict", dict), ("list", list),
                        ("tuple", tuple), ("bytearray", bytearray)]:
        _ALLOWED[(_mod, _name)] = lambda o=_obj: o


class RestrictedUnpickler(pickle.Unpickler):
    """Reads NVlabs StyleGAN pickles as data. Only the allow-list above can be imported;
    the persistence hook returns stored state instead of executing the stored source."""

    def __init__(self, file, name="this file"):
        super().__init__(file)
        self.name = name

    def find_class(self, module, name):
        make = _ALLOWED.get((module, name))
        if make is None:
            hint = ""
            if module.startswith("dnnlib.tflib"):
                hint = " (a TensorFlow StyleGAN pickle: convert it to PyTorch first)"
            raise UnsafeCheckpointError(
                f"{self.name}: refused: this pickle asks to import {module}.{name}{hint}; only "
                "NVlabs StyleGAN checkpoints are read, and never executed")
        return make()

    def persistent_load(self, pid):
        # NVlabs pickles are written by plain pickle.dump (no persistent ids; their storages
        # come through torch.storage._load_from_bytes). Anything else is not one of them.
        raise UnsafeCheckpointError(
            f"{self.name}: refused: this pickle uses persistent ids ({str(pid)[:60]}); only "
            "NVlabs StyleGAN checkpoints are read, and never executed")


def read_nvlabs_pickle(file, name="this file"):
    """Unpickle an NVlabs .pkl (path or binary file object) as data: persistent modules come
    back as StoredModule dicts, tensors as tensors. Raises UnsafeCheckpointError."""
    if isinstance(file, (str, Path)):
        with open(_existing(file), "rb") as f:
            return read_nvlabs_pickle(f, name=str(file))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return RestrictedUnpickler(file, name).load()
    except WeightsError:
        raise
    except Exception as err:
        raise WeightsError(f"{name}: unreadable pickle ({_last_line(err)}). "
                           f"Supported: {SUPPORTED}") from err


def flatten_stored(node, prefix="", out=None):
    """StoredModule tree -> flat state dict {'synthesis.b4.const': tensor, ...}."""
    out = {} if out is None else out
    skip = node.get("_non_persistent_buffers_set") or set()
    for group in ("_parameters", "_buffers"):
        for k, v in (node.get(group) or {}).items():
            if v is not None and k not in skip:
                if not isinstance(v, torch.Tensor):
                    raise WeightsError(f"stored {prefix}{k} is not a tensor")
                out[prefix + k] = v
    for k, child in (node.get("_modules") or {}).items():
        if isinstance(child, StoredModule):
            flatten_stored(child, f"{prefix}{k}.", out)
        elif child is not None:
            raise WeightsError(f"stored module {prefix}{k} is not an NVlabs module")
    return out


def _child(node, dotted):
    for k in dotted.split("."):
        node = (node.get("_modules") or {}).get(k) if isinstance(node, dict) else None
    return node if isinstance(node, StoredModule) else StoredModule()


# --------------------------------------------------------------------------- the formats


def _some_keys(obj, n=8):
    if isinstance(obj, dict):
        keys = list(obj.keys())
        shown = ", ".join(repr(k) for k in keys[:n])
        return f"{shown}{', ...' if len(keys) > n else ''} ({len(keys)} keys)"
    return f"a {type(obj).__name__}"


def _unknown(path, obj):
    return WeightsError(f"{path}: unknown checkpoint layout. Supported: {SUPPORTED}. "
                        f"Found keys: {_some_keys(obj)}")


def _need_256(path, size, n_latent, what):
    if size != SIZE or n_latent != N_LATENT:
        raise WeightsError(
            f"{path}: this is a {size} px {what} with {n_latent} latents; LatentForensics needs "
            f"a 256 px model with 14 latents (W+ 14 x 512), e.g. a StyleGAN2 FFHQ 256 or "
            f"idinvert styleganinv_ffhq256")


def _load_torch_obj(path, obj, meta, encoder):
    if not isinstance(obj, dict):
        raise _unknown(path, obj)
    sd = obj
    if "g_ema" in obj and isinstance(obj["g_ema"], dict):
        sd = obj["g_ema"]
    elif isinstance(obj.get("state_dict"), dict) and any(k.startswith("decoder.") for k in obj["state_dict"]):
        sd = {k[8:]: v for k, v in obj["state_dict"].items() if k.startswith("decoder.")}  # pSp / e4e
        meta["from"] = "pSp/e4e decoder"
    if "input.input" in sd and "conv1.conv.weight" in sd:
        return _load_rosinality(path, obj, sd, meta)
    if "synthesis.b4.const" in sd:  # an NVlabs G_ema state_dict saved with torch.save (no
        # attributes stored, so no conv_clamp: activations above 256 are not clamped)
        return _load_nvlabs(path, sd, StoredModule(), meta)
    if "synthesis.layer0.const" in sd:
        return _load_idinvert(path, sd, encoder, meta)
    if "block7.fc.weight" in sd or "block0.bn.bn.running_var" in sd:
        raise WeightsError(f"{path}: this is an idinvert encoder; pass the generator as the "
                           f"checkpoint and this file as encoder=")
    if "layer0.weight" in sd and "layer28.weight" in sd:
        raise WeightsError(f"{path}: this is idinvert's VGG16 perceptual model; load it with "
                           f"lf_core.loaders.load_perceptual()")
    raise _unknown(path, obj)


def _f32(sd):
    return {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}


def _build(ctor, sd, path):
    """Construct, then adopt the checkpoint's tensors (strict, assign: no second copy).
    (Building on the meta device would skip the random init, but its first use imports
    sympy / dynamo, which costs more than the init.)"""
    with torch.no_grad():
        m = ctor()
    try:
        m.load_state_dict(_f32(sd), strict=True, assign=True)
    except RuntimeError as err:
        raise WeightsError(f"{path}: keys or shapes do not match the expected network "
                           f"({_last_line(err)[:400]})") from err
    return m


def _finish(m, device):
    m.eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m.to(device)


def _generator_channels(sd, prefix=""):
    """rosinality-layout widths from the weights: resolution -> channels."""
    ch = {4: int(sd[f"{prefix}input.input"].shape[1])}
    i = 0
    while f"{prefix}convs.{2 * i}.conv.weight" in sd:
        ch[2 ** (i + 3)] = int(sd[f"{prefix}convs.{2 * i}.conv.weight"].shape[1])
        i += 1
    return ch


def _mean_w(G, n=4096, seed=0):
    """Mean of mapping(z) over n fixed random z (rosinality's mean_latent): (512,)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return G.style(torch.randn(n, G.style_dim, generator=g)).mean(0)


def _load_rosinality(path, obj, sd, meta):
    ch = _generator_channels(sd)
    size = max(ch)
    what = "pSp / e4e decoder (StyleGAN2)" if meta.get("from") else "StyleGAN2 (rosinality layout) generator"
    _need_256(path, size, 2 * int(math.log2(size)) - 2, what)
    n_mlp = sum(1 for k in sd if re.fullmatch(r"style\.\d+\.weight", k))
    G = _build(lambda: nets.Generator(size, W_DIM, n_mlp=n_mlp, channels=ch), sd, path)
    cm = {128: 2, 64: 1}.get(ch[256])
    avg = obj.get("latent_avg") if obj is not sd else None
    if isinstance(avg, torch.Tensor) and avg.numel() in (W_DIM, N_LATENT * W_DIM):
        w_avg, src = avg.float().reshape(-1, W_DIM).expand(N_LATENT, -1), "latent_avg"
    elif n_mlp:
        w_avg, src = _mean_w(G)[None].expand(N_LATENT, -1), "mean of mapping(z), 4096 z, seed 0"
    else:
        w_avg, src = torch.zeros(N_LATENT, W_DIM), "zeros (no mapping network, no latent_avg)"
    meta.update(size=size, n_latent=N_LATENT, channels=ch, channel_multiplier=cm, n_mlp=n_mlp,
                w_avg_from=src, output="unclamped")
    args = obj.get("args") if obj is not sd else None
    if isinstance(args, argparse.Namespace):
        meta["args"] = {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))}
    return Loaded(G, None, w_avg, "rosinality", meta)


# NVlabs -> rosinality. Both compute the same StyleGAN2 maths:
#   mapping fcK (lr_mul 0.01, weight gain lr_mul / sqrt(in), bias gain lr_mul, lrelu * sqrt 2)
#       = rosinality style.(K+1) (EqualLinear, lr_mul 0.01, fused lrelu): copied as is;
#   affine (weight gain 1 / sqrt(512), bias_init 1) = modulation: copied as is;
#   SynthesisLayer weight is used raw and demodulated; rosinality scales it by
#       1 / sqrt(in k k) before demodulating: the same up to the 1e-8 epsilon (relative 1e-9);
#   ToRGB: NVlabs scales the styles by 1 / sqrt(in), rosinality the weight: the same product;
#   up-sampling conv: both run a transposed 3x3 conv (stride 2, unflipped kernel) then the
#       [1, 3, 3, 1] filter x 4 with padding (1, 1); the skip path upsample2d pads (2, 1) on
#       both sides too; rosinality's kernels are NVlabs' normalised resample_filter x 4;
#   noise_const * noise_strength is added after demodulation, before bias + lrelu, in both;
#   conv_clamp (256 in NVlabs' training configs) clamps after bias, lrelu and gain, and the
#       ToRGB output before the skip sum: reproduced by _clamp_like_nvlabs.
# Not reproduced: NVlabs runs the top 4 resolutions in fp16 on GPUs; here all is fp32.


def nvlabs_to_rosinality(sd):
    """NVlabs G_ema state dict -> rosinality `g_ema` state dict (and the block resolutions)."""
    out = {}
    k = 0
    while f"mapping.fc{k}.weight" in sd:
        out[f"style.{k + 1}.weight"] = sd[f"mapping.fc{k}.weight"]
        out[f"style.{k + 1}.bias"] = sd[f"mapping.fc{k}.bias"]
        k += 1
    res = sorted({int(m.group(1)) for key in sd if (m := re.match(r"synthesis\.b(\d+)\.", key))})

    def layer(dst, src, noise_i, up=False):
        w = sd[f"{src}.weight"]
        out[f"{dst}.conv.weight"] = w[None]
        out[f"{dst}.conv.modulation.weight"] = sd[f"{src}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = sd[f"{src}.affine.bias"]
        r = 2 ** ((noise_i + 5) // 2)  # 4, 8, 8, 16, 16, ... (use_noise=False layers)
        noise = sd.get(f"{src}.noise_const", torch.zeros(r, r))
        out[f"{dst}.noise.weight"] = sd.get(f"{src}.noise_strength", torch.zeros(())).reshape(1)
        out[f"{dst}.activate.bias"] = sd[f"{src}.bias"]
        out[f"noises.noise_{noise_i}"] = noise[None, None]
        if up:
            out[f"{dst}.conv.blur.kernel"] = sd[f"{src}.resample_filter"] * 4

    def torgb(dst, src, up_filter=None):
        out[f"{dst}.conv.weight"] = sd[f"{src}.weight"][None]
        out[f"{dst}.conv.modulation.weight"] = sd[f"{src}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = sd[f"{src}.affine.bias"]
        out[f"{dst}.bias"] = sd[f"{src}.bias"].reshape(1, -1, 1, 1)
        if up_filter is not None:
            out[f"{dst}.upsample.kernel"] = up_filter * 4

    out["input.input"] = sd[f"synthesis.b{res[0]}.const"][None]
    layer("conv1", f"synthesis.b{res[0]}.conv1", 0)
    torgb("to_rgb1", f"synthesis.b{res[0]}.torgb")
    for i, r in enumerate(res[1:]):
        b = f"synthesis.b{r}"
        layer(f"convs.{2 * i}", f"{b}.conv0", 2 * i + 1, up=True)
        layer(f"convs.{2 * i + 1}", f"{b}.conv1", 2 * i + 2)
        torgb(f"to_rgbs.{i}", f"{b}.torgb", sd[f"{b}.resample_filter"])
    return out, res


def _clamp_like_nvlabs(G, g, res):
    """Set the activations' and ToRGBs' `clamp` where the pickle's layers have a conv_clamp."""
    pairs = [(G.conv1.activate, f"synthesis.b{res[0]}.conv1"),
             (G.to_rgb1, f"synthesis.b{res[0]}.torgb")]
    for i, r in enumerate(res[1:]):
        pairs += [(G.convs[2 * i].activate, f"synthesis.b{r}.conv0"),
                  (G.convs[2 * i + 1].activate, f"synthesis.b{r}.conv1"),
                  (G.to_rgbs[i], f"synthesis.b{r}.torgb")]
    clamps = {}
    for mod, src in pairs:
        c = _child(g, src).get("conv_clamp")
        if c is not None:
            mod.clamp = float(c)
            clamps[src] = float(c)
    return clamps


def _load_nvlabs_pickle(path, data, meta):
    g = data
    if isinstance(data, dict) and not isinstance(data, StoredModule):
        g = data.get("G_ema", data.get("G"))
        meta["from"] = "G_ema" if "G_ema" in data else "G"
    if not isinstance(g, StoredModule):
        raise _unknown(path, data)
    return _load_nvlabs(path, flatten_stored(g), g, meta)


def _load_nvlabs(path, sd, g, meta):
    if any(k.startswith("synthesis.input.") or re.match(r"synthesis\.L\d+_", k) for k in sd):
        raise WeightsError(f"{path}: a StyleGAN3 (alias-free) generator; only StyleGAN2 synthesis "
                           f"networks are supported (stylegan3 repo: --cfg=stylegan2)")
    if "mapping.embed.weight" in sd:
        raise WeightsError(f"{path}: a class-conditional generator; only unconditional ones are supported")
    res = sorted({int(m.group(1)) for key in sd if (m := re.match(r"synthesis\.b(\d+)\.", key))})
    if not res:
        raise _unknown(path, sd)
    size = res[-1]
    n_ws = g.get("num_ws") or 2 * int(math.log2(size)) - 2
    _need_256(path, size, int(n_ws), "NVlabs StyleGAN2 generator")
    for r in res:
        arch = _child(g, f"synthesis.b{r}").get("architecture", "skip")
        if arch != "skip":
            raise WeightsError(f"{path}: synthesis architecture '{arch}'; only 'skip' (the "
                               f"default) is supported")
    try:
        rsd, res = nvlabs_to_rosinality(sd)
    except KeyError as err:
        raise WeightsError(f"{path}: NVlabs generator without {err}; found {_some_keys(sd)}") from err
    ch = _generator_channels(rsd)
    n_mlp = sum(1 for k in rsd if re.fullmatch(r"style\.\d+\.weight", k))
    G = _build(lambda: nets.Generator(size, W_DIM, n_mlp=n_mlp, channels=ch), rsd, path)
    clamps = _clamp_like_nvlabs(G, g, res)
    if "mapping.w_avg" in sd:
        w_avg, src = sd["mapping.w_avg"].float()[None].expand(N_LATENT, -1), "mapping.w_avg"
    else:
        w_avg, src = _mean_w(G)[None].expand(N_LATENT, -1), "mean of mapping(z), 4096 z, seed 0"
    meta.update(size=size, n_latent=N_LATENT, channels=ch, channel_multiplier={128: 2, 64: 1}.get(ch[256]),
                n_mlp=n_mlp, w_avg_from=src, conv_clamp=sorted(set(clamps.values())) or None,
                output="unclamped")
    return Loaded(G, None, w_avg, "nvlabs", meta)


def _load_idinvert(path, sd, encoder, meta):
    n_layers = sum(1 for k in sd if re.fullmatch(r"synthesis\.layer\d+\.epilogue\.bias", k))
    size = 4 * 2 ** (n_layers // 2 - 1)
    _need_256(path, size, n_layers, "StyleGAN v1 (genforce / idinvert) generator")
    d7 = sd.get("mapping.dense7.fc.weight")
    if d7 is None or d7.shape[0] != N_LATENT * W_DIM:
        raise WeightsError(f"{path}: a genforce StyleGAN v1 generator whose mapping does not emit "
                           f"14 x 512 codes (mapping.dense7.fc.weight "
                           f"{tuple(d7.shape) if d7 is not None else 'missing'}); idinvert's is (7168, 512)")
    G = _build(stylegan1.Generator, sd, path)
    G.truncation.rebuild()
    E = None
    if encoder is not None:
        epath = _existing(encoder)
        eobj, efmt = _read(epath)
        if efmt != "torch" or not isinstance(eobj, dict) or "block7.fc.weight" not in eobj:
            raise WeightsError(f"{epath}: not an idinvert encoder (expected block0 ... block7.fc "
                               f"keys; found {_some_keys(eobj)})")
        if tuple(eobj["block7.fc.weight"].shape) != (N_LATENT * W_DIM, 16384):
            raise WeightsError(f"{epath}: encoder emits {eobj['block7.fc.weight'].shape[0]} values; "
                               f"the 256 px idinvert encoder emits 14 x 512 = 7168")
        E = _build(stylegan1.Encoder, eobj, epath)
        meta["encoder"] = str(epath)
    w_avg = G.truncation.w_avg.float()[None].expand(N_LATENT, -1)
    meta.update(size=size, n_latent=N_LATENT, lod=float(G.synthesis.lod), w_avg_from="truncation.w_avg",
                output="tanh")
    return Loaded(G, E, w_avg, "idinvert", meta)


def _channels_from_meta(md, key):
    v = md.get(key)
    if v is None:
        return None
    d = json.loads(v) if isinstance(v, str) else v
    return {int(k): int(c) for k, c in d.items()}


def _encoder_channels(sd, size=SIZE):
    ch = {size // 2: int(sd["stem.weight"].shape[0])}
    i = 0
    while f"blocks.{i}.conv2.weight" in sd:
        ch[size // 2 ** (i + 2)] = int(sd[f"blocks.{i}.conv2.weight"].shape[0])
        i += 1
    return ch


def _load_lf(path, tensors, md, meta):
    if md.get("kind") != "lf":
        raise WeightsError(f"{path}: a .safetensors file that is not a LatentForensics model "
                           f"(metadata kind={md.get('kind')!r}). Supported: {SUPPORTED}")
    g = {k[2:]: v for k, v in tensors.items() if k.startswith("G.")}
    e = {k[2:]: v for k, v in tensors.items() if k.startswith("E.")}
    if "input.input" not in g:
        raise WeightsError(f"{path}: LatentForensics file without generator (G.*) tensors")
    try:
        g_ch = _channels_from_meta(md, "g_channels") or _generator_channels(g)
        e_ch = (_channels_from_meta(md, "e_channels") or _encoder_channels(e)) if e else None
    except (ValueError, KeyError, AttributeError) as err:
        raise WeightsError(f"{path}: bad channel metadata ({err})") from err
    size = max(g_ch)
    _need_256(path, size, 2 * int(math.log2(size)) - 2, "LatentForensics generator")
    n_mlp = sum(1 for k in g if re.fullmatch(r"style\.\d+\.weight", k))
    G = _build(lambda: nets.Generator(size, W_DIM, n_mlp=n_mlp, channels=g_ch), g, path)
    E = _build(lambda: nets.Encoder(size, W_DIM, channels=e_ch), e, path) if e else None
    if "w_avg" in tensors:
        w_avg, src = tensors["w_avg"].float(), "w_avg"
    elif E is not None:
        w_avg, src = E.w_avg.float(), "E.w_avg"
    else:
        w_avg, src = torch.zeros(N_LATENT, W_DIM), "zeros (no w_avg stored)"
    extra = {k: v for k, v in md.items() if k not in ("kind", "g_channels", "e_channels")}
    meta.update(size=size, n_latent=N_LATENT, g_channels=g_ch, e_channels=e_ch, w_avg_from=src,
                output="unclamped", **extra)
    return Loaded(G, E, w_avg, "lf", meta)
