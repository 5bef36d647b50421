"""The shipped detectors' verdicts on real files stay what they were (steps=0: encoder only).

Values were computed with `predict_image(path, steps=0)` and the default weights. The
tolerance follows from float32 arithmetic, not from one machine: the encoder and the
classifier are float32 networks whose summation order depends on the CPU's kernels, so the
logit moves by a few 1e-5 (relative error ~ depth x 6e-8 x sqrt(fan-in), on logits of O(1));
p_fake = sigmoid(logit) has slope <= 1/4, so 1e-4 bounds the change with margin while any
change of model, preprocessing or decision rule moves p_fake by far more.
"""

import pytest

from lf_core.pipeline import predict_image

TOL = 1e-4

PINNED = [  # (file under the data folder, p_fake of its one face, the member that judged it)
    ("dfdc_faces/real/aabqcugcpc.jpg", 0.21307245473920478, "faceswap"),
    ("dfdc_faces/fake/aabmgfhcgg.jpg", 0.6640951888143674, "faceswap"),
    ("ffhq_stylegan/fake/00AUP94LQS.jpg", 0.6627354934239279, "all"),
    ("ffhq_stylegan/real/00000.jpg", 0.027735688996799297, "all"),
]


@pytest.mark.parametrize("rel,p_fake,member", PINNED, ids=[p for p, _, _ in PINNED])
def test_default_detector_p_fake(data_dir, model, rel, p_fake, member):
    """The default is a set: faces like DFDC video frames go to `faceswap`, others to `all`."""
    r = predict_image(data_dir / rel, steps=0, model=model)
    assert len(r.faces) == 1
    assert r.faces[0].prob_fake == pytest.approx(p_fake, abs=TOL)
    assert r.faces[0].judged_by == member
    assert r.faces[0].nearest_source == rel.split("/")[0]


ONE = {  # the shipped members alone, chosen by name as `lf predict --detector` does
    "faceswap": [("dfdc_faces/real/aabqcugcpc.jpg", 0.211123387078295),
                 ("dfdc_faces/fake/aabmgfhcgg.jpg", 0.661498796681574)],
    "all": [("dfdc_faces/real/aabqcugcpc.jpg", 0.2930086599449531),
            ("ffhq_stylegan/fake/00AUP94LQS.jpg", 0.7610790702181236)],
}
TRAINED_ON = {"faceswap": ["dfdc_faces", "lfw", "utkface"],
              "all": ["dfdc_faces", "ffhq_stylegan", "lfw", "utkface"]}


@pytest.mark.parametrize("name,rel,p_fake", [(n, r, p) for n, v in ONE.items() for r, p in v],
                         ids=[f"{n}-{r}" for n, v in ONE.items() for r, _ in v])
def test_shipped_member_p_fake(data_dir, model, name, rel, p_fake):
    r = predict_image(data_dir / rel, steps=0, model=model, detector=name)
    assert r.faces[0].prob_fake == pytest.approx(p_fake, abs=TOL)
    assert r.faces[0].judged_by is None  # one detector, no set
    trained_on = r.detector.split("trained on ")[1].split(", ")  # which one judged the face
    assert sorted(trained_on) == TRAINED_ON[name]
