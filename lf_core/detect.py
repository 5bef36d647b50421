"""The whole verdict: image or video -> faces -> W+ codes -> probability of fake -> decision.

    res = predict_image("face.jpg", steps=20, prior_fake=0.5)
    res.faces[0].prob_fake, res.faces[0].verdict

The decision is the paper's prior rule (classify.decide): fake when
p(x|fake) / p(x|real) >= pi_real / pi_fake, pi_fake = `prior_fake`, the share of fakes
the user expects.
"""

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import inversion as inv
from .alignment import align, mirror
from .artifacts import file_digest
from .classifiers import decide, likelihood_ratio, load_classifier, mean_logit, two_views
from .errors import DetectorMismatchError, LFError, NoFaceError, WeightsError
from .io import load_image, read_video, video_info
from .model import WEIGHTS_DIR, load_model

DEFAULT_DETECTOR = WEIGHTS_DIR / "detector-default.safetensors"
VIDEO_RULE = ("video p_fake = mean of the per-frame p_fake of the largest face, over the "
              "sampled frames where a face was found; then the same prior rule")


@dataclass
class Verdict:
    prob_fake: float  # posterior under the detector's training balance
    likelihood_ratio: float  # p(x|fake) / p(x|real)
    prior_fake: float
    is_fake: bool

    @property
    def label(self):
        return "fake" if self.is_fake else "real"


@dataclass
class FaceResult:
    box: tuple  # (x0, y0, x1, y1) in the source image
    det_score: float
    prob_fake: float
    verdict: str  # "fake" | "real"
    likelihood_ratio: float
    steps: int
    psnr: float  # reconstruction vs aligned crop, dB
    timings: dict  # seconds per stage: align, encode, invert, classify
    crop: np.ndarray = field(repr=False, default=None)  # (256, 256, 3) uint8
    recon: np.ndarray = field(repr=False, default=None)  # (256, 256, 3) uint8
    w: np.ndarray = field(repr=False, default=None)  # (1, 14, 512)

    def to_json(self):
        d = {k: v for k, v in asdict(self).items() if k not in ("crop", "recon", "w")}
        d["box"] = [int(v) for v in self.box]
        return d


@dataclass
class ImageResult:
    path: str
    faces: list
    weights: str
    detector: str
    prior_fake: float
    timings: dict
    notes: list = field(default_factory=list)  # what to know before reading the verdicts

    def to_json(self):
        return {"path": self.path, "weights": self.weights, "detector": self.detector,
                "prior_fake": self.prior_fake, "timings": self.timings, "notes": self.notes,
                "faces": [f.to_json() for f in self.faces]}


@dataclass
class FrameResult:
    index: int
    time_s: float
    faces: list  # FaceResult, largest first; empty when no face


@dataclass
class VideoResult:
    path: str
    frames: list
    prob_fake: float | None  # None when no frame had a face
    verdict: str  # "fake" | "real" | "no face"
    rule: str
    weights: str
    detector: str
    prior_fake: float
    every: int
    notes: list = field(default_factory=list)

    def to_json(self):
        return {"path": self.path, "prob_fake": self.prob_fake, "verdict": self.verdict,
                "rule": self.rule, "weights": self.weights, "detector": self.detector,
                "prior_fake": self.prior_fake, "every": self.every, "notes": self.notes,
                "frames": [{"index": f.index, "time_s": round(f.time_s, 3),
                            "faces": [x.to_json() for x in f.faces]} for f in self.frames]}


_DETECTORS = {}


def load_detector(path=None):
    """The latent classifier at `path` (default: $LF_DETECTOR or weights/)."""
    path = Path(path or os.environ.get("LF_DETECTOR") or DEFAULT_DETECTOR)
    try:
        st = path.stat()
    except OSError:
        raise WeightsError(f"detector not found: {path}. Train one with `lf train` "
                           "or point LF_DETECTOR at a .safetensors detector") from None
    key = (str(path), st.st_mtime_ns, st.st_size)  # a file rewritten by lf train is read anew
    if key not in _DETECTORS:
        _DETECTORS[key] = load_classifier(path)
    return _DETECTORS[key]


