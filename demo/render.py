"""Pictures and HTML cards for the demo (presentation only)."""

from __future__ import annotations

import html

import cv2
import numpy as np

from lf_core.decision import decide, likelihood_ratio, prior_threshold

DISPLAY_MAX = 720  # px, longest side of the annotated photo


def draw_faces(img: np.ndarray, faces, chosen: int = 0) -> np.ndarray:
    """The photo with every face's box, the analysed face's landmarks and FFHQ crop quad."""
    k = min(1.0, DISPLAY_MAX / max(img.shape[:2]))
    out = cv2.resize(img, None, fx=k, fy=k, interpolation=cv2.INTER_AREA) if k < 1 else img.copy()
    th = max(1, int(round(max(out.shape[:2]) / 300)))
    for i, f in enumerate(faces):
        x0, y0, x1, y1 = (int(round(v * k)) for v in f.box)
        colour = (255, 196, 0) if i == chosen else (200, 200, 200)
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, th + (i == chosen))
        label = f"face {i + 1}" + (" (analysed)" if i == chosen and len(faces) > 1 else "")
        cv2.putText(out, label, (x0, max(12, y0 - 6)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4 * th + 0.1, colour, th, cv2.LINE_AA)
        if i != chosen:
            continue
        for x, y in (f.landmarks * k):
            cv2.circle(out, (int(x), int(y)), max(1, th // 2), (80, 255, 120), -1, cv2.LINE_AA)
        quad = np.rint(f.quad * k).astype(np.int32)
        cv2.polylines(out, [quad], True, (255, 80, 160), th, cv2.LINE_AA)
    return out


def diff_image(x: np.ndarray, y: np.ndarray, gain: float = 4.0) -> np.ndarray:
    """|x - G(w)| per pixel (mean over RGB), times `gain`, as an inferno heat map."""
    d = np.abs(x.astype(np.float32) - y.astype(np.float32)).mean(axis=2) * gain
    d = np.clip(d, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(d, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


# --------------------------------------------------------------------------- verdict cards


def _esc(s) -> str:
    return html.escape(str(s))


def placeholder_card(text: str = "Upload a face photo and press <b>Detect</b>.") -> str:
    return f'<div class="lf-card lf-idle">{text}</div>'


def message_card(title: str, text: str, kind: str = "warn") -> str:
    return (f'<div class="lf-card lf-{kind}"><div class="lf-title">{_esc(title)}</div>'
            f'<div>{_esc(text)}</div></div>')


def detector_about(det) -> dict:
    """What the "How to read this" panel says of a Detector: its sources and held-out figures."""
    return {"describe": det.describe(), "sources": det.sources, "heldout": det.heldout,
            "has_domain": det.domain is not None, "views": det.views}


def _how_to_read(res: dict, prior_fake: float, thr: float) -> str:
    about = res.get("about") or {}
    src = about.get("sources") or []
    trained = ("; ".join(f"{s.get('what', s.get('name'))} ({s.get('n_real', 0):,} real, "
                         f"{s.get('n_fake', 0):,} fake)" for s in src)
               or "see the model card (weights/README.md)")
    held = about.get("heldout") or {}
    acc = "; ".join(
        f"{k}: ROC AUC {v['roc_auc']:.2f}, balanced accuracy {v['balanced_accuracy']:.2f}"
        for k, v in held.items() if v.get("roc_auc") is not None) or "see the model card"
    domain = ("It also measures how far this face is from every kind of face it was trained "
              "on; too far, and it says <b>unsure</b> instead of guessing."
              if about.get("has_domain") else
              "This detector has no record of its training faces, so it never says unsure.")
    return f"""
  <details class="lf-how"><summary>How to read this</summary>
    <p><b>p(fake)</b> is the detector's probability that this face is fake, for a mix of
    real and fake faces like its training mix. <b>The prior</b> (the slider) is the share of
    fakes you expect where this photo comes from; the rule turns p(fake) into a verdict:
    here fake when p(fake) ≥ {thr:.2f}. Rare fakes (a small prior) need stronger evidence.</p>
    <p><b>The bars</b> under "Why" start from a typical real face's p(fake) and add, layer
    by layer of the W+ code, what moves the score to this face's; they sum to its p(fake).
    Coarse layers hold pose and face shape, middle ones the features, fine ones colour and
    texture.</p>
    <p><b>Trained on</b>: {_esc(trained)}. <b>Held-out faces</b>: {_esc(acc)}. {domain}
    It is a teaching tool: a verdict is evidence to weigh, not proof.</p>
  </details>"""


def verdict_card(res: dict, prior_fake: float) -> str:
    """res: {"p_fake", "train_fake_share", "weights", "detector", "outside", ...}.
    The decision is re-made here for `prior_fake` with lf_core's rule."""
    p, share = float(res["p_fake"]), float(res["train_fake_share"])
    is_fake = bool(decide(p, prior_fake, share))
    lr = float(likelihood_ratio(p, share))
    need = (1 - prior_fake) / prior_fake
    thr = prior_threshold(prior_fake, share)
    if res.get("outside"):
        label, cls = "UNSURE", "lf-unsure"
    else:
        label, cls = ("FAKE", "lf-fake") if is_fake else ("REAL", "lf-real")
    lr_txt = "∞" if not np.isfinite(lr) else (f"{lr:.3g}" if lr < 1e4 else f"{lr:.2e}")
    partial = res.get("partial")
    rows = [("Generator", res["weights"])]
    if res.get("projector"):
        rows.append(("Codes", res["projector"]))
    rows.append(("Detector", res["detector"]))
    if res.get("looks_like"):
        rows.append(("Looks most like", res["looks_like"]))
    if res.get("judged_by"):
        rows.append(("Judged by", f"the {res['judged_by']} detector, the set's member for "
                     "faces like these"))
    if res.get("domain_ratio") is not None:
        rows.append(("Distance to the training faces", f"{res['domain_ratio']:.2f} of the "
                     "limit (above 1: unsure)"))
    notes = "".join(f'<div class="lf-note">{_esc(n)}</div>' for n in res.get("notes", []))
    if partial:
        notes += f'<div class="lf-note">{_esc(partial)}</div>'
    if res.get("outside"):
        notes = ('<div class="lf-note">This face is unlike the faces this detector was trained '
                 "on, so its score would be a guess: no verdict.</div>") + notes
    return f"""
<div class="lf-card {cls}">
  <div class="lf-head">
    <div class="lf-label">{label}</div>
    <div class="lf-p">p(fake) = <b>{p:.2f}</b></div>
  </div>
  <div class="lf-bar"><div class="lf-bar-fill" style="width:{p * 100:.1f}%"></div>
    <div class="lf-bar-thr" style="left:{thr * 100:.1f}%" title="threshold"></div></div>
  <div class="lf-rule">
    Likelihood ratio p(x|fake)/p(x|real) = <b>{lr_txt}</b>; with an expected share of fakes
    π = {prior_fake:.2f} the rule says <b>fake when the ratio ≥ (1−π)/π = {need:.3g}</b>,
    that is when p(fake) ≥ {thr:.2f}. The detector was trained with {share:.0%} fakes.
  </div>
  {notes}
  <table class="lf-prov">{''.join(f'<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>' for k, v in rows)}</table>
  {_how_to_read(res, prior_fake, thr)}
</div>"""


def video_card(res: dict, prior_fake: float) -> str:
    """res: {"p_fake" or None, "train_fake_share", "rule", "n_face", "n_frames", ...}"""
    if res.get("p_fake") is None:
        return message_card("No face in any sampled frame",
                            f"{res['n_frames']} frames sampled (every {res['every']}th); none "
                            "had a detectable face, so there is no verdict.")
    card = verdict_card(res, prior_fake)
    extra = (f'<div class="lf-rule"><b>Video rule:</b> {_esc(res["rule"])}. '
             f'{res["n_face"]} of {res["n_frames"]} sampled frames had a face'
             + (f", {res['n_unsure']} of them unlike the training faces" if res.get("n_unsure")
                else "") + ".</div>")
    return card.replace('<table class="lf-prov">', extra + '<table class="lf-prov">', 1)


CSS = """
.lf-card {border-radius: 12px; padding: 14px 16px; border: 1px solid #dee2e6;
  background: #fff; font-size: 14px; line-height: 1.45; color: #212529;}
.lf-idle {color: #868e96; text-align: center; padding: 26px 16px;}
.lf-warn {background: #fff9db; border-color: #ffe066;}
.lf-error {background: #fff5f5; border-color: #ffa8a8;}
.lf-title {font-weight: 600; margin-bottom: 4px;}
.lf-head {display: flex; align-items: baseline; justify-content: space-between; gap: 12px;}
.lf-label {font-size: 32px; font-weight: 800; letter-spacing: 0.04em;}
.lf-fake .lf-label {color: #d6336c;} .lf-real .lf-label {color: #1c7ed6;}
.lf-fake {border-left: 6px solid #d6336c;} .lf-real {border-left: 6px solid #1c7ed6;}
.lf-unsure .lf-label {color: #868e96;} .lf-unsure {border-left: 6px solid #adb5bd;}
.lf-how {margin-top: 8px; font-size: 13px; color: #495057;}
.lf-how summary {cursor: pointer; font-weight: 600; color: #364fc7;}
.lf-p {font-size: 16px;}
.lf-bar {position: relative; height: 10px; border-radius: 5px; background: #e9ecef; margin: 10px 0;}
.lf-bar-fill {height: 100%; border-radius: 5px; background: linear-gradient(90deg, #1c7ed6, #d6336c);}
.lf-bar-thr {position: absolute; top: -4px; width: 2px; height: 18px; background: #212529;}
.lf-rule {color: #495057; margin: 6px 0;}
.lf-prov {width: 100%; border-collapse: collapse; margin-top: 10px; font-size: 12.5px;
  overflow-wrap: anywhere;}
.lf-prov td {padding: 3px 6px; border-top: 1px solid #f1f3f5; vertical-align: top;}
.lf-prov td:first-child {color: #868e96; white-space: nowrap; width: 1%;}
.lf-note {margin-top: 6px; font-size: 12.5px; color: #e8590c;}
.lf-status {font-size: 13px; color: #495057;}
.lf-hero h1 {margin-bottom: 0;}
.lf-steps {display: flex; gap: 8px; flex-wrap: wrap; margin: 4px 0 2px;}
.lf-steps span {background: #edf2ff; color: #364fc7; border-radius: 999px; padding: 2px 10px;
  font-size: 12.5px;}
"""
