"""The Detector type, the decision rule, the domain ("unsure") and calibration."""

from pathlib import Path

import numpy as np
import pytest

from lf_core.classifiers import LogReg
from lf_core.decision import DecisionInputError, Verdict, decide, likelihood_ratio, prior_threshold
from lf_core.detector import DEFAULT_DETECTOR, SHIPPED, Detector, detector_path
from lf_core.domain import (
    CodeDomain,
    SourceModel,
    ece,
    ece_floor,
    fit_temperature,
    logit,
    posterior,
)
from lf_core.errors import WeightsError


@pytest.mark.parametrize("share", [0.2, 0.5, 0.7])
@pytest.mark.parametrize("prior", [0.01, 0.3, 0.5, 0.9])
def test_prior_threshold_is_where_decide_turns(prior, share):
    t = prior_threshold(prior, share)
    eps = 1e-9
    assert decide(min(t + eps, 1.0), prior, share)
    assert not decide(max(t - 1e-6, 0.0), prior, share)


def test_decide_at_the_training_share_is_p_half():
    p = np.r_[np.linspace(0.01, 0.49, 49), np.linspace(0.51, 0.99, 49)]  # off the boundary
    assert (decide(p, 0.3, 0.3) == (p >= 0.5)).all()
    assert likelihood_ratio(0.5, 0.5) == 1.0


def test_decision_refuses_probabilities_outside_the_unit_interval():
    with pytest.raises(DecisionInputError, match="prior_fake"):
        decide(0.5, 0.0)
    with pytest.raises(DecisionInputError, match="prob_fake"):
        likelihood_ratio(1.5)


def test_verdict_label_says_unsure_outside_the_domain():
    v = Verdict(0.9, 9.0, 0.5, True, 0.5, outside=True, nearest_source="dfdc", domain_ratio=1.7)
    assert v.label == "unsure"
    assert Verdict(0.9, 9.0, 0.5, True).label == "fake"
    assert abs(v.threshold - 0.5) < 1e-12


def test_code_domain_separates_a_far_cloud():
    rng = np.random.default_rng(0)
    D = 96
    a = rng.normal(0, 1, (3000, D)).astype(np.float32)
    b = rng.normal(0, 1, (3000, D)).astype(np.float32) * 0.5 + 2.0
    far = rng.normal(0, 1, (500, D)).astype(np.float32) * 3.0 - 4.0
    held = rng.normal(0, 1, (1000, D)).astype(np.float32)
    dom = CodeDomain(k=8, quantile=0.99).fit(np.concatenate([a, b]),
                                              np.array(["a"] * 3000 + ["b"] * 3000),
                                              held, np.array(["a"] * 1000))
    near, ratio = dom.nearest(rng.normal(0, 1, (2000, D)).astype(np.float32))
    assert (near == "a").mean() > 0.99
    # limits are the held-out 99th percentile: about 1% of new in-source faces are outside
    assert 0.0 <= (ratio > 1).mean() < 0.03
    assert (dom.nearest(far)[1] > 1).all()
    # round trip through arrays, as in a detector file
    back = CodeDomain.from_arrays(dom.meta(), dom.arrays())
    np.testing.assert_array_equal(back.distance(far), dom.distance(far))


def test_code_domain_refuses_damaged_arrays():
    rng = np.random.default_rng(1)
    dom = CodeDomain(k=4).fit(rng.normal(size=(200, 16)).astype(np.float32), np.array(["a"] * 200))
    arrays = dom.arrays()
    arrays["domain.limit"] = -arrays["domain.limit"]
    with pytest.raises(ValueError, match="positive"):
        CodeDomain.from_arrays(dom.meta(), arrays)
    arrays = dom.arrays()
    arrays["domain.mu"] = arrays["domain.mu"][:, :2]
    with pytest.raises(ValueError, match="shape"):
        CodeDomain.from_arrays(dom.meta(), arrays)


