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
from lf_core.alignment import align, mirror
from lf_core.decision import prior_threshold
from lf_core.errors import BadInputError, DetectorMismatchError, LFError
from lf_core.explainers import mix
from lf_core.io import is_video, load_image, video_info
from lf_core.layout import GROUPS, channel_labels
from lf_core.losses import perceptual
from lf_core.pipeline import VIDEO_RULE, analyse_image, analyse_video
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
    message,
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


DETECT_OUTPUTS = ("faces", "crop", "recon", "loss", "status", "verdict", "why", "dims",
                  "diff", "json", "result")
VIDEO_OUTPUTS = ("timeline", "verdict", "gallery", "status", "json", "result")


def verdict_fields(v, det) -> dict:
    """What a result card needs of a Verdict and its Detector (plain JSON values); of a
    detector set, the member that judged the face."""
    judge = det.members[v.judged_by] if v.judged_by else det
    return {"p_fake": v.prob_fake, "train_fake_share": v.train_fake_share,
            "likelihood_ratio": _num(v.likelihood_ratio), "outside": v.outside,
            "nearest_source": v.nearest_source,
            "looks_like": next((s.get("what") for s in det.sources
                                if s.get("name") == v.nearest_source), v.nearest_source),
            "judged_by": v.judged_by,
            "domain_ratio": None if v.domain_ratio is None else round(v.domain_ratio, 3),
            "about": render.detector_about(judge)}


def failed(e: gr.Error) -> dict:
    """Detect / Video outputs after an input that could not be analysed: the status says
    why, the verdict card is cleared (the notice shows the same message)."""
    return {"status": _status(f"⚠️ Not analysed: {e.message}"),
            "verdict": render.placeholder_card("No verdict: see the message above.")}


def _check_upload(path, read, what: str, idle: str, ready: str, keep):
    """(upload value, status) after an upload: an unreadable file is cleared at once (no
    broken preview) and the status says why; a readable one is kept (`keep`: the value
    that keeps it)."""
    if not path:
        return gr.skip(), _status(idle)
    try:
        read(path)
    except LFError as e:
        return None, _status(f"⚠️ Not a usable {what}: {message(e)}")
    return keep, _status(ready)


@readable_errors
def check_image(path):
    """On upload of a photo. Outputs: image, status."""
    # the same file again, not gr.skip(): Gradio 6 keeps a copy of the component in the
    # session for every skip (the soak in benchmarks/RELIABILITY.md)
    return _check_upload(path, load_image, "image", "Waiting for a photo.",
                         "Ready: press <b>Detect</b>.", keep=path)


@readable_errors
def check_video(path):
    """On upload of a video (its container and stream). Outputs: video, status."""
    # gr.skip(), not the same file: Gradio would re-encode a video its browser player cannot
    # play (with ffmpeg, where installed) on every upload
    return _check_upload(path, video_info, "video", "Waiting for a video.",
                         "Ready: press <b>Analyse video</b>.", keep=gr.skip())


