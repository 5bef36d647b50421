"""The one streaming pipeline: events, verdicts on the detector's own codes, explanations
that add up to the verdict, the video rule with abstentions."""

from pathlib import Path

import numpy as np
import pytest

from lf_core.detector import Detector
from lf_core.pipeline import FaceResult, FrameResult, aggregate, analyse_image, predict_image

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "demo" / "examples" / "real_ffhq_00002.jpg"


@pytest.fixture(scope="module")
def default():
    return Detector.load()


@pytest.fixture(scope="module")
def events(model, default):
    return list(analyse_image(EXAMPLE, steps=3, model=model, detector=default, explain=True,
                              largest_only=True, every=1))


def test_events_come_in_order(events):
    names = [e.name for e in events]
    assert names[:2] == ["aligned", "decided"]
    assert names[-4:] == ["inverted", "explained", "face", "done"]
    assert set(names[2:-4]) == {"inverting"} and len(names[2:-4]) == 4  # steps 0..3
    res = events[-1].result
    assert len(res.faces) == 1 and res.faces[0].steps == 3


def test_the_verdict_does_not_depend_on_the_steps_the_user_watches(model, default, events):
    v3 = next(e for e in events if e.name == "decided").verdict
    v0 = predict_image(EXAMPLE, steps=0, model=model, detector=default).faces[0]
    # the same encoder-only codes either way: the same arithmetic, the same float64 score
    assert v0.prob_fake == v3.prob_fake
    assert v0.verdict_steps == 0 == default.steps
    assert not any("inversion steps" in n for n in events[-1].result.notes)


def test_explanation_adds_up_to_the_verdict(events):
    v = next(e for e in events if e.name == "decided").verdict
    att = next(e for e in events if e.name == "explained").attribution
    assert att.views == 2  # the default scores the face and its mirror together
    # the verdict's own score, and the rows sum to it minus the baseline's (rescale rule)
    assert abs(att.p_fake - v.prob_fake) < 1e-6
    assert abs(att.channels.sum() - (att.p_fake - att.p_fake_baseline)) < 1e-6


def _frame(i, p, verdict):
    face = FaceResult((0, 0, 1, 1), 1.0, p, verdict, 1.0, 0, 30.0, {})
    return FrameResult(i, i / 30, [face])


def test_video_rule_leaves_out_frames_outside_the_domain():
    frames = [_frame(0, 0.9, "fake"), _frame(1, 0.8, "fake"), _frame(2, 0.1, "unsure")]
    v = aggregate(frames, "v.mp4", "w", "d", 0.5, 10, 0.5)
    assert v.verdict == "fake" and abs(v.prob_fake - 0.85) < 1e-12
    frames = [_frame(0, 0.9, "unsure"), _frame(1, 0.8, "unsure"), _frame(2, 0.1, "real")]
    v = aggregate(frames, "v.mp4", "w", "d", 0.5, 10, 0.5)
    assert v.verdict == "unsure" and any("unlike" in n for n in v.notes)
    v = aggregate([FrameResult(0, 0.0, [])], "v.mp4", "w", "d", 0.5, 10, 0.5)
    assert v.verdict == "no face" and v.prob_fake is None


def test_an_image_without_a_detector_still_inverts(model):
    evs = list(analyse_image(EXAMPLE, steps=0, model=model, need_detector=False))
    assert "decided" not in [e.name for e in evs]
    f = evs[-1].result.faces[0]
    assert f.verdict == "n/a" and np.isnan(f.prob_fake) and f.recon.shape == (256, 256, 3)