def check_detector(det, model, steps=0, passes=0) -> list[str]:
    """Can `det` score the W+ codes that `model` gives after `steps` inversion steps (and
    `passes` encoder refinement passes)? Raises DetectorMismatchError when its training
    codes came from another projector or generator file; returns notes (one sentence
    each) when only the inversion settings differ."""
    proj = (det.metrics or {}).get("projector") or {}
    kind = proj.get("kind", "stylegan")
    if kind in ("pca", "vqvae", "crops"):
        raise DetectorMismatchError(
            f"this detector was trained on {kind} codes; images are scored on a generator's "
            "W+ codes: train a detector on those (lf extract --projector stylegan, lf train), "
            "or evaluate this one with lf evaluate")
    sha, ours = proj.get("weights_sha256"), file_digest(getattr(model, "path", None))
    if sha and sha != "unknown" and ours and not ours.startswith(sha[:16]):
        raise DetectorMismatchError(
            f"this detector was trained on codes of {proj.get('weights', 'another generator')} "
            f"(sha256 {sha[:8]}), not of {model.name} (sha256 {ours[:8]}): its scores on "
            "these codes would mean nothing. Use the generator it was trained with "
            "(--weights / LF_WEIGHTS), or train a detector on this one's codes (lf extract "
            "--weights ..., then lf train)")
    notes = []
    trained = proj.get("steps")
    if trained is not None and int(trained) != int(steps):
        notes.append(f"The detector was trained on codes from {trained} inversion steps; "
                     f"these used {steps}. Scores are most reliable with the same setting.")
    trained_passes = int((proj.get("invert_kw") or {}).get("passes", 0))
    if "invert_kw" in proj and trained_passes != int(passes):
        notes.append(f"The detector was trained on codes after {trained_passes} encoder "
                     f"refinement passes; these used {passes}.")
    return notes


def as_detector(detector):
    """A fitted classifier as it is; a path (or None: the default) loaded."""
    if detector is None or isinstance(detector, (str, Path)):
        return load_detector(detector)
    return detector


def mirror_code(model, crop):
    """Encoder-only W+ codes (N, 14, 512) of aligned crops (N, 256, 256, 3), or of one
    (256, 256, 3) as N = 1, flipped left-right."""
    flipped = mirror(crop)
    return inv.encode(model, flipped.reshape(-1, *flipped.shape[-3:]))


def classify(w, detector=None, prior_fake=0.5, w_mirror=None) -> Verdict:
    """W+ code (1, 14, 512) -> Verdict under the prior rule. w_mirror: the code of the
    face's mirror image; a detector trained on both views then scores the mean of the two
    logits (a face and its mirror get the same verdict); without it, the face alone."""
    det = as_detector(detector)
    ws = [w] + ([w_mirror] if w_mirror is not None and two_views(det) else [])
    x = np.concatenate([np.asarray(v, np.float32).reshape(1, 14, 512) for v in ws])
    p = float(mean_logit(*det.predict_proba(x)[:, 1]))
    share = det.train_fake_share_
    return Verdict(p, float(likelihood_ratio(p, share)), prior_fake,
                   bool(decide(p, prior_fake, share)))


def classify_face(w, crop, model, detector=None, prior_fake=0.5) -> Verdict:
    """classify() of a face's code, with its mirror's (encoder-only) when the detector was
    trained on both views."""
    det = as_detector(detector)
    return classify(w, det, prior_fake, mirror_code(model, crop) if two_views(det) else None)


def score_face(face, model, detector, steps=0, prior_fake=0.5, **invert_kw) -> FaceResult:
    """One aligned Face -> FaceResult (inversion with `steps` steps, then the detector)."""
    r = inv.run(model, face.crop, steps=steps, **invert_kw)
    t = time.perf_counter()
    v = classify_face(r.w, face.crop, model, detector, prior_fake)
    return FaceResult(tuple(face.box), float(face.score), v.prob_fake, v.label,
                      v.likelihood_ratio, r.steps, r.psnr,
                      {"encode": r.encode_s, "invert": r.optimize_s,
                       "classify": time.perf_counter() - t},
                      face.crop, r.image, r.w)


