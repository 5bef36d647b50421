"""The core verbs end to end on real faces: align -> invert -> reconstruct -> classify."""

import numpy as np
import pytest

from lf_core import inversion as inv
from lf_core import pipeline
from lf_core.alignment import align
from lf_core.decision import decide
from lf_core.detector import Detector, classify, load_detector
from lf_core.io import load_image


def test_encoder_only_and_steps(model, dfdc_pairs):
    real = load_image(dfdc_pairs[0][0])
    face = align(real, max_faces=1)[0]
    r0 = inv.invert(model, face.crop, steps=0)
    assert r0.w.shape == (1, 14, 512) and r0.steps == 0 and np.isfinite(r0.w).all()
    progress = list(inv.invert_stream(model, face.crop, steps=6, every=3))
    assert [p.step for p in progress] == [0, 1, 2, 3, 4, 5, 6, 6]
    assert sum(p.image is not None for p in progress) >= 3  # step 0, 3, 6 and the end
    r = progress[-1].result
    assert r.w.shape == (1, 14, 512) and r.steps == 6
    assert set(r.losses[0]) >= {"pixel", "perceptual", "total"}
    # the loss goes down and the reconstruction gets closer than encoder-only
    assert r.losses[-1]["total"] < r.losses[0]["total"]
    assert r.psnr > r0.psnr
    # the perceptual term says what it is: never a random-backbone "LPIPS"
    assert r.perceptual.startswith("LPIPS") or "not installed" in r.perceptual


def test_domain_term_every_kth_step(model, dfdc_pairs):
    """The encoder pass of the domain term runs on steps 1, 5, ...; every step reports it."""
    face = align(load_image(dfdc_pairs[0][0]), max_faces=1)[0]
    calls = []
    h = model.E.register_forward_hook(lambda *a: calls.append(1))
    try:
        r = inv.invert(model, face.crop, steps=6, dom_every=4)
    finally:
        h.remove()
    assert len(calls) == 1 + 2  # the encoder's first code, then steps 1 and 5
    assert all("domain" in step for step in r.losses)
    assert r.losses[1]["domain"] == r.losses[0]["domain"]  # carried until the next pass


def test_invert_is_deterministic(model, dfdc_pairs):
    face = align(load_image(dfdc_pairs[1][0]), max_faces=1)[0]
    a = inv.invert(model, face.crop, steps=3, seed=1)
    b = inv.invert(model, face.crop, steps=3, seed=1)
    np.testing.assert_array_equal(a.w, b.w)


def test_batched_inversion_equals_one_at_a_time(model, dfdc_pairs):
    crops = np.stack([align(load_image(p[0]), max_faces=1)[0].crop for p in dfdc_pairs[:2]])
    w = inv.run_batch(model, crops, steps=5, dom_every=2)  # (2, 14, 512)
    alone = np.concatenate([inv.invert(model, c, steps=5, dom_every=2).w for c in crops])
    w0 = inv.encode(model, crops)
    assert w.shape == (2, 14, 512) and np.abs(w - w0).mean() > 1e-3  # the steps moved it
    # the same optimisation; batched convolutions round differently (Adam magnifies that
    # on near-zero gradients), hence a tolerance
    assert np.abs(w - alone).mean() < 0.01 * np.abs(w - w0).mean()  # measured: 0.0012
    np.testing.assert_array_equal(inv.run_batch(model, crops, steps=5, dom_every=2, chunk=1),
                                  alone)  # in chunks of one: exactly inv.run
    assert np.array_equal(inv.run_batch(model, crops, steps=0), w0)


def batching_tol(model, w, passes):
    """How far two float32 runs of the encoder passes may round apart when only their
    batching differs (one face vs four: other kernel blockings, another summation order),
    per W+ row: (..., 14, 1). Each weight layer rounds its outputs with a relative error of
    about eps (float32: 1.2e-7) of the magnitude of its terms, and the errors of the layers
    on the chain add up: E runs 1 + passes times, G passes times (1 + 3 * 36 + 2 * 48 = 204
    layers for two passes of the embedded model). A W+ row is one layer's output, so the
    magnitude is the row's largest |value|. A batching bug moves codes by O(that magnitude),
    far above this bound (here: depth * eps ~ 2.4e-5 of it; seen: up to 6e-7)."""
    def layers(net):
        return sum(1 for q in net.parameters() if q.ndim >= 2)

    depth = (1 + passes) * layers(model.E) + passes * layers(model.G)
    return depth * np.finfo(np.float32).eps * np.abs(w).max(axis=-1, keepdims=True)