@readable_errors
def detect(image, steps, prior, settings, request: gr.Request):
    """Upload -> faces + aligned crop -> verdict (on the detector's codes) -> live
    inversion of the reconstruction -> attributions. Yields {output name: value}
    (DETECT_OUTPUTS; names left out keep their value)."""
    stop = STOPS.begin(request, "detect")
    steps = int(max(0, min(MAX_STEPS, int(steps or 0))))
    prior = float(prior)
    settings = settings or Settings.default()
    t0 = time.perf_counter()
    path = upload_path(image, "image")
    model = get_model(settings)
    try:
        det, det_desc = get_detector(settings)
        det.check(model)
        why = None
    except (NoDetectorError, DetectorMismatchError) as e:  # the inversion still runs
        det, det_desc, why = None, None, e
    with OutFiles() as files:  # removed at the end: Gradio has copied every file
        perc = perceptual().name
        keys = ("pixel", "perceptual") + (("domain",) if model.E is not None else ()) + ("total",)
        live = plots.LiveLossCurve(perc, steps, keys)
        res, state, history, last, n_txt, face = {}, {}, [], 0.0, "", None
        events = analyse_image(path, steps, prior, model, det, largest_only=True, explain=True,
                               should_stop=stop.is_set, need_detector=False)
        for ev in stream_on_lane(events):
            if ev.name == "aligned":
                face = ev.faces[0]
                n_txt = (f"{len(ev.faces)} faces found; analysing the largest" if len(ev.faces) > 1
                         else "1 face found")
                res = {"weights": model.name, "detector": det_desc, "steps_requested": steps,
                       "perceptual": perc, "n_faces": len(ev.faces),
                       "box": [int(v) for v in face.box]}
                yield {"faces": files.image(render.draw_faces(ev.image, ev.faces), "faces", "jpg"),
                       "crop": files.image(face.crop, "crop"), "recon": None,
                       "loss": plots.loss_curve([], perc, steps), "why": None, "dims": None,
                       "diff": None, "json": None,
                       "status": _status(f"{n_txt}. Encoding…"),
                       "verdict": render.placeholder_card("Encoding…")}
            elif ev.name == "decided":
                res.update(verdict_fields(ev.verdict, det), verdict_steps=ev.code_steps)
                yield {"verdict": render.verdict_card(res, prior),
                       "status": _status(f"{n_txt}. Verdict ready ({_fmt_s(time.perf_counter() - t0)})"
                                         + (f"; refining the reconstruction, {steps} steps…"
                                            if steps else "."))}
            elif ev.name == "inverting":
                p = ev.progress
                if p.step > 0:
                    history.append(p.losses)
                now = time.perf_counter()
                if p.image is None and now - last < UPDATE_EVERY_S:
                    continue
                last = now
                msg = (f"{n_txt}. Encoder code ready ({_fmt_s(p.elapsed_s)})" if p.step == 0 else
                       f"Step <b>{p.step} / {steps}</b> · {_fmt_s(p.elapsed_s)} elapsed · "
                       f"ETA {_fmt_s(p.eta_s)} · total loss {p.losses.get('total', float('nan')):.4f}")
                out = {"status": _status(msg)}
                if history:
                    out["loss"] = live.update(history)
                if p.image is not None:  # JPEG: a fifth of PNG's encoding time
                    out["recon"] = files.image(p.image, f"recon-{p.step}", "jpg")
                yield out
            elif ev.name == "inverted":
                r = ev.inversion
                stopped = r.steps < steps
                res.update(projector=_projector_text(model, r.steps, steps, r.perceptual, r.psnr),
                           steps=r.steps, psnr=round(float(r.psnr), 3),
                           partial=(f"Stopped at step {r.steps} of {steps}: the reconstruction is the "
                                    "one reached so far (the verdict does not depend on it).")
                           if stopped else None)
                state = dict(res, w=r.w, crop=face.crop, recon=r.image,
                             weights_path=settings.weights)
                done = "Stopped" if stopped else "Done"
                out = {"recon": files.image(r.image, f"recon-{r.steps}"),
                       "loss": live.update(r.losses) if r.losses else plots.loss_curve([], perc, steps),
                       "diff": files.image(render.diff_image(face.crop, r.image), "diff"),
                       "result": state}
                if det is None:
                    msg = str(why) if why else NO_DETECTOR
                    title = ("No verdict: no detector" if isinstance(why, NoDetectorError) or why is None
                             else "No verdict: the detector does not fit")
                    out.update(verdict=render.message_card(title, msg),
                               status=_status(f"{done}: inverted in {_fmt_s(time.perf_counter() - t0)}; "
                                              "no verdict."),
                               json=dict(res, verdict=None, message=msg))
                else:
                    out.update(verdict=render.verdict_card(res, prior),
                               status=_status(f"{done} in {_fmt_s(time.perf_counter() - t0)}. "
                                              "Computing the explanations…"),
                               json=_result_json(res, prior, time.perf_counter() - t0))
                yield out
            elif ev.name == "explained":
                att = ev.attribution
                js = _result_json(res, prior, time.perf_counter() - t0)
                js["explanation"] = {"method": att.method, "target": att.target,
                                     "baseline": att.baseline,
                                     "p_fake_baseline": round(att.p_fake_baseline, 5),
                                     "sum": round(float(att.channels.sum()), 5),
                                     "rows": [[lab, round(float(v), 5)] for lab, v in
                                              zip(plots.row_names(), att.channels)]}
                state["explanation"] = js["explanation"]
                yield {"why": plots.waterfall(att), "dims": plots.top_dims(att), "json": js,
                       "result": state,
                       "status": _status(f"Done in {_fmt_s(time.perf_counter() - t0)}: "
                                         f"{att.method.replace('_', ' ')} from the {att.baseline} "
                                         f"(p(fake) {att.p_fake_baseline:.2f}) to this face "
                                         f"(p(fake) {att.p_fake:.2f}).")}


