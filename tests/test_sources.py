"""A detector trained on several sources (lf train CODES CODES --real-only CODES), on a few
real faces of three of the project's sources."""

import csv

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
                rows.append({"path": str((src.parent / row["path"]).resolve()), "label": lab,
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
