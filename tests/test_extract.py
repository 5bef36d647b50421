"""extract -> codes folder (resume, failures) -> train -> evaluate, on 12 DFDC crops."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from lf_core import cli
from lf_core.classifiers import load_classifier
from lf_core.errors import LFError
from lf_core.lab.baselines import load_baseline
from lf_core.lab.data import read_manifest
from lf_core.lab.evaluate import METRIC_KEYS, evaluate_detector, metrics, train_detector
from lf_core.lab.extract import extract, load_codes
from lf_core.lab.projectors import StyleGANProjector


@pytest.fixture(scope="module")
def manifest(pair_items, tmp_path_factory):
    """12 DFDC crops (real + fake of 4 train-split and 2 test-split source videos) and one
    row that is not an image, as a manifest in a temporary folder."""
    d = tmp_path_factory.mktemp("manifest")
    (d / "notes.txt").write_text("this is not an image\n")
    path = d / "manifest.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "group"])
        for r, fk in pair_items:
            for it in (r, fk):
                w.writerow([str(it.path), "real" if it.label == 0 else "fake", it.group])
        w.writerow(["notes.txt", "real", "notes"])
    return path


class Counting(StyleGANProjector):
    """Counts the faces it projects; can simulate a kill at its n-th call."""

    def __init__(self, model, kill_at=None):
        super().__init__(model, steps=0)
        self.calls, self.faces, self.kill_at = 0, 0, kill_at

    def project(self, crops):
        self.calls += 1
        if self.calls == self.kill_at:
            raise KeyboardInterrupt  # as if the process were killed mid-run
        self.faces += len(crops)
        return super().project(crops)


@pytest.fixture(scope="module")
def codes_dir(model, manifest, tmp_path_factory):
    """Extract in three runs: killed in its 2nd chunk, resumed up to a limit, finished."""
    out = tmp_path_factory.mktemp("codes") / "sg0"
    p1 = Counting(model, kill_at=2)
    with pytest.raises(KeyboardInterrupt):
        extract(manifest, p1, out, batch=4, limit=8, progress=False)
    assert p1.faces == 4 and (out / "chunks" / "00000000.npz").exists()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["complete"] is False and meta["n_done"] == 4
    with pytest.raises(LFError, match="unfinished"):
        load_codes(out)
    first = (out / "chunks" / "00000000.npz").stat().st_mtime_ns

    p2 = Counting(model)
    extract(manifest, p2, out, batch=4, limit=8, progress=False)  # resumes: chunk 4..8 only
    assert (p2.calls, p2.faces) == (1, 4)
    second = (out / "chunks" / "00000004.npz").stat().st_mtime_ns
    assert len(load_codes(out)) == 8

    p3 = Counting(model)
    extract(manifest, p3, out, batch=4, progress=False)  # no limit: the last 5 rows only
    # rows 8..12: 4 DFDC crops (one call) + the non-image (fails to load: nothing to project)
    assert p3.calls == 1 and p3.faces <= 4
    assert (out / "chunks" / "00000000.npz").stat().st_mtime_ns == first
    assert (out / "chunks" / "00000004.npz").stat().st_mtime_ns == second
    return out


def test_codes_and_failures(codes_dir, manifest, model):
    c = load_codes(codes_dir)
    n_rows = len(read_manifest(manifest))
    assert c.meta["complete"] and c.meta["n_items"] == n_rows == 13
    assert c.codes.shape[1:] == (14, 512) and c.codes.dtype == np.float32
    assert np.isfinite(c.codes).all()
    # every row is either a code or a listed failure, never dropped unseen
    assert len(c) + c.meta["n_failed"] == n_rows
    # the three runs' clocks add up (what lf bench reports per face after a resume)
    assert c.meta["work_faces"] == n_rows and c.meta["work_s"] > 0
    failed_paths = [r["path"] for r in c.failed]
    assert any(p.endswith("notes.txt") for p in failed_paths)
    assert all(r["reason"] for r in c.failed)
    assert len(c) >= 10  # a DFDC crop without a face may fail too, but not most
    assert set(c.labels.tolist()) <= {0, 1} and len(c.paths) == len(c.groups) == len(c)
    assert c.projector["kind"] == "stylegan" and c.projector["steps"] == 0
    # a rerun with another projector into the same folder is refused
    with pytest.raises(LFError, match="another projector"):
        extract(manifest, StyleGANProjector(model, steps=3), codes_dir, progress=False)


def test_group_split_is_disjoint(codes_dir, manifest):
    """Each face keeps its manifest group (source video), so a video's real and fake crops
    land on one side: train holds the 4 train videos' 8 crops, test the 2 test videos' 4,
    and no video (as the manifest names it, not as the codes do) is on both sides."""
    group_of = {Path(it.path).name: it.group for it in read_manifest(manifest)}
    c = load_codes(codes_dir)
    assert [group_of[Path(p).name] for p in c.paths] == list(c.groups)
    tr, te = c.where("train"), c.where("test")
    assert (len(tr), len(te)) == (8, 4)
    for part in (tr, te):  # whole videos: each with its real and its fake crop
        for g in set(part.groups):
            assert sorted(part.labels[part.groups == g].tolist()) == [0, 1]
    videos = lambda part: {group_of[Path(p).name] for p in part.paths}  # noqa: E731
    assert len(videos(tr)) == 4 and len(videos(te)) == 2
    assert not videos(tr) & videos(te)


def test_train_and_evaluate(codes_dir, manifest, tmp_path, model):
    det_path = tmp_path / "lr.safetensors"
    det = train_detector(codes_dir, "lr", det_path, split="train", log=lambda m: None)
    m = det.metrics
    assert m["projector"]["kind"] == "stylegan" and m["projector"]["steps"] == 0
    assert m["projector"]["weights"] and m["split"] == "train" and m["data"]["manifest"]
    assert m["n_train"] == len(load_codes(codes_dir).where("train"))

    res = evaluate_detector(codes_dir, det_path, split="test")
    assert set(METRIC_KEYS) <= set(res)
    assert res["n"] == len(load_codes(codes_dir).where("test")) and res["split"] == "test"
    assert set(res["confusion"]) >= {"tn", "fp", "fn", "tp", "matrix"}
    assert res["group"]["n_groups"] == 2
    assert len(res["predictions"]) == res["n"]
    assert all(0 <= p["prob_fake"] <= 1 and p["path"] for p in res["predictions"])
    train_groups = set(load_codes(codes_dir).where("train").groups)
    assert not {p["group"] for p in res["predictions"]} & train_groups
    # the detector's own training split is refused (same source videos on both sides)
    with pytest.raises(LFError, match="training split"):
        evaluate_detector(codes_dir, det_path, split="train")
    # from the manifest: the test split is extracted with the detector's projector
    res2 = evaluate_detector(manifest, det_path, split="test", model=model, log=lambda m: None)
    assert res2["n"] == res["n"]
    np.testing.assert_allclose(sorted(p["prob_fake"] for p in res2["predictions"]),
                               sorted(p["prob_fake"] for p in res["predictions"]), atol=1e-5)


def test_mirror_views(codes_dir, manifest, tmp_path, model):
    """lf extract --mirror stores the code of each face flipped left-right; a detector
    trained on both views gives a face and its mirror image the same score."""
    from lf_core.detector import Detector
    from lf_core.inversion import encode
    from lf_core.lab.extract import load_crop
    from lf_core.pipeline import mirror_code

    out = tmp_path / "mirror"
    extract(manifest, StyleGANProjector(model, steps=0), out, batch=4, mirror=True,
            progress=False)
    c = load_codes(out)
    assert c.meta["mirror"] and c.mirror.shape == c.codes.shape
    crop = load_crop(c.paths[0])
    np.testing.assert_allclose(c.codes[0], encode(model, crop[None])[0], atol=1e-4)
    np.testing.assert_allclose(c.mirror[0], mirror_code(model, crop)[0], atol=1e-4)
    assert np.abs(c.mirror - c.codes).mean() > 1e-3  # faces are not symmetric
    with pytest.raises(LFError, match="--mirror"):  # a resume must keep the option
        extract(manifest, StyleGANProjector(model, steps=0), out, batch=4, progress=False)

    det_path = tmp_path / "lr2.safetensors"
    det = train_detector(out, "lr", det_path, split="train", log=lambda m: None)
    assert det.metrics["mirror"] and det.metrics["n_train"] == len(c.where("train"))
    res = evaluate_detector(out, det_path, split="test")
    assert res["n"] == len(c.where("test"))
    with pytest.raises(LFError, match="lf extract --mirror"):
        evaluate_detector(codes_dir, det_path, split="test")  # one view only
    # from a manifest, the detector's extraction has both views again
    res2 = evaluate_detector(manifest, det_path, split="test", model=model, log=lambda m: None)
    np.testing.assert_allclose(sorted(p["prob_fake"] for p in res2["predictions"]),
                               sorted(p["prob_fake"] for p in res["predictions"]), atol=1e-5)
    # a face and its mirror image: the same two views, so the same verdict
    two = Detector(det)
    v = two.judge(c.codes[:1], mirror_code(model, crop))
    v_m = two.judge(c.mirror[:1], mirror_code(model, np.ascontiguousarray(crop[:, ::-1])))
    assert v.prob_fake == pytest.approx(v_m.prob_fake, abs=1e-5)
    p_face = det.predict_proba(c.codes[:1])[0, 1]
    assert v.prob_fake != pytest.approx(p_face, abs=1e-6)  # the mirror view counted


def test_cli_train_evaluate_vqvae(codes_dir, manifest, tmp_path, capsys):
    det = tmp_path / "det.safetensors"
    assert cli.main(["train", str(codes_dir), "--classifier", "lr", "-o", str(det)]) == 0
    capsys.readouterr()
    assert cli.main(["evaluate", str(codes_dir), "--detector", str(det), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(METRIC_KEYS) <= set(out) and out["predictions"]
    assert "roc_auc_ci95" not in out  # only on request: it costs B AUCs
    assert cli.main(["evaluate", str(codes_dir), "--detector", str(det), "--bootstrap", "300"]) == 0
    assert "AUC 95% interval [" in capsys.readouterr().out
    assert cli.main(["extract", str(manifest), "--projector", "vqvae", "--projector-file",
                     str(tmp_path / "none.safetensors"), "-o", str(tmp_path / "v")]) == 5
    err = capsys.readouterr().err.strip()
    assert "lf train-vqvae" in err and "\n" not in err
    assert cli.main(["train", str(tmp_path), "--classifier", "lr", "-o", str(det)]) == 1
    assert "not a codes folder" in capsys.readouterr().err
    # a smaller forest than the paper's 1500 trees (e.g. to ship a smaller file)
    assert cli.main(["train", str(codes_dir), "--classifier", "rf", "--trees", "7",
                     "--max-features", "5", "-o", str(det)]) == 0
    rf = load_classifier(det)
    assert (rf.n_trees, rf.max_features) == (7, 5)
    # several MLPs averaged (seeds 0, 1)
    assert cli.main(["train", str(codes_dir), "--classifier", "mlp2", "--members", "2",
                     "-o", str(det)]) == 0
    assert load_classifier(det).members == 2
    # the paper's plain logistic regression at a fixed C (default: C by group folds)
    assert cli.main(["train", str(codes_dir), "--classifier", "lr", "--C", "0.5", "-o", str(det)]) == 0
    assert load_classifier(det).train_info_["C"] == 0.5 and "LogReg (C=0.5) on" in capsys.readouterr().out
    for bad in (["--classifier", "lr", "--trees", "7"], ["--classifier", "rf", "--max-features", "0"],
                ["--classifier", "rf", "--members", "2"], ["--classifier", "rf", "--C", "1"],
                ["--classifier", "lr", "--C", "0"]):
        with pytest.raises(SystemExit):
            cli.main(["train", str(codes_dir), *bad, "-o", str(det)])


def test_cli_cnn_baseline(manifest, tmp_path, capsys):
    """lf extract --projector crops, lf train --classifier meso4, lf evaluate: the CNN
    baselines outside lf bench, the same split and the same report."""
    crops, det = tmp_path / "crops", tmp_path / "meso.safetensors"
    assert cli.main(["extract", str(manifest), "--projector", "crops", "--crop-size", "64",
                     "-q", "-o", str(crops)]) == 0
    c = load_codes(crops)
    assert c.codes.shape[1:] == (64, 64, 3) and c.codes.dtype == np.uint8 and len(c.failed) == 1
    assert cli.main(["train", str(crops), "--classifier", "meso4", "--epochs", "1",
                     "-o", str(det)]) == 0
    assert "Meso4" in capsys.readouterr().out or det.is_file()
    # the same command with more epochs trains on from the checkpoint beside the file
    assert (tmp_path / "meso.ckpt").is_file()
    assert cli.main(["train", str(crops), "--classifier", "meso4", "--epochs", "2",
                     "-o", str(det)]) == 0
    assert "going on from" in capsys.readouterr().err and load_baseline(det).train_info_["epochs"] == 2
    assert cli.main(["evaluate", str(crops), "--detector", str(det), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["classifier"] == "meso4" and out["n"] == len(c.where("test", labelled=True))
    assert set(METRIC_KEYS) <= set(out) and len(out["predictions"]) == out["n"]
    assert cli.main(["evaluate", str(crops), "--detector", str(det), "--bootstrap", "200"]) == 0
    assert "AUC 95% interval [" in capsys.readouterr().out
    # from the manifest: its test faces are aligned into crops of the size it trained on
    assert cli.main(["evaluate", str(manifest), "--detector", str(det), "--json", "-q"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["n"] == out["n"] and again["data"] == str(manifest)
    np.testing.assert_allclose(sorted(p["prob_fake"] for p in again["predictions"]),
                               sorted(p["prob_fake"] for p in out["predictions"]), atol=1e-5)
    # a latent classifier refuses crops and says what they are for
    assert cli.main(["train", str(crops), "--classifier", "lr", "-o", str(tmp_path / "x")]) == 1
    assert "--classifier meso4" in capsys.readouterr().err
    for bad in (["--classifier", "meso4", "--members", "2"], ["--classifier", "lr", "--epochs", "2"]):
        with pytest.raises(SystemExit):
            cli.main(["train", str(crops), *bad, "-o", str(det)])


def test_bootstrap_auc_resamples_whole_groups():
    from sklearn.metrics import roc_auc_score

    from lf_core.stats import bootstrap_auc, percentile_ci95

    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(40), 2)  # a real face and its fake per source video
    y = np.tile([0, 1], 40)
    good, noise = y + rng.normal(0, 0.8, 80), rng.random(80)
    b = bootstrap_auc(y, [good, noise], g, resamples=500, seed=1)
    assert b.shape == (500, 2)  # every resample holds both classes: no resample skipped
    np.testing.assert_array_equal(b, bootstrap_auc(y, [good, noise], g, resamples=500, seed=1))
    lo, hi = percentile_ci95(b[:, 0])
    assert lo < roc_auc_score(y, good) < hi and percentile_ci95(b[:, 0] - b[:, 1])[0] > 0
    # one resample = whole groups: with one face per group of a single class, none is usable
    assert bootstrap_auc([1, 1], [0.2, 0.9], ["a", "b"], resamples=50).shape == (0, 1)
    assert percentile_ci95([]) is None


def test_metrics_values():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.4, 0.6, 0.35, 0.8, 0.9])
    m = metrics(y, p, groups=["a", "a", "b", "a", "b", "b"], paths=list("uvwxyz"))
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion"]["matrix"] == [[2, 1], [1, 2]]
    assert m["roc_auc"] == pytest.approx(7 / 9)
    assert m["eer"] == pytest.approx(1 / 3)
    assert m["group"]["n"] == 4  # (a, real), (a, fake), (b, real), (b, fake)
    assert [r["pred"] for r in m["predictions"]] == [0, 0, 1, 0, 1, 1]
    perfect = metrics([0, 1], [0.2, 0.9])
    assert perfect["eer"] == 0 and perfect["roc_auc"] == 1 and perfect["group"] is None
    one_class = metrics([1, 1], [0.2, 0.9])
    assert one_class["roc_auc"] is None and one_class["eer"] is None


def test_training_faces_refused_for_every_split_kind():
    """Latent and CNN detectors share one leak check; a detector trained on --split all
    refuses every face of its manifest, and the advice names a split that can work."""
    from types import SimpleNamespace as NS

    from lf_core.lab.evaluate import refuse_training_faces

    codes = NS(meta={"manifest_sha256": "m"})
    ev = NS(splits=np.array(["test", "val"]))
    dm = lambda split: {"data": {"manifest_sha256": "m"}, "split": split}  # noqa: E731
    refuse_training_faces(dm("train"), codes, ev)  # nothing of train: fine
    refuse_training_faces(dm("all"), NS(meta={"manifest_sha256": "other"}), ev)
    with pytest.raises(LFError, match="--split val"):
        refuse_training_faces(dm("test"), codes, ev)
    with pytest.raises(LFError, match="every split"):
        refuse_training_faces(dm("all"), codes, ev)


def test_identity_includes_refinement_passes():
    from lf_core.lab.evaluate import _identity_matches

    det = {"kind": "stylegan", "steps": 0, "weights_sha256": "a", "invert_kw": {}}
    assert _identity_matches(det, {**det})
    assert _identity_matches(det, {k: v for k, v in det.items() if k != "invert_kw"})  # older codes
    assert not _identity_matches(det, {**det, "invert_kw": {"passes": 2}})
    assert not _identity_matches({**det, "invert_kw": {"passes": 2}}, det)


def test_non_finite_codes_are_listed_not_kept(manifest, tmp_path):
    """A projector that returns NaN for a face (a diverged inversion, a broken file): the
    face is listed in failed.csv with the reason, and no NaN reaches the codes."""
    from lf_core.lab.extract import NON_FINITE
    from lf_core.lab.projectors import CropProjector

    class Flaky(CropProjector):
        def project(self, crops):
            out = super().project(crops).astype(np.float32)
            out[:1] = np.nan  # the first face of every chunk
            return out

    out = extract(manifest, Flaky(16), tmp_path / "c", batch=8, progress=False)
    c = load_codes(out)
    n_rows = len(read_manifest(manifest))
    assert np.isfinite(c.codes).all() and len(c) + c.meta["n_failed"] == n_rows
    assert sum(r["reason"] == NON_FINITE for r in c.failed) == 2  # one per chunk of 8
