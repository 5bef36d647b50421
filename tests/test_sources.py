"""A detector trained on several sources (lf train CODES CODES --real-only CODES), on a few
real faces of three of the project's sources."""

import csv

import numpy as np
import pytest

from lf_core import cli
from lf_core.detector import Detector
from lf_core.lab.data import split_of
from lf_core.lab.extract import load_codes
from lf_core.lab.sources import split_rows

PER_CLASS = {"train": 10, "val": 4}  # faces of each class in each split


def _subset(src, out, split_key, per=PER_CLASS, labels=("real", "fake")):
    """A manifest in out/<source name>/ of a few faces of `src` per split and label."""
    rows, want = [], {(s, lab): n for s, n in per.items() for lab in labels}
    with open(src, newline="") as f:
        for row in csv.DictReader(f):
            lab = row.get("label", "real")
            key = (split_of(split_key(row)), lab)
            if want.get(key, 0) > 0:
                want[key] -= 1
                rows.append({"path": str(src.parent / row["path"]), "label": lab,
                             "group": split_key(row)})
    out.mkdir(parents=True)
    with open(out / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["path", "label", "group"])
        w.writeheader()
        w.writerows(rows)
    return out / "manifest.csv"


@pytest.fixture(scope="module")
def sources(data_dir, tmp_path_factory, one_torch_thread):
    """Mirror codes of a few DFDC crops, FFHQ / StyleGAN faces and LFW photos."""
    tmp = tmp_path_factory.mktemp("sources")
    dfdc = _subset(data_dir / "dfdc_faces" / "manifest.csv", tmp / "dfdc_faces",
                   lambda r: r["group"])
    ffhq = _subset(data_dir / "ffhq_stylegan" / "manifest.csv", tmp / "ffhq_stylegan",
                   lambda r: r["path"])
    lfw = _subset(data_dir / "lfw" / "manifest.csv", tmp / "lfw", lambda r: r["identity"],
                  labels=("real",))
    out = {}
    for name, m, extra in (("dfdc_faces", dfdc, []), ("ffhq_stylegan", ffhq, ["--prealigned"]),
                           ("lfw", lfw, [])):
        out[name] = tmp / "codes" / name
        assert cli.main(["extract", str(m), "--mirror", "-q", "-o", str(out[name]), *extra]) == 0
    return out


def test_detector_on_several_sources_gives_each_its_temperature(sources, tmp_path):
    det_path = tmp_path / "d.safetensors"
    assert cli.main(["train", str(sources["dfdc_faces"]), str(sources["ffhq_stylegan"]),
                     "--real-only", str(sources["lfw"]), "--classifier", "lr",
                     "-o", str(det_path)]) == 0
    det = Detector.load(det_path)
    names = ["dfdc_faces", "ffhq_stylegan", "lfw"]
    assert [s["name"] for s in det.sources] == names and det.domain is not None
    sm = det.source_model
    assert sm is not None and sm.names_ == names
    T = sm.temperatures
    # a real-only source cannot be calibrated: it takes the softest measured temperature
    assert T["lfw"] == max(T["dfdc_faces"], T["ffhq_stylegan"]) and min(T.values()) > 0
    for name in names:
        c = load_codes(sources[name])
        w, m, y, _ = split_rows(c, "train", name == "lfw")
        # the source model tells the sources' training faces apart
        assert (sm.nearest(w, m) == name).mean() >= 0.8
        # each face's likelihood ratio is divided by its own temperature
        Ts = sm.temperature(w, m)
        assert ((Ts >= min(T.values()) - 1e-5) & (Ts <= max(T.values()) + 1e-5)).all()
        assert det.prob_fake(w, m).shape == (len(w),)
        assert set(det.where(w, m)[0]) <= set(names)
    assert set(det.heldout) == set(names)
    for name in ("dfdc_faces", "ffhq_stylegan"):
        assert det.heldout[name]["ece"] is not None