def _result_json(res, prior, seconds) -> dict:
    js = {k: v for k, v in res.items() if k not in ("partial", "about")}
    label = "unsure" if res.get("outside") else (
        "fake" if res["p_fake"] >= prior_threshold(prior, res["train_fake_share"]) else "real")
    return dict(js, verdict=label, prior_fake=prior, seconds=round(seconds, 3))


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
    """Every Nth frame aligned and scored; streams the timeline. Yields {output name:
    value} (VIDEO_OUTPUTS)."""
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
    thr = prior_threshold(prior, det.train_fake_share)
    points, n, t0, last = [], 0, time.perf_counter(), 0.0
    yield {"timeline": plots.video_timeline([], thr, total_s),
           "verdict": render.placeholder_card("Scoring frames…"), "gallery": None,
           "status": _status(f"Reading {Path(path).name}: {info.width}×{info.height}, "
                             f"{info.n_frames} frames; scoring every {every}th frame…"),
           "json": None, "result": None}
    vr = None
    for ev in stream_on_lane(analyse_video(path, every, steps, prior, model, det,
                                           MAX_VIDEO_FRAMES, should_stop=stop.is_set)):
        if ev.name == "done":
            vr = ev.result
            break
        fr, n = ev.frame, n + 1
        f = fr.faces[0] if fr.faces else None
        points.append({"t": fr.time_s, "frame": fr.index, "p": f.prob_fake if f else None,
                       "unsure": bool(f and f.verdict == "unsure")})
        now = time.perf_counter()
        if now - last >= UPDATE_EVERY_S:
            last = now
            el = now - t0
            yield {"timeline": plots.video_timeline(points, thr, total_s),
                   "status": _status(f"Frame {n} of ~{expected} sampled · {_fmt_s(el)} elapsed"
                                     f" · ETA {_fmt_s(el / n * max(0, expected - n))}")}
    stopped = stop.is_set()
    n_face = sum(1 for f in vr.frames if f.faces)
    n_out = sum(1 for f in vr.frames if f.faces and f.faces[0].verdict == "unsure")
    judges = [f.faces[0].judged_by for f in vr.frames if f.faces and f.faces[0].judged_by]
    res = {"p_fake": vr.prob_fake, "train_fake_share": det.train_fake_share,
           "judged_by": max(set(judges), key=judges.count) if judges else None,
           "outside": vr.verdict == "unsure", "rule": vr.rule, "n_face": n_face,
           "n_unsure": n_out, "n_frames": len(vr.frames), "every": every,
           "weights": model.name, "detector": det_desc, "about": render.detector_about(det),
           "projector": _projector_text(model, det.steps, det.steps, perceptual().name)
           + " per frame (the codes the detector was trained on)",
           "notes": list(vr.notes),
           "partial": None if not stopped else
           f"Stopped after {len(vr.frames)} sampled frames: the verdict uses those."}
    if len(vr.frames) >= MAX_VIDEO_FRAMES and not stopped:
        res["notes"] = res["notes"] + [f"Only the first {MAX_VIDEO_FRAMES} sampled frames were "
                                       "scored (the demo's limit); raise 'every' to cover more."]
    scored = sorted((f for f in vr.frames if f.faces), key=lambda f: -f.faces[0].prob_fake)
    js = vr.to_json()
    js.pop("path", None)  # a "path" key would make gradio_client take the JSON for a file
    js = {"video": Path(path).name, **js}
    with OutFiles() as files:  # removed at the end: Gradio has copied every file
        gallery = [(files.image(f.faces[0].crop, f"frame-{f.index}"),
                    f"{f.faces[0].prob_fake:.2f} · {f.time_s:.1f} s"
                    + (" · unsure" if f.faces[0].verdict == "unsure" else ""))
                   for f in scored[:6]]
        yield {"timeline": plots.video_timeline(points, thr, total_s, vr.prob_fake),
               "verdict": render.video_card(res, prior), "gallery": gallery,
               "status": _status(f"Done: {len(vr.frames)} frames sampled, {n_face} with a "
                                 f"face, in {_fmt_s(time.perf_counter() - t0)}."),
               "json": js, "result": res}


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
        pa, pm = (float(det.prob_fake(w, inv.encode(model, mirror(img)[None])
                                      if det.views == 2 else None)[0])
                  for w, img in ((w_a, imgs[0]), (w_mix, imgs[1])))
        lines.append(f"Detector: p(fake) {pa:.3f} → **{pm:.3f}** after the swap"
                     + (" (each code with the code of its drawn face's mirror image, the two "
                        "views this detector averages)." if det.views == 2 else "."))
    except NoDetectorError:
        lines.append("(No detector installed: no scores.)")
    files = OutFiles()
    return (files.image(imgs[0], "face-a"), files.image(imgs[1], "mixed"),
            files.image(imgs[2], "source"), "\n\n".join(lines))


