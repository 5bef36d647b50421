"""lf train-generator on a tiny cache: aligned-face cache, checkpoints, export, resume,
determinism, lr schedule."""

import json
import shutil

import numpy as np
import pytest
import torch

from lf_core.lab.train_gen import TrainConfig, build_cache, lr_scale, train
from lf_core.loaders import load_checkpoint


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """4 aligned validation-split faces, also used as the 'training' set here."""
    d = tmp_path_factory.mktemp("gen")
    val = build_cache(d, "val", limit=4, log=lambda m: None)
    assert val.shape[1:] == (256, 256, 3) and val.dtype == np.uint8 and 3 <= len(val) <= 4
    assert len((d / "faces_val.paths.txt").read_text().split()) == len(val)
    np.save(d / "faces_train.npy", np.asarray(val))
    return d


def _run(out, cache, steps, **kw):
    for f in ("faces_train.npy", "faces_val.npy", "faces_val.paths.txt"):
        if not (out / f).exists():
            out.mkdir(parents=True, exist_ok=True)
            shutil.copy(cache / f, out / f)
    return train(TrainConfig(out=str(out), steps=steps, batch=2, val_every=2, threads=1, **kw),
                 log=lambda m: None)


def test_cache_is_reused(cache):
    before = (cache / "faces_val.npy").stat().st_mtime_ns
    build_cache(cache, "val", limit=4, log=lambda m: None)
    assert (cache / "faces_val.npy").stat().st_mtime_ns == before


def test_train_export_resume(cache, tmp_path):
    from lf_core.model import DEFAULT_WEIGHTS

    # a fresh run starts from the shipped weights (and their step count): --steps is a total
    start = json.loads(load_checkpoint(DEFAULT_WEIGHTS).meta["train"])["step"]
    meta = _run(tmp_path / "a", cache, start + 3)
    assert meta["step"] == start + 3 and np.isfinite(meta["val"]["psnr"])
    ld = load_checkpoint(tmp_path / "a" / "lf-compact-256.safetensors")
    assert ld.kind == "lf" and ld.E is not None
    assert json.loads(ld.meta["train"])["step"] == meta["step"]
    log = [json.loads(x) for x in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert log and all(np.isfinite(r["psnr"]) for r in log)

    # 2 steps, then resumed to 3 == 3 straight: same weights (deterministic for a seed,
    # the warm-up of a start from weights/ carried through the checkpoint)
    _run(tmp_path / "b", cache, meta["step"] - 1)
    _run(tmp_path / "b", cache, meta["step"])
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == meta["step"]
    for net in ("G", "E"):
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), (net, k)


def test_encoder_only_keeps_the_generator(cache, tmp_path):
    from lf_core.model import DEFAULT_WEIGHTS

    shipped = load_checkpoint(DEFAULT_WEIGHTS)
    start = json.loads(shipped.meta["train"])["step"]
    _run(tmp_path, cache, start + 2, encoder_only=True)
    s = torch.load(tmp_path / "last.pt", weights_only=True)
    assert s["encoder_only"] and s["step"] == start + 2
    assert all(torch.equal(v, shipped.G.state_dict()[k]) for k, v in s["G"].items())
    assert not all(torch.equal(v, shipped.E.state_dict()[k]) for k, v in s["E"].items()
                   if k != "w_avg")  # the weights learnt, not only the running mean
    # then joint training resumes from that checkpoint (a fresh optimiser for G + E)
    _run(tmp_path, cache, start + 3)
    s2 = torch.load(tmp_path / "last.pt", weights_only=True)
    assert not s2["encoder_only"] and s2["step"] == start + 3
    assert not all(torch.equal(v, s["G"][k]) for k, v in s2["G"].items())


def test_lr_schedule():
    cfg = TrainConfig(lr=1e-3, lr_end=1e-4, cooldown=0.5)
    assert lr_scale(0, 0, 200, 100, cfg) == pytest.approx(1 / 200)  # warm-up
    assert lr_scale(500, 40, 200, 100, cfg) == 1.0  # before the cool-down
    assert lr_scale(500, 75, 200, 100, cfg) == pytest.approx(0.55)  # half-way down
    assert lr_scale(500, 100, 200, 100, cfg) == pytest.approx(0.1)  # lr_end / lr
    assert lr_scale(500, 80, 0, None, cfg) == 1.0  # --steps runs: no time budget


def test_pack_round_trip(cache, tmp_path):
    """--pack-to / --from-pack: the cache as WebP travels to a machine without ../shared."""
    from lf_core.inversion import to_tensor
    from lf_core.lab.train_gen import pack_faces, unpack_faces
    from lf_core.losses import psnr

    pack_faces(cache, tmp_path / "faces.npz")
    unpack_faces(tmp_path / "faces.npz", tmp_path / "run")
    for split in ("train", "val"):
        a = np.load(cache / f"faces_{split}.npy")
        b = np.load(tmp_path / "run" / f"faces_{split}.npy")
        assert a.shape == b.shape and b.dtype == np.uint8
        assert float(psnr(to_tensor(b), to_tensor(a))) > 35  # lossy, far above what G reaches
    assert (tmp_path / "faces.npz").stat().st_size < 10_000 * len(a)  # ~3 KB a face


def test_divergence_stops_without_saving(cache, tmp_path):
    """A run whose validation PSNR collapses stops with an error and writes no checkpoint
    (a diverged GPU run would otherwise go on training, and saving, a broken model)."""
    from lf_core.errors import LFError

    with pytest.raises(LFError, match="diverged.*lower --lr"):
        _run(tmp_path, cache, 10**9, lr=10.0)
    assert not (tmp_path / "last.pt").exists()
    assert not (tmp_path / "lf-compact-256.safetensors").exists()
    assert (tmp_path / "log.jsonl").read_text().strip()  # the collapse is on record
    # --diverge-db 0: no guard, the run goes on to its step count and saves
    from lf_core.model import DEFAULT_WEIGHTS

    start = json.loads(load_checkpoint(DEFAULT_WEIGHTS).meta["train"])["step"]
    assert _run(tmp_path / "b", cache, start + 4, lr=10.0, diverge_db=0)["step"] == start + 4