def test_refinement_passes(model, dfdc_pairs):
    """w += E(x) - E(G(w)): no gradient, yet G(w) comes closer to the face (validation
    faces: +0.9 dB for two passes, weights/README.md); every entry point agrees."""
    from lf_core.inversion import image_scores
    from lf_core.lab.projectors import StyleGANProjector

    crops = np.stack([align(load_image(p[0]), max_faces=1)[0].crop for p in dfdc_pairs[:4]])
    w0, w2 = inv.encode(model, crops), inv.encode(model, crops, passes=2)
    p0 = image_scores(crops, inv.reconstruct(model, w0))[0]
    p2 = image_scores(crops, inv.reconstruct(model, w2))[0]
    assert p2.mean() > p0.mean() + 0.2, (p0, p2)
    tol = batching_tol(model, w2, passes=2)  # (4, 14, 1)
    assert np.all(np.abs(inv.invert(model, crops[0], steps=0, passes=2).w - w2[:1]) <= tol[:1])
    assert np.array_equal(inv.run_batch(model, crops, steps=0, passes=2), w2)
    proj = StyleGANProjector(model, passes=2)
    assert "2 refinement passes" in proj.name and proj.identity()["invert_kw"] == {"passes": 2}
    assert np.all(np.abs(proj.project(crops) - w2) <= tol)
    for same in (StyleGANProjector(model), StyleGANProjector(model, passes=0)):
        assert same.identity()["invert_kw"] == {}  # codes made before passes stay comparable
    with pytest.raises(ValueError):
        inv.encode(model, crops, passes=-1)


def test_reconstruct_shapes(model):
    w = np.repeat(model.w_avg.numpy()[None], 2, 0)  # (2, 14, 512)
    img = inv.reconstruct(model, w)
    assert img.shape == (2, 256, 256, 3) and img.dtype == np.uint8


def test_should_stop(model, dfdc_pairs):
    face = align(load_image(dfdc_pairs[0][0]), max_faces=1)[0]
    seen = []
    for p in inv.invert_stream(model, face.crop, steps=50, should_stop=lambda: len(seen) >= 4):
        seen.append(p)
    assert seen[-1].result is not None and seen[-1].result.steps < 50


def test_predict_image_and_prior(model, detector, dfdc_pairs):
    res = pipeline.predict_image(dfdc_pairs[0][1], steps=0, model=model, detector=detector)
    f = res.faces[0]
    assert 0 <= f.prob_fake <= 1 and f.verdict in ("real", "fake")
    assert set(f.timings) >= {"align", "encode", "classify"}
    js = res.to_json()
    assert js["faces"][0]["prob_fake"] == f.prob_fake
    # the prior rule: fake iff LR >= pi_real / pi_fake. Priors that put the threshold 10x
    # above and 10x below this face's likelihood ratio give the two answers.
    lr = f.likelihood_ratio
    v_lo = classify(f.w, detector=detector, prior_fake=1 / (1 + 10 * lr))
    v_hi = classify(f.w, detector=detector, prior_fake=1 / (1 + lr / 10))
    assert v_lo.likelihood_ratio == pytest.approx(lr)
    assert not v_lo.is_fake and v_hi.is_fake


def _with_projector(det, **proj):
    import copy

    d = copy.copy(det)
    d.metrics = {"projector": {"kind": "stylegan", "steps": 0, **proj}}
    return d


def test_detector_must_fit_the_model(model, detector, dfdc_pairs):
    """A detector trained on another generator's codes, or on PCA codes, gives no verdict
    (DetectorMismatchError, exit code 5); a detector trained on k-step codes gets its
    verdict on k-step codes whatever steps the reconstruction uses (no caveat note)."""
    from lf_core.artifacts import file_digest
    from lf_core.errors import DetectorMismatchError

    ours = file_digest(model.path)
    assert Detector(_with_projector(detector, weights_sha256=ours)).check(model) == []
    other = Detector(_with_projector(detector, weights_sha256="0123456789abcdef",
                                     weights="ffhq.pt"))
    with pytest.raises(DetectorMismatchError, match="ffhq.pt"):
        other.check(model)
    with pytest.raises(DetectorMismatchError):
        pipeline.predict_image(dfdc_pairs[0][0], model=model, detector=other)
    with pytest.raises(DetectorMismatchError, match="pca"):
        Detector(_with_projector(detector, kind="pca")).check(model)
    two = Detector(_with_projector(detector, steps=2))
    res = pipeline.predict_image(dfdc_pairs[0][0], steps=1, model=model, detector=two)
    f = res.faces[0]
    assert res.notes == [] and f.steps == 1 and f.verdict_steps == 2
    w2 = inv.invert(model, align(load_image(dfdc_pairs[0][0]))[0].crop, steps=2).w
    assert f.prob_fake == pytest.approx(float(two.prob_fake(w2)[0]), abs=1e-6)


def test_predict_video(model, detector, data_dir):
    res = pipeline.predict_video(data_dir / "videos" / "real" / "lynaeydofd.mp4", every=100,
                                 model=model, detector=detector)
    assert [f.index for f in res.frames] == [0, 100, 200]
    assert all(f.faces for f in res.frames)  # the face is found in the 1080p frames
    # the video's p_fake is the mean over frames of the largest face's p_fake (its rule)
    ps = [f.faces[0].prob_fake for f in res.frames]
    assert "mean" in res.rule and res.prob_fake == pytest.approx(np.mean(ps))
    fake = decide(res.prob_fake, 0.5, detector.train_fake_share_)  # default prior
    assert res.verdict == ("fake" if fake else "real")


