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

PINNED = [  # (file under the data folder, p_fake of its one face)
    ("dfdc_faces/real/aabqcugcpc.jpg", 0.2930086599449531),
    ("dfdc_faces/fake/aabmgfhcgg.jpg", 0.589890763345085),
    ("ffhq_stylegan/fake/00AUP94LQS.jpg", 0.7610790702181236),
    ("ffhq_stylegan/real/00000.jpg", 0.0020042884391202466),
]


@pytest.mark.parametrize("rel,p_fake", PINNED, ids=[p for p, _ in PINNED])
def test_default_detector_p_fake(data_dir, model, rel, p_fake):
    r = predict_image(data_dir / rel, steps=0, model=model)
    assert len(r.faces) == 1
    assert r.faces[0].prob_fake == pytest.approx(p_fake, abs=TOL)


FACESWAP = [  # the shipped `faceswap` detector, chosen by name as `lf predict --detector` does
    ("dfdc_faces/real/aabqcugcpc.jpg", 0.21556624096465216),
    ("dfdc_faces/fake/aabmgfhcgg.jpg", 0.5086548363378343),
]


@pytest.mark.parametrize("rel,p_fake", FACESWAP, ids=[p for p, _ in FACESWAP])
def test_faceswap_detector_p_fake(data_dir, model, rel, p_fake):
    r = predict_image(data_dir / rel, steps=0, model=model, detector="faceswap")
    assert r.faces[0].prob_fake == pytest.approx(p_fake, abs=TOL)
    trained_on = r.detector.split("trained on ")[1].split(", ")  # which one judged the face
    assert sorted(trained_on) == ["dfdc_faces", "lfw", "utkface"]