def test_temperature_softens_an_overconfident_score():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 4000)
    x = np.where(y == 1, 1.0, -1.0) + rng.normal(0, 1, 4000)
    true_llr = 2.0 * x  # log N(x; 1, 1) / N(x; -1, 1)
    # a detector twice as confident as the truth: llr * 2
    T = fit_temperature(true_llr * 2.0, y)
    assert 1.6 < T < 2.5
    p_over = posterior(true_llr * 2.0, 0.5)
    assert ece(posterior(true_llr * 2.0 / T, 0.5), y) < ece(p_over, y)


def test_temperature_by_source_lets_a_small_source_count():
    rng = np.random.default_rng(3)
    # a large calibrated source and a small one whose scores are three times too confident
    y_big, y_small = rng.integers(0, 2, 20000), rng.integers(0, 2, 400)
    llr_big = 2.0 * (np.where(y_big == 1, 1.0, -1.0) + rng.normal(0, 1, 20000))
    llr_small = 6.0 * (np.where(y_small == 1, 1.0, -1.0) + rng.normal(0, 1, 400))
    llr, y = np.r_[llr_big, llr_small], np.r_[y_big, y_small]
    g = np.r_[["big"] * 20000, ["small"] * 400]
    pooled, by_source = fit_temperature(llr, y), fit_temperature(llr, y, groups=g)
    assert pooled < 1.2  # the large source decides
    assert by_source > pooled + 0.3  # the small source pulls T towards its own 3
    one = fit_temperature(llr_big, y_big, groups=["one"] * 20000)
    assert one == fit_temperature(llr_big, y_big)


def test_ece_floor_is_what_chance_alone_gives_a_calibrated_detector():
    rng = np.random.default_rng(4)
    p = rng.random(250)
    floor = ece_floor(p, draws=400)
    # labels drawn from p: measured ECE scatters around the floor, far above zero for 250 faces
    eces = [ece(p, rng.random(250) < p) for _ in range(400)]
    assert abs(np.mean(eces) - floor) < 0.01
    assert 0.03 < floor < 0.15
    assert ece_floor(p[:10].repeat(5000), draws=20) < floor / 4  # more faces, lower floor


def test_ece_is_zero_for_a_calibrated_bin_and_the_gap_otherwise():
    p = np.full(1000, 0.7)
    y = np.r_[np.ones(700), np.zeros(300)]
    assert ece(p, y) < 1e-12
    assert abs(ece(np.full(1000, 0.9), y) - 0.2) < 1e-12
    assert abs(logit(0.5)) < 1e-12


def _toy_detector(rng, views=2):
    X = rng.normal(size=(400, 14, 512)).astype(np.float32)
    y = (X[:, 9, :8].sum(1) > 0).astype(int)
    clf = LogReg(C=0.1).fit(X, y)
    clf.metrics = {"mirror": views == 2, "projector": {"kind": "stylegan", "steps": 0}}
    return clf, X, y


def test_detector_round_trip_keeps_domain_temperature_and_baseline(tmp_path):
    rng = np.random.default_rng(3)
    clf, X, y = _toy_detector(rng)
    Z = clf.features(X)
    dom = CodeDomain(k=8).fit(Z, np.array(["toy"] * len(Z)))
    det = Detector(clf, domain=dom, temperature=1.3, real_mean=X[y == 0].mean(0))
    p = det.prob_fake(X[:5], X[:5])
    det.save(tmp_path / "d.safetensors")
    back = Detector.load(tmp_path / "d.safetensors")
    assert back.temperature == 1.3 and back.views == 2
    np.testing.assert_allclose(back.prob_fake(X[:5], X[:5]), p, atol=1e-6)
    np.testing.assert_array_equal(back.real_mean, det.real_mean)
    v = back.judge(X[:1], X[:1])
    assert v.nearest_source == "toy" and v.domain_ratio is not None
    # far from every training code: no verdict
    assert back.judge(X[:1] * 50, X[:1] * 50).label == "unsure"