def test_frozen_weight_cache_follows_the_weights():
    """G caches weights derived from frozen parameters; a reload or an in-place change must
    not leave a stale copy behind, and training (requires_grad) never caches."""
    import torch

    from lf_core import nets

    torch.manual_seed(0)
    a, b = nets.compact_generator().requires_grad_(False), nets.compact_generator()
    w = torch.randn(1, 14, 512)
    with torch.no_grad():
        ya = a(w)
        a.load_state_dict(b.state_dict())  # in-place copy into the cached parameters
        torch.testing.assert_close(a(w), b(w))
        assert not torch.allclose(ya, a(w))
        a.convs[0].conv.weight.mul_(2)
        b.convs[0].conv.weight.mul_(2)
        torch.testing.assert_close(a(w), b(w))
        for g in (a, b):  # the cached noise + bias map follows the noise strength and map
            g.convs[0].noise.weight.fill_(0.5)
        torch.testing.assert_close(a(w), b(w))
        for g in (a, b):
            g.noises.noise_1.mul_(-2)
        torch.testing.assert_close(a(w), b(w))
    assert not b.convs[0].conv.__dict__.get("_frozen")  # b has requires_grad: never cached


def test_ms_ssim_target_cache_is_per_image():
    """The inversion's target statistics are reused only for the very same target tensor:
    a new image, even one allocated where the last one was, gets its own."""
    import torch

    from lf_core import losses

    torch.manual_seed(0)
    a = torch.rand(1, 3, 64, 64) * 2 - 1
    for _ in range(3):
        b = torch.rand(1, 3, 64, 64) * 2 - 1
        fresh = losses.ms_ssim_loss(a, b.clone().requires_grad_(True)).detach()  # no cache
        torch.testing.assert_close(losses.ms_ssim_loss(a, b), fresh)
        torch.testing.assert_close(losses.ms_ssim_loss(a, b), fresh)  # cached: the same
        b.mul_(0.5)  # changed in place: recomputed
        torch.testing.assert_close(losses.ms_ssim_loss(a, b),
                                   losses.ms_ssim_loss(a, b.clone().requires_grad_(True)).detach())
        del b


def test_ssim_filter_paths_agree():
    """MS-SSIM's Gaussian window as banded matmuls gives a depthwise convolution's sums, in
    float32 (the CPU) and float64 (a GPU's path: TF32 would spoil SSIM's variances there)."""
    import torch
    from torch.nn import functional as F

    from lf_core import losses

    x = torch.rand(2, 6, 64, 48)
    g = losses._G
    ref = F.conv2d(x, g[None, None, None, :].expand(6, 1, 1, -1), groups=6)
    ref = F.conv2d(ref, g[None, None, :, None].expand(6, 1, -1, 1), groups=6)
    torch.testing.assert_close(losses._filter(x), ref, atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(losses._filter(x.double()).float(), ref, atol=2e-6, rtol=1e-5)


def test_package_verbs_are_the_functions():
    """`from lf_core import align, ...` gives the verbs, also once every module is loaded
    (a submodule named like a verb used to replace it on the package)."""
    import inspect

    import lf_core.explainers  # noqa: F401
    import lf_core.pipeline  # noqa: F401  (loads alignment, inversion, detector, ...)
    from lf_core import align, classify, explain, invert, load_model, reconstruct

    for f in (align, invert, reconstruct, classify, explain, load_model):
        assert inspect.isfunction(f), f


def test_readme_python_example(dfdc_pairs, model, monkeypatch):
    """The README's Python example runs as written (a DFDC crop for face.jpg, 2 steps)."""
    import re
    from pathlib import Path

    import lf_core.model

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    assert "face.jpg" in code and "steps=100" in code
    code = code.replace('"face.jpg"', repr(str(dfdc_pairs[0][0]))).replace("steps=100", "steps=2")
    monkeypatch.setattr(lf_core.model, "load_model", lambda *a, **k: model)  # loaded once
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["w"].shape == (1, 14, 512) and scope["r"].w.shape == (1, 14, 512)
    assert 0 <= scope["verdict"].prob_fake <= 1
    att = scope["why"]
    assert abs(att.channels.sum() - (scope["verdict"].prob_fake - att.p_fake_baseline)) < 1e-6


def test_load_detector_reads_a_rewritten_file(detector, tmp_path):
    """The demo's Reload and a long-lived process see a detector that lf train rewrote."""
    import copy
    import os

    path = tmp_path / "d.safetensors"
    det = copy.copy(detector)  # save() keeps the metrics: not on the shared fixture
    det.save(path, metrics={"projector": {"kind": "stylegan", "steps": 0}})
    first = load_detector(path)
    assert load_detector(path) is first  # cached while unchanged
    det.save(path, metrics={"projector": {"kind": "stylegan", "steps": 5}})
    os.utime(path, ns=(1, 1))  # a new mtime even on a coarse clock
    assert load_detector(path).steps == 5
