"""The whole verdict, as one stream of events: image or video -> faces -> codes -> verdicts.

    for ev in analyse_image("face.jpg", steps=20):     # the demo, `lf predict`
        if ev.name == "decided":
            print(ev.verdict.label, ev.verdict.prob_fake)
    res = predict_image("face.jpg")                     # the same, to the end: ImageResult

Events, in order, for each face analysed (`name`: the dataclass):

    aligned    Aligned     the faces found in the image (largest first)
    decided    Decided     the face's verdict, on the codes the detector was trained on
    inverting  Inverting   one step of the inversion the user watches (a Progress)
    inverted   Inverted    its result (the reconstruction, PSNR)
    explained  Explained   attributions of the verdict (explain=True)
    face       FaceDone    the FaceResult
    frame      FrameDone   one sampled video frame (videos)
    done       Done        the ImageResult / VideoResult

The verdict is computed on the code the detector was trained on: for the default (encoder
only) right after encoding, before any inversion step, so `steps` only refines the
reconstruction the user watches; for a detector trained on k-step codes, on the code
after k steps. So a verdict never depends on the demo's slider.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import inversion as inv
from .alignment import align, mirror
from .decision import UNSURE, Verdict, decide
from .detector import Detector, as_detector
from .errors import NoFaceError
from .io import load_image, read_video, video_info
from .model import load_model

VIDEO_RULE = ("video p_fake = mean of the per-frame p_fake of the largest face, over the "
              "sampled frames where a face was found and lies in the detector's domain; "
              "then the same prior rule; unsure when most such frames lie outside it")


# --------------------------------------------------------------------------- results


@dataclass
class FaceResult:
    box: tuple  # (x0, y0, x1, y1) in the source image
    det_score: float
    prob_fake: float
    verdict: str  # "fake" | "real" | "unsure"
    likelihood_ratio: float
    steps: int  # inversion steps of the reconstruction
    psnr: float  # reconstruction vs aligned crop, dB
    timings: dict  # seconds per stage: align, encode, classify, invert
    verdict_steps: int = 0  # inversion steps of the code the verdict used
    nearest_source: str | None = None  # the training source the face is most like
    domain_ratio: float | None = None  # distance to the training faces / limit; > 1: unsure
    judged_by: str | None = None  # the member of a detector set that judged the face
    crop: np.ndarray = field(repr=False, default=None)  # (256, 256, 3) uint8
    recon: np.ndarray = field(repr=False, default=None)  # (256, 256, 3) uint8
    w: np.ndarray = field(repr=False, default=None)  # (1, 14, 512) the reconstruction's code

    def to_json(self):
        d = {k: v for k, v in asdict(self).items() if k not in ("crop", "recon", "w")}
        d["box"] = [int(v) for v in self.box]
        return d


@dataclass
class ImageResult:
    path: str
    faces: list  # FaceResult, largest first
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
    prob_fake: float | None  # None when no frame had a face in the detector's domain
    verdict: str  # "fake" | "real" | "unsure" | "no face"
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


# --------------------------------------------------------------------------- events


@dataclass
class Aligned:
    name = "aligned"
    image: np.ndarray  # (H, W, 3) uint8
    faces: list  # alignment.Face, largest first
    seconds: float


@dataclass
class Decided:
    name = "decided"
    face: int  # index in Aligned.faces
    verdict: Verdict
    code_steps: int  # inversion steps of the code it was computed on


@dataclass
class Inverting:
    name = "inverting"
    face: int
    progress: inv.Progress


@dataclass
class Inverted:
    name = "inverted"
    face: int
    inversion: inv.Inversion


@dataclass
class Explained:
    name = "explained"
    face: int
    attribution: Any  # explainers.Attribution


@dataclass
class FaceDone:
    name = "face"
    face: int
    result: FaceResult


@dataclass
class FrameDone:
    name = "frame"
    frame: FrameResult


@dataclass
class Done:
    name = "done"
    result: Any  # ImageResult | VideoResult


# --------------------------------------------------------------------------- faces


def verdict_codes(model, crop, detector=None) -> tuple[np.ndarray, np.ndarray | None]:
    """The codes a detector (None: the default) was trained on, for an aligned crop
    (256, 256, 3): (1, 14, 512) of the face and, for a two-view detector, of its mirror
    image (else None)."""
    det = as_detector(detector)
    crops = crop[None] if det.views == 1 else np.stack([crop, mirror(crop)])
    w = inv.run_batch(model, crops, steps=det.steps, passes=det.passes)  # (1 or 2, 14, 512)
    return w[:1], (w[1:] if det.views == 2 else None)


def mirror_code(model, crops) -> np.ndarray:
    """Encoder-only W+ codes (N, 14, 512) of aligned crops (N, 256, 256, 3), or of one
    (256, 256, 3) as N = 1, flipped left-right."""
    flipped = mirror(crops)
    return inv.encode(model, flipped.reshape(-1, *flipped.shape[-3:]))


def analyse_face(model, det: Detector | None, face, index=0, steps=0, prior_fake=0.5,
                 explain=False, should_stop=None, every=10) -> Iterator:
    """Events of one aligned face: decided (det given), inverting..., inverted, explained
    (explain=True), face. should_stop: callable -> True ends the inversion early."""
    t0 = time.perf_counter()
    v, code = None, None
    if det is not None:
        code = verdict_codes(model, face.crop, det)
        v = det.judge(*code, prior_fake=prior_fake)
        yield Decided(index, v, det.steps)
    t1 = time.perf_counter()
    r = None
    for p in inv.invert_stream(model, face.crop, steps=steps, every=every, should_stop=should_stop,
                        passes=det.passes if det is not None else 0):
        if p.result is not None:
            r = p.result
            break
        yield Inverting(index, p)
    yield Inverted(index, r)
    t2 = time.perf_counter()
    if explain and det is not None:
        from .explainers import explain as attribute

        yield Explained(index, attribute(code[0], det.expert(*code), w_mirror=code[1]))
    res = FaceResult(
        tuple(face.box), float(face.score),
        float("nan") if v is None else v.prob_fake, "n/a" if v is None else v.label,
        float("nan") if v is None else v.likelihood_ratio, r.steps, r.psnr,
        {"classify": t1 - t0, "encode": r.encode_s, "invert": t2 - t1 - r.encode_s},
        0 if det is None else det.steps, None if v is None else v.nearest_source,
        None if v is None else v.domain_ratio, None if v is None else v.judged_by,
        face.crop, r.image, r.w)
    yield FaceDone(index, res)


def analyse_image(src, steps=0, prior_fake=0.5, model=None, detector=None, max_faces=4,
                  largest_only=False, explain=False, should_stop=None, every=10,
                  need_detector=True) -> Iterator:
    """Events of an image (path, bytes or array): aligned, then each face's, then done.
    largest_only: analyse the largest face only (the others are still in `aligned`).
    need_detector=False: without a detector (None given), invert and reconstruct only.
    Raises BadInputError / NoFaceError / WeightsError / DetectorMismatchError."""
    model = model or load_model()
    det = as_detector(detector) if (detector is not None or need_detector) else None
    notes = det.check(model) if det is not None else []
    t0 = time.perf_counter()
    img = load_image(src)
    t1 = time.perf_counter()
    faces = align(img, max_faces=max_faces)
    t2 = time.perf_counter()
    yield Aligned(img, faces, t2 - t1)
    out = []
    for i, f in enumerate(faces[:1] if largest_only else faces):
        for ev in analyse_face(model, det, f, i, steps, prior_fake, explain, should_stop, every):
            if isinstance(ev, FaceDone):
                ev.result.timings = {"align": (t2 - t1) / len(faces), **ev.result.timings}
                out.append(ev.result)
            yield ev
    yield Done(ImageResult(
        str(src) if isinstance(src, (str, Path)) else "<image>", out, model.name,
        det.describe() if det is not None else "none", prior_fake,
        {"decode": t1 - t0, "align": t2 - t1, "total": time.perf_counter() - t0}, notes))


def analyse_video(path, every=10, steps=0, prior_fake=0.5, model=None, detector=None,
                  max_frames=None, should_stop=None) -> Iterator:
    """Events of a video: frame (largest face of every `every`-th frame), then done."""
    model = model or load_model()
    det = as_detector(detector)
    notes = det.check(model)
    video_info(path)  # raises BadInputError for an unreadable file
    frames = []
    for fr in read_video(path, every=every, max_frames=max_frames):
        try:
            face = align(fr.image, max_faces=1)[0]
            res = [ev.result for ev in analyse_face(model, det, face, 0, steps, prior_fake)
                   if isinstance(ev, FaceDone)]
        except NoFaceError:
            res = []
        frames.append(FrameResult(fr.index, fr.time_s, res))
        yield FrameDone(frames[-1])
        if should_stop is not None and should_stop():
            break
    yield Done(aggregate(frames, str(path), model.name, det.describe(), prior_fake, every,
                         det.train_fake_share, notes))


def aggregate(frames, path, weights, detector, prior_fake, every, train_fake_share=0.5,
              notes=()) -> VideoResult:
    """A video's verdict from its frames (see VIDEO_RULE)."""
    faces = [f.faces[0] for f in frames if f.faces]
    inside = [x.prob_fake for x in faces if x.verdict != UNSURE]
    if not faces:
        return VideoResult(path, frames, None, "no face", VIDEO_RULE, weights, detector,
                           prior_fake, every, list(notes))
    p = float(np.mean(inside if inside else [x.prob_fake for x in faces]))
    if len(inside) * 2 < len(faces):
        verdict = UNSURE
        notes = list(notes) + [f"{len(faces) - len(inside)} of {len(faces)} frames show a face "
                               "unlike those the detector was trained on: no verdict."]
    else:
        verdict = "fake" if decide(p, prior_fake, train_fake_share) else "real"
    return VideoResult(path, frames, p, verdict, VIDEO_RULE, weights, detector, prior_fake,
                       every, list(notes))


def last(events):
    """The result of a stream: the `done` event's."""
    *_, done = events
    return done.result


def predict_image(src, steps=0, prior_fake=0.5, model=None, detector=None, max_faces=4):
    """Image -> ImageResult (analyse_image to the end)."""
    return last(analyse_image(src, steps, prior_fake, model, detector, max_faces))


def predict_video(path, every=10, steps=0, prior_fake=0.5, model=None, detector=None,
                  max_frames=None, on_frame=None):
    """Video -> VideoResult (analyse_video to the end); on_frame(FrameResult) as they come."""
    for ev in analyse_video(path, every, steps, prior_fake, model, detector, max_frames):
        if isinstance(ev, FrameDone) and on_frame is not None:
            on_frame(ev.frame)
        if isinstance(ev, Done):
            return ev.result