# --------------------------------------------------------------------------- Benchmarks


BENCH_DIR = ROOT / "benchmarks" / "results"


def bench_names() -> list[str]:
    """The benches with results (benchmarks/results/NAME.json), DFDC first."""
    names = [p.stem for p in sorted(BENCH_DIR.glob("*.json"))
             if '"table"' in p.read_text(errors="replace")] if BENCH_DIR.is_dir() else []
    return sorted(names, key=lambda n: (not n.startswith("dfdc"), n))


def bench_plots(name):
    """Four interactive figures of one bench: Table 1, few-shot, per row, reconstruction."""
    import json

    path = BENCH_DIR / f"{name}.json"
    if not name or not path.is_file():
        return None, None, None, None, "No results for this bench yet: run `lf bench`."
    res = json.loads(path.read_text())
    note = (f"`{res.get('command', 'lf bench')}` ({res.get('date', '')}; "
            f"{res.get('machine', {}).get('cpu', '')})")
    return (plots.bench_table(res), plots.bench_fewshot(res), plots.bench_rows(res),
            plots.bench_recon(res), note)


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
def train(real_files, fake_files, zip_file, kind, use_anyway, settings,
          progress=gr.Progress()):
    """Align + encode + fit a logistic regression (or MLP-2) with k-fold CV. The detector
    is offered for download and becomes this session's at once, unless it is no better
    than chance (its cross-validated interval reaches the majority-class rate) and
    `use_anyway` is not ticked. Outputs: report, download button, settings state,
    detector-source radio, header line."""
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
    ci = res.cv_interval
    cv = ("n/a (at least 2 images per class are needed)" if res.cv_accuracy is None else
          f"**{res.cv_accuracy:.1%}**, 95% interval {ci[0]:.0%}-{ci[1]:.0%} (mean of "
          f"{res.folds} folds: " + ", ".join(f"{s:.0%}" for s in res.cv_scores) + ")")
    chance = max(res.n_real, res.n_fake) / (res.n_real + res.n_fake)
    switch = res.beats_chance or bool(use_anyway)
    if switch:
        settings.trained, settings.source = res.detector, SRC_TRAINED
        settings.trained_summary = res.summary()
        use = ("- now used by the **Detect** and **Video** tabs in this browser session "
               "(switch back under Settings); download it below for `lf predict --detector`.")
    else:
        use = (f"- ⚠️ **not switched in**: its accuracy could be chance ({chance:.0%} is what "
               "always answering the larger class scores, and the interval reaches it). Add "
               "more faces, or tick *Use it even if it is no better than chance* and train "
               "again. You can still download it.")
    md = [f"### Trained: {type(res.detector).__name__} on encoder-only codes",
          f"- faces used: **{res.n_real} real**, **{res.n_fake} fake**",
          f"- cross-validated accuracy: {cv}",
          f"- took {res.seconds:.1f} s",
          use,
          "- caveat: the folds are not grouped by person or source video, so the accuracy is "
          "optimistic when several images show the same person."]
    if skipped:
        md.append(f"\n**{len(skipped)} skipped:**\n" + "\n".join(f"- {s}" for s in skipped[:20])
                  + ("\n- …" if len(skipped) > 20 else ""))
    return ("\n".join(md), gr.update(value=str(path), visible=True), settings,
            settings.source, describe_settings(settings))


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
