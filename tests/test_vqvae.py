"""The VQ-VAE-2 projector: training (tiny network, a few steps), resume, export, codes,
save/load, extraction and the errors a user meets."""

import numpy as np
import pytest
import torch

from lf_core import cli
from lf_core.errors import WeightsError
from lf_core.lab.projectors import ProjectorError, VQVAEProjector, load_projector, make_projector
from lf_core.lab.train_vqvae import train_vqvae
from lf_core.lab.vqvae import VQVAE

TINY = {"ch": 16, "res_ch": 8, "n_res": 1, "dim": 8, "n_embed": 32}  # same code grids


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def faces(data_dir):
    """10 real FFHQ faces, FFHQ-aligned at 256 px already."""
    from lf_core.io import load_image
    from lf_core.lab.data import read_manifest

    items = [it for it in read_manifest(data_dir / "ffhq_stylegan" / "manifest.csv")
             if it.label == 0][:10]
    return np.stack([load_image(it.path) for it in items])


@pytest.fixture(scope="module")
def cache(faces, tmp_path_factory):
    """A face cache as lf_core.lab.train_gen.build_cache leaves it (8 train, 2 val faces)."""
    d = tmp_path_factory.mktemp("cache")
    np.save(d / "faces_train.npy", faces[:8])
    np.save(d / "faces_val.npy", faces[8:])
    return d


def _train(out, cache, steps):
    return train_vqvae(out, steps=steps, batch=4, seed=0, threads=0, cache=cache,
                       val_every=2, config=TINY, log=lambda m: None)


@pytest.fixture(scope="module")
def trained(cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("vq")
    _train(out, cache, 3)
    return out


def test_train_resume_export(trained, cache, tmp_path):
    import json

    log = [json.loads(line) for line in (trained / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 3]  # every val_every steps, and at the end
    assert all(np.isfinite(r["psnr"]) and 0 < r["used_b"] <= 1 for r in log)
    s = torch.load(trained / "last.pt", weights_only=True)
    assert s["step"] == 3 and s["config"]["ch"] == TINY["ch"]
    proj = load_projector(trained / "vqvae.safetensors")
    assert isinstance(proj, VQVAEProjector) and proj.info["step"] == 3
    assert proj.meta()["train"]["val"]["psnr"] == log[-1]["psnr"]

    # resumed (2 steps, then 1 more) == straight 3 steps: deterministic for a seed
    out = tmp_path / "resumed"
    _train(out, cache, 2)
    _train(out, cache, 3)
    again = load_projector(out / "vqvae.safetensors")
    assert again.identity() == proj.identity()


def test_codes_and_roundtrip(trained, faces, tmp_path):
    proj = VQVAEProjector.from_file(trained / "vqvae.safetensors")
    codes = proj.project(faces[:3])
    assert codes.shape == (3, 1280) and proj.code_shape == (1280,) and codes.dtype == np.float32
    assert np.all(codes == np.rint(codes)) and codes.min() >= 0 and codes.max() < TINY["n_embed"]
    assert proj.project(faces[0]).shape == (1, 1280)
    assert proj.project(np.zeros((0, 256, 256, 3), np.uint8)).shape == (0, 1280)
    m = proj.meta()
    assert m["kind"] == "vqvae" and len(m["weights_sha256"]) == 16 and m["config"]["size"] == 128

    # save / load: same codes, same identity
    back = load_projector(proj.save(tmp_path / "copy.safetensors"))
    np.testing.assert_array_equal(back.project(faces[:3]), codes)
    assert back.identity() == proj.identity() and back.meta() == m
    # another network gives another identity
    torch.manual_seed(1)
    assert VQVAEProjector(VQVAE(**TINY)).identity() != proj.identity()

    rec = proj.reconstruct(codes)
    assert rec.shape == (3, 128, 128, 3) and rec.dtype == np.uint8
    with pytest.raises(ProjectorError, match="integers"):
        proj.reconstruct(codes + 0.5)
    with pytest.raises(ProjectorError, match="integers"):
        proj.reconstruct(np.full(1280, TINY["n_embed"], np.float32))


def test_extract_with_vqvae(trained, data_dir, tmp_path):
    from lf_core.lab.extract import extract, load_codes

    manifest = tmp_path / "m.csv"
    root = data_dir / "ffhq_stylegan"
    manifest.write_text("path,label,group\n" + "".join(
        f"{root / 'real' / f'{i:05d}.jpg'},real,g{i}\n" for i in range(3)))
    proj = VQVAEProjector.from_file(trained / "vqvae.safetensors")
    out = extract(manifest, proj, tmp_path / "codes", batch=2, prealigned=True, progress=False,
                  log=lambda m: None)
    c = load_codes(out)
    assert c.codes.shape == (3, 1280) and c.projector["kind"] == "vqvae"
    assert c.load_projector().identity() == proj.identity()


def test_missing_file_errors(tmp_path, capsys):
    missing = tmp_path / "nope" / "vqvae.safetensors"
    with pytest.raises(WeightsError, match="lf train-vqvae"):
        VQVAEProjector.from_file(missing)
    with pytest.raises(ProjectorError, match="lf train-vqvae"):
        make_projector("vqvae")
    assert cli.main(["extract", str(tmp_path / "m.csv"), "--projector", "vqvae",
                     "--projector-file", str(missing), "-o", str(tmp_path / "c")]) == 5
    err = capsys.readouterr().err.strip()
    assert "lf train-vqvae" in err and "\n" not in err
    a = cli.parser().parse_args(["train-vqvae", "--steps", "5", "--threads", "1"])
    assert a.fn is cli.cmd_train_vqvae and a.out == "runs/vqvae" and a.cache == "runs/gen"