def test_source_model_gives_each_face_its_sources_temperature(tmp_path):
    rng = np.random.default_rng(5)
    # three sources apart on rows 7 and 8; "c" has real faces only: the pooled T
    W = rng.normal(size=(900, 14, 512)).astype(np.float32)
    src = np.repeat(["a", "b", "c"], 300)
    W[src == "b", 7] += 1.0
    W[src == "c", 8] += 1.0
    sm = SourceModel({"a": 1.0, "b": 2.0}, default=1.5).fit(W, src)
    new = rng.normal(size=(300, 14, 512)).astype(np.float32)
    new[100:200, 7] += 1.0
    new[200:, 8] += 1.0
    assert (sm.nearest(new) == np.repeat(["a", "b", "c"], 100)).mean() > 0.95
    T = sm.temperature(new)
    # confident faces get their source's T; the harmonic mix stays between the extremes
    assert np.median(T[:100]) < 1.05 and np.median(T[100:200]) > 1.9
    assert abs(np.median(T[200:]) - 1.5) < 0.05 and ((T >= 1.0 - 1e-5) & (T <= 2.0 + 1e-5)).all()
    back = SourceModel.from_arrays(sm.meta(), sm.arrays())
    np.testing.assert_array_equal(back.temperature(new, new[::-1]), sm.temperature(new, new[::-1]))
    bad = sm.arrays()
    bad["source.T"] = -bad["source.T"]
    with pytest.raises(ValueError, match="temperatures"):
        SourceModel.from_arrays(sm.meta(), bad)
    bad = sm.arrays()
    bad["source.coef"] = bad["source.coef"][:, :100]
    with pytest.raises(ValueError, match="shape"):
        SourceModel.from_arrays(sm.meta(), bad)
    # two sources: the binary fit gives the same kind of model
    two = SourceModel({"a": 1.0, "b": 3.0}).fit(W[:600], src[:600])
    assert (two.nearest(new[:200]) == np.repeat(["a", "b"], 100)).mean() > 0.95

    # in a detector: each face's likelihood ratio divided by its own T; saved and loaded
    clf, X, y = _toy_detector(rng)
    det = Detector(clf, temperature=1.5, source_model=sm)
    share = det.train_fake_share
    llr = logit(Detector(clf).prob_fake(new, new)) - logit(share)
    np.testing.assert_allclose(det.prob_fake(new, new),
                               posterior(llr / sm.temperature(new, new), share), atol=1e-9)
    det.save(tmp_path / "d.safetensors")
    back = Detector.load(tmp_path / "d.safetensors")
    np.testing.assert_allclose(back.prob_fake(new, new), det.prob_fake(new, new), atol=1e-6)
    back.source_model = None  # saved without it: one temperature again, no stale record
    back.save(tmp_path / "e.safetensors")
    one = Detector.load(tmp_path / "e.safetensors")
    assert one.source_model is None and one.temperature == 1.5


def test_shipped_default_detector_loads_as_a_detector():
    det = Detector.load(DEFAULT_DETECTOR)
    assert det.views == 2 and det.steps == 0
    assert 0 < det.train_fake_share < 1
    assert "MLP2" in det.describe()


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_detectors_load_by_name(name, monkeypatch):
    """`--detector NAME` and LF_DETECTOR=NAME mean the shipped file; a path stays a path."""
    det = Detector.load(name)
    assert det.path == SHIPPED[name] and det.views == 2 and det.domain is not None
    monkeypatch.setenv("LF_DETECTOR", name)
    assert detector_path() == SHIPPED[name]
    assert detector_path("some/dir/faceswap") == Path("some/dir/faceswap")
    with pytest.raises(WeightsError, match="faceswap"):  # the error lists the shipped names
        Detector.load("no-such-detector.safetensors")
