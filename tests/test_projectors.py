"""Projectors (PCA, the registry, saving) and a smoke test of the CNN baselines."""

import numpy as np
import pytest
import torch

from lf_core.errors import LFError, WeightsError
from lf_core.lab.projectors import (
    PCAProjector,
    ProjectorError,
    StyleGANProjector,
    load_projector,
    make_projector,
)


@pytest.fixture(scope="module")
def real_faces(data_dir):
    """40 real FFHQ faces, already FFHQ-aligned at 256 px (no detection needed)."""
    from lf_core.io import load_image
    from lf_core.lab.data import read_manifest

    items = [it for it in read_manifest(data_dir / "ffhq_stylegan" / "manifest.csv") if it.label == 0]
    crops = np.stack([load_image(it.path) for it in items[:40]])
    assert crops.shape == (40, 256, 256, 3)
    return crops


def test_pca_fit_project_reconstruct(real_faces, tmp_path):
    pca = PCAProjector(n_components=8, size=32, batch_size=16).fit(real_faces)
    assert pca.n_samples_seen_ == 40  # no face left out by the mini-batching
    codes = pca.project(real_faces)
    assert codes.shape == (40, 8) and codes.dtype == np.float32
    evr = pca.explained_variance_ratio_
    assert np.all(np.diff(evr) <= 1e-6) and 0 < evr.sum() < 1

    rec = pca.reconstruct(codes)
    assert rec.shape == (40, 32, 32, 3) and rec.dtype == np.uint8
    assert pca.reconstruct(codes[:2], full_size=True).shape == (2, 256, 256, 3)
    # 8 components reconstruct better than the mean face alone
    from lf_core.lab.projectors import downsample

    x = downsample(real_faces, 32)
    err_pca = np.mean((rec.reshape(40, -1) / 255.0 - x) ** 2)
    err_mean = np.mean((pca.mean_ - x) ** 2)
    assert err_pca < 0.8 * err_mean

    # save / load round trip: same codes, same metadata
    path = pca.save(tmp_path / "pca.safetensors")
    back = load_projector(path)
    assert isinstance(back, PCAProjector) and back.meta() == pca.meta()
    np.testing.assert_allclose(back.project(real_faces[:5]), codes[:5], atol=1e-4)
    assert PCAProjector.load(path).identity() == pca.identity()

    # streaming fit (an iterable of batches) gives the same fit as the array
    streamed = PCAProjector(n_components=8, size=32, batch_size=16).fit(
        iter([real_faces[:13], real_faces[13:27], real_faces[27:]]))
    np.testing.assert_allclose(np.abs(streamed.components_), np.abs(pca.components_), atol=1e-4)


def test_pca_errors(real_faces, tmp_path):
    with pytest.raises(ProjectorError, match="not fitted"):
        PCAProjector(4, 16).project(real_faces[:2])
    with pytest.raises(ProjectorError, match="at least"):
        PCAProjector(n_components=50, size=16).fit(real_faces)
    with pytest.raises(ProjectorError, match="uint8"):
        PCAProjector(2, 16).fit(real_faces.astype(np.float32))
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError):
        load_projector(bad)


def test_registry_and_vqvae_needs_training():
    with pytest.raises(ProjectorError, match="lf train-vqvae"):
        make_projector("vqvae")
    with pytest.raises(LFError, match="unknown projector"):
        make_projector("nope")
    assert make_projector("pca", n_components=4, size=16).needs_fit
    assert make_projector("crops", size=64).project(np.zeros((2, 256, 256, 3), np.uint8)).shape == (2, 64, 64, 3)


def test_stylegan_projector_meta_roundtrip(tmp_path):
    """Encoder-only projection and save/load of the metadata, on a small random model
    (weights-independent; the real model is exercised in test_extract)."""
    from lf_core import nets
    from lf_core.model import Model

    torch.manual_seed(0)
    E = nets.compact_encoder().eval()
    m = Model(torch.nn.Identity(), E, E.w_avg.clone(), "lf", str(tmp_path / "none.safetensors"))
    p = StyleGANProjector(m, steps=0, batch=2)
    codes = p.project(np.zeros((3, 256, 256, 3), np.uint8))
    assert codes.shape == (3, 14, 512) and codes.dtype == np.float32
    assert p.meta()["steps"] == 0 and p.meta()["weights_sha256"] == "unknown"
    back = load_projector(p.save(tmp_path / "sg.safetensors"), model=m)
    assert back.identity() == p.identity()


def test_cnn_baselines_smoke(tmp_path):
    """Tiny fits and a save/load round trip; the real (from-scratch) runs come later."""
    from lf_core.lab.baselines import CNNDetector, Xception, build, load_baseline

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    X = rng.integers(0, 255, (8, 64, 64, 3), dtype=np.uint8)
    X[4:, :, :, 0] = 255  # something to learn
    y = np.array([0] * 4 + [1] * 4)
    groups = np.array(["a", "b", "c", "d"] * 2)
    det = CNNDetector("meso4", input_size=64, max_epochs=2, batch_size=4).fit(X, y, groups)
    p = det.predict_proba(X)
    assert p.shape == (8, 2) and np.allclose(p.sum(1), 1)
    assert det.train_info_["pretrained"] is False
    det.save(tmp_path / "meso.safetensors", metrics={"split": "train"})
    back = load_baseline(tmp_path / "meso.safetensors")
    np.testing.assert_allclose(back.predict_proba(X), p, atol=1e-6)
    assert back.metrics == {"split": "train"} and back.predict(X).shape == (8,)

    # a fit stopped after epoch 1 and resumed from its checkpoint ends where one never
    # stopped ends; one asking for more epochs trains on from there
    kw = dict(input_size=64, batch_size=4, patience=9)
    straight = CNNDetector("meso4", max_epochs=3, **kw).fit(X, y, groups)
    ck = tmp_path / "meso.ckpt"
    CNNDetector("meso4", max_epochs=1, **kw).fit(X, y, groups, checkpoint=ck)
    CNNDetector("meso4", max_epochs=2, **kw).fit(X, y, groups, checkpoint=ck)
    logs = []
    resumed = CNNDetector("meso4", max_epochs=3, **kw).fit(X, y, groups, checkpoint=ck,
                                                           log=logs.append)
    assert "going on from" in logs[0] and "after epoch 2 (of 3)" in logs[0]
    assert resumed.train_info_["val_loss_history"] == straight.train_info_["val_loss_history"]
    np.testing.assert_array_equal(resumed.predict_proba(X), straight.predict_proba(X))
    with pytest.raises(LFError, match="holds 3 epochs, more than the 2 asked for"):
        CNNDetector("meso4", max_epochs=2, **kw).fit(X, y, groups, checkpoint=ck)
    with pytest.raises(LFError, match="checkpoint of another fit"):
        CNNDetector("meso4", max_epochs=3, seed=1, **kw).fit(X, y, groups, checkpoint=ck)

    with torch.no_grad():
        assert Xception(width=0.25, middle=1).eval()(torch.zeros(2, 3, 64, 64)).shape == (2,)
        net, size = build("efficientnet_b0", 32)
        out = net.eval()(torch.randn(2, 3, 32, 32))
        assert out.shape == (2,) and size == 32
        # its one-logit head starts at zero (torchvision's U(-1, 1) start never trained)
        assert torch.equal(out, torch.zeros(2))
    assert build("meso4")[1] == 256
    with pytest.raises(LFError):
        build("resnet")
