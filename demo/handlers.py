"""Event handlers of the demo. They call lf_core for everything that is model logic and
only shape its results for display. Every handler turns failures into one readable
gr.Error (see state.readable_errors); the app keeps serving.

(No `from __future__ import annotations` here: Gradio reads the `gr.Request` annotation
of the handlers to inject the request.)
"""

import os
import re
import tempfile
import time
from pathlib import Path

import gradio as gr
import numpy as np

from lf_core import inversion as inv
from lf_core.alignment import align
from lf_core.classifiers import prior_threshold
from lf_core.detect import (
    VIDEO_RULE,
    aggregate,
    check_detector,
    classify_face,
    describe_detector,
    score_frames,
    two_views,
)
from lf_core.errors import BadInputError, DetectorMismatchError, LFError
from lf_core.explainers import explain, mix
from lf_core.io import is_video, load_image, video_info
from lf_core.layout import GROUPS, channel_labels
from lf_core.losses import perceptual
from lf_core.quicktrain import quick_train, read_zip

from . import plots, render
from .state import (
    NO_DETECTOR,
    SRC_FILE,
    SRC_TRAINED,
    STOPS,
    NoDetectorError,
    OutFiles,
    Settings,
    describe_settings,
    get_detector,
    get_model,
    on_lane,
    readable_errors,
    stream_on_lane,
    upload_path,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"
MAX_STEPS = 200
MAX_VIDEO_STEPS = 50
MAX_VIDEO_FRAMES = int(os.environ.get("LF_MAX_VIDEO_FRAMES", "60"))
UPDATE_EVERY_S = 0.75  # at most this often a streamed update without a new image


def _status(text: str) -> str:
    return f'<div class="lf-status">{text}</div>'


def _num(x: float):
    """JSON-safe float: inf/nan as strings."""
    x = float(x)
    return x if np.isfinite(x) else str(x)


def _fmt_s(s: float) -> str:
    return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"


def _projector_text(model, steps_done: int, steps_req: int, perc: str, psnr=None) -> str:
    if steps_done == 0:
        s = "StyleGAN2 inversion: encoder only (0 optimisation steps)"
    else:
        s = f"StyleGAN2 inversion: encoder + {steps_done} optimisation step" + ("s" if steps_done != 1 else "")
    if steps_done:
        s += f" (pixel MSE + {perc}" + (" + domain regulariser)" if model.E is not None else ")")
    if psnr is not None:
        s += f"; reconstruction PSNR {psnr:.1f} dB"
    return s


# --------------------------------------------------------------------------- Detect


@readable_errors
def detect(image, steps, prior, settings, request: gr.Request):
    """Upload -> faces + aligned crop -> live inversion -> verdict -> attributions.

    Outputs: faces, crop, recon, loss plot, status, verdict, channel plot, dims plot,
    difference image, result JSON, result state.
    """
    stop = STOPS.begin(request, "detect")
    steps = int(max(0, min(MAX_STEPS, int(steps or 0))))
    prior = float(prior)
    settings = settings or Settings.default()
    t0 = time.perf_counter()
    path = upload_path(image, "image")
    img = load_image(path)
    faces = align(img)
    face = faces[0]
    files = OutFiles()
    annotated = files.image(render.draw_faces(img, faces), "faces", "jpg")
    crop = files.image(face.crop, "crop")
    perc = perceptual().name
    n_txt = f"{len(faces)} faces found; analysing the largest" if len(faces) > 1 else "1 face found"
    out = [annotated, crop, None, plots.loss_curve([], perc, steps),
           _status(f"{n_txt}. Loading the model…"), render.placeholder_card("Inverting…"),
           None, None, None, None, None]
    yield tuple(out)

    model = get_model(settings)
    try:
        det, det_desc = get_detector(settings)
        check_detector(det, model, steps)
        det_err = None
    except (NoDetectorError, DetectorMismatchError) as e:  # the inversion still runs
        det, det_desc, det_err = None, None, str(e)
        why = "no detector" if isinstance(e, NoDetectorError) else "the detector does not fit"

    history, last = [], 0.0
    p = None
    keys = ("pixel", "perceptual") + (("domain",) if model.E is not None else ()) + ("total",)
    live = plots.LiveLossCurve(perc, steps, keys)
    skip = gr.skip()
    for p in stream_on_lane(inv.invert(model, face.crop, steps=steps, should_stop=stop.is_set)):
        if p.result is None and p.step > 0:
            history.append(p.losses)
        if p.result is not None:
            break
        now = time.perf_counter()
        if p.image is None and now - last < UPDATE_EVERY_S:
            continue
        last = now
        if p.step == 0:
            msg = (f"{n_txt}. Encoder code ready ({_fmt_s(p.elapsed_s)})"
                   + (f"; optimising {steps} steps…" if steps else "."))
        else:
            tot = p.losses.get("total", float("nan"))
            msg = (f"Step <b>{p.step} / {steps}</b> · {_fmt_s(p.elapsed_s)} elapsed · "
                   f"ETA {_fmt_s(p.eta_s)} · total loss {tot:.4f}")
        # only what changed goes to the browser: the photo and crop stay as they are
        # JPEG: a fifth of PNG's encoding time, on a core the inversion needs
        recon = skip if p.image is None else files.image(p.image, f"recon-{p.step}", "jpg")
        yield (skip, skip, recon,
               live.update(history) if history else skip, _status(msg),
               skip, skip, skip, skip, skip, skip)

    r = p.result
    out[2] = files.image(r.image, f"recon-{r.steps}")
    out[3] = live.update(r.losses) if r.losses else plots.loss_curve([], r.perceptual, steps)
    out[8] = files.image(render.diff_image(face.crop, r.image), "diff")
    stopped = r.steps < steps
    res = {"weights": model.name,
           "projector": _projector_text(model, r.steps, steps, r.perceptual, r.psnr),
           "detector": det_desc, "steps": r.steps, "steps_requested": steps,
           "perceptual": r.perceptual, "psnr": round(float(r.psnr), 3),
           "n_faces": len(faces), "box": [int(v) for v in face.box],
           "partial": (f"Stopped at step {r.steps} of {steps}: the verdict uses the code "
                       "reached so far.") if stopped else None}
    state = dict(res, w=r.w, crop=face.crop, recon=r.image, weights_path=settings.weights)
    total_s = time.perf_counter() - t0
    if det is None:
        out[5] = render.message_card(f"No verdict: {why}", det_err)
        out[4] = _status(f"Inverted in {_fmt_s(total_s)}; {why}, so no verdict.")
        out[9] = dict(res, verdict=None, message=det_err)
        out[10] = state
        yield tuple(out)
        return

    v = on_lane(classify_face, r.w, face.crop, model, det, prior)
    res.update(p_fake=v.prob_fake, train_fake_share=float(det.train_fake_share_),
               notes=check_detector(det, model, r.steps))
    state.update(res)
    out[5] = render.verdict_card(res, prior)
    out[4] = _status(("Stopped" if stopped else "Done") + f": verdict in {_fmt_s(total_s)}. "
                     "Computing the explanations…")
    out[9] = dict({k: v_ for k, v_ in res.items() if k != "partial"},
                  verdict=v.label, likelihood_ratio=_num(v.likelihood_ratio), prior_fake=prior,
                  seconds=round(total_s, 3))
    out[10] = state
    yield tuple(out)

    try:
        att = on_lane(_attributions, r.w, det, model.w_avg.numpy())
        out[6], out[7] = plots.channel_bars(att), plots.dims_heatmap(att)
        out[9]["explanation"] = {"method": att.method, "target": att.target,
                                 "baseline": att.baseline,
                                 "top_rows": [[lab, round(val, 5)] for lab, val in att.top(3)]}
        msg = (f"{att.method.replace('_', ' ')} of {att.target}, from the {att.baseline} "
               f"(p_fake {att.p_fake_baseline:.2f}) to this code (p_fake {att.p_fake:.2f})"
               + ("; they explain this view, the verdict also averages in the mirror image's"
                  if two_views(det) else ""))
    except Exception as e:  # explanations are a bonus: never lose the verdict for them
        msg = f"explanations unavailable ({type(e).__name__}: {e})"
    out[4] = _status(("Stopped" if stopped else "Done") + f": verdict in {_fmt_s(total_s)}; "
                     f"explanations ready in {_fmt_s(time.perf_counter() - t0)} ({msg}).")
    yield tuple(out)


def _attributions(w, det, base):
    att = explain(w, det, baseline=base)
    if np.abs(att.channels).max() < 1e-6 and abs(att.p_fake - att.p_fake_baseline) < 1e-6:
        # p_fake saturated at both ends: nothing moves it; show the logit instead
        att = explain(w, det, baseline=base, target="logit")
    return att


def redecide(prior, result):
    """The prior slider: re-apply the decision rule to the stored p_fake (no re-inversion)."""
    if not result:
        return render.placeholder_card()
    if result.get("p_fake") is None:
        return gr.skip()
    return render.verdict_card(result, float(prior))


def stop_detect(request: gr.Request):
    STOPS.stop(request, "detect")


def stop_video(request: gr.Request):
    STOPS.stop(request, "video")


# --------------------------------------------------------------------------- Video


@readable_errors
def video(video_file, every, steps, prior, settings, request: gr.Request):
    """Every Nth frame aligned and scored; streams the timeline. Outputs: timeline plot,
    verdict card, gallery of the most suspicious frames, status, JSON, state."""
    stop = STOPS.begin(request, "video")
    settings = settings or Settings.default()
    every = max(1, int(every or 10))
    steps = int(max(0, min(MAX_VIDEO_STEPS, int(steps or 0))))
    prior = float(prior)
    path = upload_path(video_file, "video")
    if not is_video(path):
        raise BadInputError(f"{Path(path).name} is not a video file this app reads; use an "
                            "MP4, MOV, AVI, MKV or WebM video.")
    info = video_info(path)
    model = get_model(settings)
    det, det_desc = get_detector(settings)
    total_s = info.n_frames / info.fps if info.fps > 0 and info.n_frames else None
    expected = min(MAX_VIDEO_FRAMES, info.n_frames // every + 1 if info.n_frames else MAX_VIDEO_FRAMES)

    thr = prior_threshold(prior, float(det.train_fake_share_))
    frames, points, t0, last = [], [], time.perf_counter(), 0.0
    yield (plots.video_timeline([], thr, total_s), render.placeholder_card("Scoring frames…"),
           None, _status(f"Reading {Path(path).name}: {info.width}×{info.height}, "
                         f"{info.n_frames} frames; scoring every {every}th frame…"), None, None)
    stopped = False
    for fr in stream_on_lane(score_frames(path, every, steps, prior, model, det,
                                          MAX_VIDEO_FRAMES)):
        frames.append(fr)
        points.append({"t": fr.time_s, "frame": fr.index,
                       "p": fr.faces[0].prob_fake if fr.faces else None})
        if stop.is_set():
            stopped = True
            break
        now = time.perf_counter()
        if now - last >= UPDATE_EVERY_S:
            last = now
            el = now - t0
            eta = el / len(frames) * max(0, expected - len(frames))
            yield (plots.video_timeline(points, thr, total_s), gr.skip(), gr.skip(),
                   _status(f"Frame {len(frames)} of ~{expected} sampled · {_fmt_s(el)} elapsed"
                           f" · ETA {_fmt_s(eta)}"), gr.skip(), gr.skip())
    vr = aggregate(frames, path, model.name, describe_detector(det), prior, every,
                   float(det.train_fake_share_), check_detector(det, model, steps))
    n_face = sum(1 for f in vr.frames if f.faces)
    res = {"p_fake": vr.prob_fake, "train_fake_share": float(det.train_fake_share_),
           "rule": vr.rule, "n_face": n_face, "n_frames": len(vr.frames), "every": every,
           "weights": model.name, "detector": det_desc,
           "projector": _projector_text(model, steps, steps, perceptual().name) + " per frame",
           "notes": list(vr.notes),
           "partial": None if not stopped else
           f"Stopped after {len(vr.frames)} sampled frames: the verdict uses those."}
    if len(vr.frames) >= MAX_VIDEO_FRAMES and not stopped:
        res["notes"] = res["notes"] + [f"Only the first {MAX_VIDEO_FRAMES} sampled frames were "
                                       "scored (the demo's limit); raise 'every' to cover more."]
    scored = sorted((f for f in vr.frames if f.faces), key=lambda f: -f.faces[0].prob_fake)
    files = OutFiles()
    gallery = [(files.image(f.faces[0].crop, f"frame-{f.index}"),
                f"{f.faces[0].prob_fake:.2f} · {f.time_s:.1f} s") for f in scored[:6]]
    js = vr.to_json()
    js.pop("path", None)  # a "path" key would make gradio_client take the JSON for a file
    js = {"video": Path(path).name, **js}
    el = time.perf_counter() - t0
    yield (plots.video_timeline(points, thr, total_s, vr.prob_fake), render.video_card(res, prior),
           gallery, _status(f"Done: {len(vr.frames)} frames sampled, {n_face} with a face, "
                            f"in {_fmt_s(el)}."), js, res)


def redecide_video(prior, result):
    if not result:
        return render.placeholder_card("Upload a video and press <b>Analyse video</b>.")
    return render.video_card(result, float(prior))


# --------------------------------------------------------------------------- Explore


def _encode_upload(model, value, what):
    img = load_image(upload_path(value, what))
    crop = align(img, max_faces=1)[0].crop
    return inv.encode(model, crop[None])  # (1, 14, 512)


@readable_errors
def explore(what, row, source, face_a, face_b, result, settings):
    """Style mixing: replace rows of face A's code by face B's or by the mean code.
    Outputs: G(w_A), G(mixed), G(w_B or mean), explanation Markdown."""
    return on_lane(_explore, what, row, source, face_a, face_b, result, settings)


def _explore(what, row, source, face_a, face_b, result, settings):
    settings = settings or Settings.default()
    model = get_model(settings)
    if face_a:
        w_a, a_name = _encode_upload(model, face_a, "face A image"), "face A (encoder only)"
    elif result and result.get("w") is not None:
        if result.get("weights_path") != settings.weights:
            raise BadInputError("The Detect result came from other weights; run Detect "
                                "again or upload a face A here.")
        w_a, a_name = result["w"], "the face from the Detect tab"
    else:
        raise BadInputError("No face to edit: run Detect first, or upload a face A here.")
    if source == "mean face":
        w_b, b_name = model.w_avg.numpy()[None], "the mean code (average face)"
    else:
        if not face_b:
            raise BadInputError("Upload face B (the face whose layers are copied), or choose "
                                "'mean face' as the source.")
        w_b, b_name = _encode_upload(model, face_b, "face B image"), "face B (encoder only)"
    if what == "one row":
        rows, rows_txt = [int(row)], channel_labels(long=True)[int(row)]
    else:
        rows = list(GROUPS[what])
        rows_txt = f"{what} rows {rows[0]}-{rows[-1]}"
    w_mix = mix(w_a, w_b, rows)
    imgs = inv.reconstruct(model, np.concatenate([np.asarray(w_a, np.float32).reshape(1, 14, 512),
                                                  w_mix.reshape(1, 14, 512),
                                                  np.asarray(w_b, np.float32).reshape(1, 14, 512)]))
    lines = [f"**{rows_txt}** of {a_name} replaced by {b_name}."]
    try:
        det, _ = get_detector(settings)
        # a two-view detector scores each code with the mirror of the face it draws
        pa, pm = (classify_face(w, img, model, det).prob_fake for w, img in
                  ((w_a, imgs[0]), (w_mix, imgs[1])))
        lines.append(f"Detector: p(fake) {pa:.3f} → **{pm:.3f}** after the swap"
                     + (" (each code with the code of its drawn face's mirror image, the two "
                        "views this detector averages)." if two_views(det) else "."))
    except NoDetectorError:
        lines.append("(No detector installed: no scores.)")
    files = OutFiles()
    return (files.image(imgs[0], "face-a"), files.image(imgs[1], "mixed"),
            files.image(imgs[2], "source"), "\n\n".join(lines))


# --------------------------------------------------------------------------- Benchmarks


def benchmarks():
    """RESULTS.md as Markdown (images moved to a gallery), or how to make it."""
    if not RESULTS_MD.is_file():
        return ("### No benchmark results yet\n\n`benchmarks/RESULTS.md` has not been generated. "
                "Run\n\n```bash\nlf bench\n```\n\nto make it, then press **Refresh**."), \
            gr.Gallery(value=[], visible=False)
    text = RESULTS_MD.read_text(encoding="utf-8", errors="replace")
    gallery = []

    def grab(m):
        alt, src = m.group(1), m.group(2).split()[0]
        p = (RESULTS_MD.parent / src).resolve()
        if p.is_file() and RESULTS_MD.parent.resolve() in p.parents:
            gallery.append((str(p), alt or p.stem))
            return f"*(figure: {alt or p.name}, shown below)*"
        return f"*(figure {alt or src}: file not found)*"

    text = re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", grab, text)
    return text, gr.Gallery(value=gallery, visible=bool(gallery))


# --------------------------------------------------------------------------- Train your own


def _paths(files):
    if not files:
        return []
    files = files if isinstance(files, list) else [files]
    return [f if isinstance(f, str) else getattr(f, "name", None) or f.get("path") for f in files]


@readable_errors
def train(real_files, fake_files, zip_file, kind, settings, progress=gr.Progress()):
    """Align + encode + fit a logistic regression (or MLP-2) with k-fold CV. The detector
    becomes this session's at once and is offered for download. Outputs: report, download
    button, settings state, detector-source radio, header line."""
    settings = settings or Settings.default()
    images, labels, skipped = [], [], []
    for cls, files in ((0, real_files), (1, fake_files)):
        for p in _paths(files):
            images.append(upload_path(p, "image"))
            labels.append(cls)
    if zip_file:
        zimg, zlab, zskip = read_zip(upload_path(_paths(zip_file)[0], "zip file"))
        images += zimg
        labels += zlab
        skipped += zskip
    if not images:
        raise BadInputError("Give some real and some fake face images (or a zip with real/ "
                            "and fake/ folders) first.")
    model = get_model(settings)
    progress(0, desc="aligning faces")
    res = on_lane(quick_train, images, labels, model, kind=kind or "lr",
                  on_progress=lambda d, t: progress(d / t, desc=f"aligning face {d}/{t}"))
    skipped += res.skipped
    out_dir = Path(tempfile.mkdtemp(prefix="lf-detector-"))
    path = res.detector.save(out_dir / f"my-detector-{kind or 'lr'}.safetensors",
                             metrics=res.detector.metrics)
    settings.trained, settings.source = res.detector, SRC_TRAINED
    settings.trained_summary = res.summary()
    cv = ("n/a (at least 2 images per class are needed)" if res.cv_accuracy is None else
          f"**{res.cv_accuracy:.1%}** (mean of {res.folds} folds: "
          + ", ".join(f"{s:.0%}" for s in res.cv_scores) + ")")
    md = [f"### Trained: {type(res.detector).__name__} on encoder-only codes",
          f"- faces used: **{res.n_real} real**, **{res.n_fake} fake**",
          f"- cross-validated accuracy: {cv}",
          f"- took {res.seconds:.1f} s",
          "- now used by the **Detect** and **Video** tabs in this browser session "
          "(switch back under Settings); download it below for `lf predict --detector`.",
          "- caveat: the folds are not grouped by person or source video, so the accuracy is "
          "optimistic when several images show the same person."]
    if skipped:
        md.append(f"\n**{len(skipped)} skipped:**\n" + "\n".join(f"- {s}" for s in skipped[:20])
                  + ("\n- …" if len(skipped) > 20 else ""))
    return ("\n".join(md), gr.update(value=str(path), visible=True), settings,
            SRC_TRAINED, describe_settings(settings))


# --------------------------------------------------------------------------- Settings


def apply_settings(weights, detector, source, settings):
    """Reload: check the weights (loading them) and the detector; keep the old settings on
    error. Outputs: status Markdown, settings state, header line."""
    settings = settings or Settings.default()
    new = Settings(weights=(weights or "").strip() or settings.weights,
                   detector=(detector or "").strip() or settings.detector,
                   source=source or SRC_FILE, trained=settings.trained,
                   trained_summary=settings.trained_summary)
    msgs = []
    try:
        model = get_model(new)
        msgs.append(f"✅ Generator: `{model.name}` (encoder: "
                    f"{'yes' if model.E is not None else 'none: mean code start'})")
    except LFError as e:
        return (f"⚠️ Weights not changed: {e}", settings, describe_settings(settings))
    except Exception as e:
        return (f"⚠️ Weights not changed: cannot load them ({type(e).__name__}: {e})",
                settings, describe_settings(settings))
    try:
        det, desc = get_detector(new)
        msgs.append(f"✅ Detector: {desc}")
    except NoDetectorError as e:
        msgs.append(f"ℹ️ {e}")
    except Exception as e:
        return (f"⚠️ Detector not changed: {e}", settings, describe_settings(settings))
    return "\n\n".join(msgs), new, describe_settings(new)


def page_load(settings):
    return describe_settings(settings or Settings.default())


__all__ = ["detect", "redecide", "video", "redecide_video", "explore", "benchmarks", "train",
           "apply_settings", "page_load", "stop_detect", "stop_video", "NO_DETECTOR", "VIDEO_RULE"]