def test_detector_set_sends_each_face_to_its_sources_member(sources, tmp_path):
    """lf train-set: faces like DFDC frames go to one detector, the rest to another; the
    verdict says which judged, and p(fake) is read at a share of 0.5 whichever it was."""
    from lf_core.detector import DetectorSet
    from lf_core.domain import logit

    video, photo = tmp_path / "detector-video.safetensors", tmp_path / "detector-photo.safetensors"
    assert cli.main(["train", str(sources["dfdc_faces"]), "--real-only", str(sources["lfw"]),
                     "--classifier", "lr", "-o", str(video)]) == 0
    assert cli.main(["train", str(sources["ffhq_stylegan"]), "--real-only", str(sources["lfw"]),
                     "--classifier", "lr", "-o", str(photo)]) == 0
    out = tmp_path / "set.safetensors"
    assert cli.main(["train-set", str(sources["dfdc_faces"]), str(sources["ffhq_stylegan"]),
                     "--real-only", str(sources["lfw"]), "--route",
                     f"dfdc_faces={video.name}", "--route", f"*={photo.name}",
                     "-o", str(out)]) == 0
    ds = Detector.load(out)
    assert isinstance(ds, DetectorSet) and set(ds.members) == {"video", "photo"}
    assert ds.routes == {"dfdc_faces": "video", "ffhq_stylegan": "photo", "lfw": "photo"}
    assert ds.views == 2 and ds.train_fake_share == 0.5
    w, m, _, _ = split_rows(load_codes(sources["dfdc_faces"]), "train", False)
    src, mem = ds.route(w, m)
    assert (mem == "video").mean() >= 0.8
    k = int(np.flatnonzero(src == "dfdc_faces")[0])
    v = ds.judge(w[k:k + 1], m[k:k + 1])
    direct = ds.members["video"].judge(w[k:k + 1], m[k:k + 1])
    assert v.judged_by == "video" and v.nearest_source == "dfdc_faces"
    # the member's evidence at the face's own temperature, read at a share of fakes of 0.5
    T = ds.source_model.temperatures
    assert T["lfw"] == max(T["dfdc_faces"], T["ffhq_stylegan"])
    t = ds.source_model.temperature(w[k:k + 1], m[k:k + 1])[0]
    llr = logit(direct.prob_fake) - logit(direct.train_fake_share)
    assert logit(v.prob_fake) == pytest.approx(llr / t, abs=1e-6)
    assert np.log(v.likelihood_ratio) == pytest.approx(llr / t, abs=1e-6)
    assert ds.prob_fake(w[k:k + 1], m[k:k + 1])[0] == pytest.approx(v.prob_fake, abs=1e-9)
    # explanations run on the member, scoring as the set does for this face
    ex = ds.expert(w[k:k + 1], m[k:k + 1])
    assert ex.clf is ds.members["video"].clf
    assert ex.prob_fake(w[k:k + 1], m[k:k + 1])[0] == pytest.approx(v.prob_fake, abs=1e-9)
    # lf evaluate scores each face by its member, as the verdict does
    from lf_core.lab.evaluate import evaluate_detector

    res = evaluate_detector(sources["dfdc_faces"], out, split="train", predictions=True)
    assert res["classifier"] == "DetectorSet"
    np.testing.assert_allclose([r["prob_fake"] for r in res["predictions"]],
                               ds.prob_fake(w, m), atol=1e-6)  # rounded to 6 places


def test_detector_set_names_only_files_beside_it(sources, tmp_path):
    """A set file is read from strangers too: members are bare file names beside it."""
    import json

    from safetensors import safe_open

    from lf_core.artifacts import write_lf_file
    from lf_core.detector import SET_KEY
    from lf_core.errors import WeightsError

    member = tmp_path / "detector-a.safetensors"
    assert cli.main(["train", str(sources["dfdc_faces"]), "--real-only", str(sources["lfw"]),
                     "--classifier", "lr", "-o", str(member)]) == 0
    out = tmp_path / "set.safetensors"
    assert cli.main(["train-set", str(sources["dfdc_faces"]), "--real-only", str(sources["lfw"]),
                     "--route", f"*={member.name}", "-o", str(out)]) == 0
    with safe_open(str(out), framework="np") as f:
        meta, arrays = json.loads(f.metadata()[SET_KEY]), {k: f.get_tensor(k) for k in f.keys()}
    for bad in ("../detector-a.safetensors", str(member), "sub/detector-a.safetensors"):
        write_lf_file(tmp_path / "bad.safetensors", arrays, SET_KEY,
                      dict(meta, members={"a": bad}))
        with pytest.raises(WeightsError, match="file name beside the set"):
            Detector.load(tmp_path / "bad.safetensors")
    write_lf_file(tmp_path / "bad.safetensors", arrays, SET_KEY,
                  dict(meta, members={"a": "set.safetensors"}))  # a set inside a set
    with pytest.raises(WeightsError, match="itself a detector set"):
        Detector.load(tmp_path / "bad.safetensors")
    write_lf_file(tmp_path / "bad.safetensors", arrays, SET_KEY,
                  dict(meta, members={"a": "missing.safetensors"}))
    with pytest.raises(WeightsError, match="not found beside it"):
        Detector.load(tmp_path / "bad.safetensors")