def predict_image(src, steps=0, prior_fake=0.5, model=None, detector=None, max_faces=4):
    """Image (path, bytes or array) -> ImageResult. Raises BadInputError / NoFaceError."""
    model = model or load_model()
    det = as_detector(detector)
    notes = check_detector(det, model, steps)
    t0 = time.perf_counter()
    img = load_image(src)
    t1 = time.perf_counter()
    faces = align(img, max_faces=max_faces)
    t2 = time.perf_counter()
    out = []
    for f in faces:
        r = score_face(f, model, det, steps, prior_fake)
        r.timings = {"align": (t2 - t1) / len(faces), **r.timings}
        out.append(r)
    return ImageResult(str(src) if isinstance(src, (str, Path)) else "<image>", out,
                       model.name, describe_detector(det), prior_fake,
                       {"decode": t1 - t0, "align": t2 - t1, "total": time.perf_counter() - t0},
                       notes)


def score_frames(path, every=10, steps=0, prior_fake=0.5, model=None, detector=None,
                 max_frames=None):
    """Yield a FrameResult (largest face scored, or none) per sampled frame as it is done."""
    model = model or load_model()
    det = as_detector(detector)
    check_detector(det, model, steps)
    video_info(path)  # raises BadInputError for an unreadable file
    for fr in read_video(path, every=every, max_frames=max_frames):
        try:
            faces = align(fr.image, max_faces=1)
            res = [score_face(faces[0], model, det, steps, prior_fake)]
        except NoFaceError:
            res = []
        yield FrameResult(fr.index, fr.time_s, res)


def predict_video(path, every=10, steps=0, prior_fake=0.5, model=None, detector=None,
                  max_frames=None, on_frame=None):
    """Video -> VideoResult: every `every`-th frame aligned and scored (largest face)."""
    model = model or load_model()
    det = as_detector(detector)
    notes = check_detector(det, model, steps)
    frames = []
    for fr in score_frames(path, every, steps, prior_fake, model, det, max_frames):
        frames.append(fr)
        if on_frame is not None:
            on_frame(fr)
    return aggregate(frames, str(path), model.name, describe_detector(det), prior_fake,
                     every, det.train_fake_share_, notes)


def aggregate(frames, path, weights, detector, prior_fake, every, train_fake_share=0.5,
              notes=()):
    ps = [f.faces[0].prob_fake for f in frames if f.faces]
    if not ps:
        return VideoResult(path, frames, None, "no face", VIDEO_RULE, weights, detector,
                           prior_fake, every, list(notes))
    p = float(np.mean(ps))
    verdict = "fake" if decide(p, prior_fake, train_fake_share) else "real"
    return VideoResult(path, frames, p, verdict, VIDEO_RULE, weights, detector, prior_fake, every,
                       list(notes))


def describe_detector(det):
    m = det.metrics or {}
    proj = m.get("projector", {})
    k = getattr(det, "members", 1)  # an MLP ensemble: the mean of k nets' logits
    how = (["regularised"] if getattr(det, "optimizer", "sgd") != "sgd" else []) + (
        [f"mean of {k} nets"] if k > 1 else [])
    name = type(det).__name__ + (f" ({', '.join(how)})" if how else "") + (
        ", each face and its mirror" if two_views(det) else "")
    return f"{name} on {proj.get('kind', 'stylegan')} codes" + (
        f" ({proj.get('steps', 0)} steps)" if proj else "")


__all__ = ["Verdict", "FaceResult", "ImageResult", "VideoResult", "check_detector", "classify",
           "classify_face", "mirror_code", "two_views", "predict_image",
           "predict_video", "load_detector", "LFError"]
