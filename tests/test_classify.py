"""lf_core.classifiers on synthetic W+ codes whose real/fake signal lives in channels 9-10."""

import json
import pickle

import numpy as np
import pytest
from safetensors.numpy import save_file
from sklearn.metrics import roc_auc_score

from lf_core.classifiers import (
    CLASSIFIERS,
    MLP2,
    ClassifierInputError,
    LatentClassifier,
    LogReg,
    NotFittedError,
    RandomForest,
    decide,
    likelihood_ratio,
    load_classifier,
)
from lf_core.errors import LFError, WeightsError

SIGNAL = [9, 10]
SMALL = {  # test-sized settings: few trees, few epochs, fewer rows (signal rows included)
    "rf": dict(n_trees=40, n_jobs=1, channels=[8, 9, 10, 11]),
    "lr": dict(),
    "mlp2": dict(max_epochs=4, batch_size=8, channels=SIGNAL),
    "mlp5": dict(max_epochs=4, batch_size=8, channels=SIGNAL),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_codes(n, seed, shift=0.5):
    """(n, 14, 512) codes; fakes are shifted by `shift` in every dim of SIGNAL rows."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.standard_normal((n, 14, 512)).astype(np.float32)
    X[:, SIGNAL, :] += shift * y[:, None, None]
    return X, y


@pytest.fixture(scope="module")
def data():
    return make_codes(300, 0), make_codes(200, 1)


@pytest.fixture(scope="module")
def fitted(data):
    (X, y), _ = data
    return {kind: CLASSIFIERS[kind](seed=0, **SMALL[kind]).fit(X, y) for kind in CLASSIFIERS}


@pytest.mark.parametrize("kind", list(CLASSIFIERS))
def test_learns_signal_and_round_trips(kind, data, fitted, tmp_path):
    _, (Xt, yt) = data
    model = fitted[kind]
    proba = model.predict_proba(Xt)
    assert proba.shape == (len(Xt), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (model.predict(Xt) == yt).mean() > 0.8

    path = model.save(tmp_path / f"{kind}.safetensors", metrics={"acc": 0.9})
    again = load_classifier(path)
    assert type(again) is type(model) and again.metrics == {"acc": 0.9}
    assert again.get_params() == model.get_params()
    np.testing.assert_array_equal(again.predict_proba(Xt), proba)
    assert type(model).load(path).train_fake_share_ == pytest.approx(0.5)


def test_forest_export_matches_sklearn(data, fitted, tmp_path):
    _, (Xt, _) = data
    rf = fitted["rf"]
    expect = rf.sklearn_model_.predict_proba(rf.features(Xt))
    loaded = RandomForest.load(rf.save(tmp_path / "rf.safetensors"))
    assert loaded.sklearn_model_ is None
    np.testing.assert_allclose(loaded.predict_proba(Xt), expect, atol=1e-6)
    # default: half of sklearn's sqrt rule, over the 4 selected rows' 2,048 features
    assert (rf.max_features, rf.sklearn_model_.max_features) == ("sqrt/2", 22)


def test_same_seed_same_predictions(data):
    (X, y), (Xt, _) = data
    a = MLP2(channels=9, seed=3, max_epochs=2).fit(X, y).predict_proba(Xt)
    b = MLP2(channels=9, seed=3, max_epochs=2).fit(X, y).predict_proba(Xt)
    c = MLP2(channels=9, seed=4, max_epochs=2).fit(X, y).predict_proba(Xt)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    rf = [RandomForest(n_trees=5, n_jobs=1, channels=9, seed=s).fit(X, y).predict_proba(Xt) for s in (1, 1)]
    np.testing.assert_array_equal(*rf)


def test_members_average_the_seeds_nets(data, tmp_path):
    """members=3: the mean logit of the nets that seeds 3, 4, 5 fit alone; saved and loaded
    as one file; explain's gradient path sees the same function."""
    import torch

    from lf_core.explainers import torch_forward

    (X, y), (Xt, yt) = data
    kw = dict(channels=9, max_epochs=2)
    ens = MLP2(seed=3, members=3, **kw).fit(X, y)
    alone = [MLP2(seed=s, **kw).fit(X, y) for s in (3, 4, 5)]
    logit = lambda m: np.log(m.predict_proba(Xt)[:, 1] / m.predict_proba(Xt)[:, 0])  # noqa: E731
    expect = 1 / (1 + np.exp(-np.mean([logit(m) for m in alone], 0)))
    np.testing.assert_allclose(ens.predict_proba(Xt)[:, 1], expect, rtol=1e-5)
    assert (ens.predict(Xt) == yt).mean() > 0.8
    assert [i["epochs"] for i in ens.train_info_["members"]] == [m.train_info_["epochs"] for m in alone]
    again = load_classifier(ens.save(tmp_path / "ens.safetensors"))
    assert again.members == 3
    np.testing.assert_array_equal(again.predict_proba(Xt), ens.predict_proba(Xt))
    f = torch_forward(again)
    np.testing.assert_allclose(f(torch.from_numpy(Xt)).detach().numpy(),
                               again.predict_proba(Xt)[:, 1], rtol=1e-5)
    # half=True: float16 weight matrices, half the file, the same probabilities to ~1e-3
    full, half = tmp_path / "ens.safetensors", ens.save(tmp_path / "half.safetensors", half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    small = load_classifier(half)
    np.testing.assert_allclose(small.predict_proba(Xt), ens.predict_proba(Xt), atol=1e-3)
    with pytest.raises(ClassifierInputError, match="members"):
        MLP2(members=0)


def test_channels_select_rows(data):
    (X, y), (Xt, yt) = data
    on_signal = LogReg(channels=SIGNAL[0]).fit(X, y)
    off_signal = LogReg(channels=[0, 1]).fit(X, y)
    assert on_signal.features(Xt).shape == (len(Xt), 512)
    assert off_signal.features(Xt).shape == (len(Xt), 1024)
    assert (on_signal.predict(Xt) == yt).mean() > 0.8
    assert abs((off_signal.predict(Xt) == yt).mean() - 0.5) < 0.15
    # 2-D features work when channels is None
    flat = LogReg().fit(X[:, SIGNAL].reshape(len(X), -1), y)
    assert (flat.predict(Xt[:, SIGNAL].reshape(len(Xt), -1)) == yt).mean() > 0.8


def test_decide_rule():
    assert decide(0.5) and not decide(0.49)
    # prior_fake=0.1: fake only when the likelihood ratio reaches 0.9 / 0.1 = 9
    assert not decide(0.85, prior_fake=0.1) and decide(0.91, prior_fake=0.1)
    assert decide(0.3, prior_fake=0.9)
    # a posterior learnt with 80% fakes: 0.8 is just the training prior, ratio 1
    assert likelihood_ratio(0.8, train_fake_share=0.8) == pytest.approx(1.0)
    assert not decide(0.75, train_fake_share=0.8)
    np.testing.assert_array_equal(decide(np.array([0.2, 0.95]), 0.1), [False, True])
    assert likelihood_ratio(1.0) == np.inf and likelihood_ratio(0.0) == 0.0
    for bad in (0.0, 1.0, -0.2, float("nan")):
        with pytest.raises(ClassifierInputError, match="prior_fake"):
            decide(0.5, prior_fake=bad)


def test_predict_with_rare_fakes_flags_fewer(data, fitted):
    _, (Xt, _) = data
    model = fitted["lr"]
    assert model.predict(Xt, prior_fake=0.01).sum() < model.predict(Xt).sum()
    with pytest.raises(ClassifierInputError):
        model.predict(Xt, prior_fake=1.5)


def test_input_errors(data):
    (X, y), _ = data
    with pytest.raises(NotFittedError, match="not fitted"):
        LogReg().predict_proba(X)
    assert issubclass(NotFittedError, LFError)
    with pytest.raises(ClassifierInputError, match="one class"):
        LogReg().fit(X, np.zeros(len(X)))
    with pytest.raises(ClassifierInputError, match="0 \\(real\\) and 1"):
        LogReg().fit(X, np.arange(len(X)) % 3)
    with pytest.raises(ClassifierInputError, match="shape"):
        LogReg().fit(X, y[:-1])
    with pytest.raises(ClassifierInputError, match="channels"):
        LogReg(channels=[1]).fit(X.reshape(len(X), -1), y)
    with pytest.raises(ClassifierInputError, match="out of range"):
        LogReg(channels=[14]).fit(X, y)
    with pytest.raises(ClassifierInputError, match="shape"):
        LogReg().fit(X[:, 0, 0], y)
    model = LogReg(channels=SIGNAL).fit(X, y)
    with pytest.raises(ClassifierInputError, match="as in training"):
        model.predict_proba(X[:, :, :256])
    with pytest.raises(ClassifierInputError, match="X\\[None\\]"):
        model.predict(X[0])


def test_bad_files_are_refused(data, fitted, tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_classifier(tmp_path / "missing.safetensors")

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    fake = tmp_path / "evil.safetensors"
    fake.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(WeightsError, match="pickle"):
        load_classifier(fake)
    assert not marker.exists()

    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(WeightsError, match="not a readable"):
        load_classifier(junk)

    other = tmp_path / "other.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(other))
    with pytest.raises(WeightsError, match="not a LatentForensics classifier"):
        load_classifier(other)

    path = fitted["lr"].save(tmp_path / "lr.safetensors")
    with pytest.raises(WeightsError, match="not a MLP2"):
        MLP2.load(path)

    # same arrays, newer format version -> refused with the version in the message
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        meta = json.loads(f.metadata()["lf_classifier"])
        arrays = {k: f.get_tensor(k) for k in f.keys()}
    meta["version"] = 99
    newer = tmp_path / "newer.safetensors"
    save_file(arrays, str(newer), metadata={"lf_classifier": json.dumps(meta)})
    with pytest.raises(WeightsError, match="version 99"):
        LatentClassifier.load(newer)

    # arrays that do not match the header
    meta["version"] = 1
    arrays["coef"] = arrays["coef"][:10]
    broken = tmp_path / "broken.safetensors"
    save_file(arrays, str(broken), metadata={"lf_classifier": json.dumps(meta)})
    with pytest.raises(WeightsError, match="inconsistent"):
        load_classifier(broken)


def test_mlp_dropout_adamw(data, tmp_path):
    """The regularised recipe (dropout, AdamW, weight decay): deterministic for a seed, the
    same weight names as the paper's net, its parameters saved and loaded; bad values
    refused. The default stays the paper's SGD net."""
    (X, y), (Xt, yt) = data
    kw = dict(channels=SIGNAL, max_epochs=3, dropout=(0.2, 0.5), optimizer="adamw",
              lr=1e-3, weight_decay=1e-2)
    a, b = MLP2(seed=1, **kw).fit(X, y), MLP2(seed=1, **kw).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(Xt), b.predict_proba(Xt))
    assert roc_auc_score(yt, a.predict_proba(Xt)[:, 1]) > 0.9
    plain = MLP2(seed=1, channels=SIGNAL, max_epochs=1).fit(X, y)
    assert set(plain._arrays()) == set(a._arrays())
    assert plain.get_params()["optimizer"] == "sgd" and plain.get_params()["dropout"] == [0.0, 0.0]
    again = load_classifier(a.save(tmp_path / "d.safetensors"))
    assert again.dropout == (0.2, 0.5) and again.optimizer == "adamw"
    from lf_core.detector import Detector

    assert "(regularised)" in Detector(again).describe()
    assert "regularised" not in Detector(plain).describe()
    np.testing.assert_allclose(again.predict_proba(Xt), a.predict_proba(Xt), rtol=1e-6)
    for bad in (dict(dropout=(0.5,)), dict(dropout=(1.0, 0.0)), dict(optimizer="adam"),
                dict(weight_decay=-1)):
        with pytest.raises(ClassifierInputError):
            MLP2(**bad)


def test_groups_stay_on_one_side_of_the_mlp_holdout(data):
    from lf_core.classifiers import holdout_split

    (X, y), (Xt, yt) = data
    groups = np.arange(len(y)) // 10  # e.g. 10 frames per video
    train, val = holdout_split(y, groups, 0.1, np.random.default_rng(0))
    assert not set(groups[train]) & set(groups[val])
    assert 20 <= len(val) <= 40 and len(train) + len(val) == len(y)
    model = MLP2(channels=SIGNAL, max_epochs=2, batch_size=8).fit(X, y, groups=groups)
    assert model.train_info_["n_val"] == len(val)
    with pytest.raises(ClassifierInputError, match="groups"):
        MLP2().fit(X, y, groups=groups[:-1])


def test_logreg_picks_C_by_group_folds(data, tmp_path):
    """C="auto" (the default) cross-validates C over group folds; a given C skips that."""
    (X, y), (Xt, yt) = data
    groups = np.arange(len(y)) // 2  # a real and a fake per group, as DFDC's source videos
    auto = LogReg(channels=SIGNAL).fit(X, y, groups)
    info = auto.train_info_
    assert info["C"] in LogReg.CS and set(info["cv_auc"]) == {f"{c:g}" for c in LogReg.CS}
    assert info["cv_auc"][f"{info['C']:g}"] == max(info["cv_auc"].values())
    assert roc_auc_score(yt, auto.predict_proba(Xt)[:, 1]) > 0.9
    assert load_classifier(auto.save(tmp_path / "lr.safetensors")).get_params()["C"] == "auto"
    fixed = LogReg(channels=SIGNAL, C=0.5).fit(X, y, groups)
    assert fixed.train_info_["C"] == 0.5 and "cv_auc" not in fixed.train_info_
    few = LogReg(channels=SIGNAL).fit(X[:4], y[:4])  # two of a class: nothing to fold
    assert few.train_info_["C"] == 1.0 and few.train_info_["cv_auc"] == "too few faces per class"
    for bad in (0, -1.0, "big"):
        with pytest.raises(ClassifierInputError, match="C must be"):
            LogReg(C=bad)
