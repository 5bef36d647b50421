"""Plotly figures of the demo. Pure presentation: data in, go.Figure out."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

FAKE, REAL, GREY = "#d6336c", "#1c7ed6", "#868e96"
LOSS_COLOURS = {"pixel": "#1c7ed6", "perceptual": "#f59f00", "domain": "#37b24d", "total": "#495057"}
FONT = dict(family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size=12)


def _layout(fig: go.Figure, title: str, height: int = 300, **kw) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0.01, xanchor="left", font=dict(size=14)),
                      height=height, margin=dict(l=10, r=10, t=40, b=10), font=FONT,
                      template="plotly_white", **kw)
    return fig


LOSS_NAMES = {"pixel": "pixel MSE", "perceptual": "perceptual: {}",
              "domain": "domain |w - E(G(w))|²", "total": "total (weighted sum)"}


def loss_curve(history: list[dict], perceptual_name: str, steps: int,
               keys: tuple | None = None) -> go.Figure:
    """Loss terms per inversion step; the perceptual term labelled as what it is.
    keys: the terms to draw (default: those present in history)."""
    fig = go.Figure()
    names = {k: v.format(perceptual_name) for k, v in LOSS_NAMES.items()}
    xs = list(range(1, len(history) + 1))
    for key, label in names.items():
        ys = [h.get(key) for h in history]
        if keys is not None and key not in keys:
            continue
        if keys is None and not any(v is not None for v in ys):
            continue
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=label,
                                 line=dict(color=LOSS_COLOURS[key], width=3 if key == "total" else 2,
                                           dash="dot" if key == "total" else "solid")))
    if not history:
        fig.add_annotation(text="encoder only: no optimisation steps" if steps == 0
                           else "waiting for the first step…", showarrow=False,
                           x=0.5, y=0.5, xref="paper", yref="paper", font=dict(color=GREY))
    _layout(fig, "Inversion loss", 280, legend=dict(orientation="h", y=-0.25, x=0))
    fig.update_xaxes(title_text="step", range=[0.5, max(steps, 1) + 0.5])
    fig.update_yaxes(type="log", title_text="loss (log scale)", exponentformat="e",
                     dtick=1)  # one labelled tick per decade (no bare "2", "5" between them)
    return fig


def video_timeline(points: list[dict], threshold: float | None, total_s: float | None = None,
                   video_p: float | None = None) -> go.Figure:
    """points: {"t", "frame", "p"} with p None when no face was found in the frame."""
    fig = go.Figure()
    face = [q for q in points if q["p"] is not None]
    none = [q for q in points if q["p"] is None]
    if face:
        fig.add_trace(go.Scatter(
            x=[q["t"] for q in face], y=[q["p"] for q in face], mode="lines+markers",
            name="p_fake of the frame", line=dict(color="#495057", width=1.5),
            marker=dict(size=8, color=[FAKE if threshold is not None and q["p"] >= threshold
                                       else REAL for q in face]),
            customdata=[q["frame"] for q in face],
            hovertemplate="frame %{customdata} · %{x:.2f} s<br>p_fake %{y:.3f}<extra></extra>"))
    if none:
        fig.add_trace(go.Scatter(x=[q["t"] for q in none], y=[0.0] * len(none), mode="markers",
                                 name="no face found", marker=dict(symbol="x", color=GREY, size=8)))
    # the lines are named in the legend, not over the plot, where a label would hide frames
    for y, name, line in ((threshold, f"fake above {threshold or 0:.2f} (prior rule)",
                           dict(color=FAKE, dash="dash", width=1)),
                          (video_p, f"video mean {video_p or 0:.2f}",
                           dict(color="#495057", dash="dot", width=1))):
        if y is not None:
            fig.add_hline(y=y, line=line)
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=line, name=name))
    _layout(fig, "Score per sampled frame", 300, legend=dict(orientation="h", y=-0.3, x=0))
    fig.update_yaxes(range=[-0.03, 1.03], title_text="p_fake")
    fig.update_xaxes(title_text="time (s)", range=[0, total_s] if total_s else None)
    return fig


class LiveLossCurve:
    """The loss curve for streaming: the figure is built (and validated by plotly) once;
    each update only fills in the numbers and serialises, ~10x cheaper than a new
    go.Figure per step."""

    def __init__(self, perceptual_name: str, steps: int, keys: tuple):
        self.keys = [k for k in LOSS_NAMES if k in keys]
        fig = loss_curve([], perceptual_name, steps, keys=tuple(self.keys))
        fig.layout.annotations = ()
        self.fig = fig.to_plotly_json()
        self.fig["layout"]["template"] = fig.layout.template.to_plotly_json()

    def update(self, history: list[dict]):
        import json

        from gradio.components.plot import PlotData

        xs = list(range(1, len(history) + 1))
        for trace, key in zip(self.fig["data"], self.keys):
            trace["x"], trace["y"] = xs, [h.get(key) for h in history]
        return PlotData(type="plotly", plot=json.dumps(self.fig))


ROW_GROUPS = {"coarse": "pose and face shape", "middle": "features", "fine": "colour and texture"}


def row_names() -> list[str]:
    """Plain names of the 14 W+ rows: their group's meaning, then the row and resolution."""
    from lf_core.layout import group_of, layer_resolutions

    return [f"{group_of(i)}: {ROW_GROUPS[group_of(i)]} · row {i}, {res[-1]} px"
            for i, res in enumerate(layer_resolutions())]


def waterfall(att) -> go.Figure:
    """From the baseline's p(fake) to the verdict's, one step per W+ row: the steps add
    up to the verdict's score minus the baseline's."""
    v = np.asarray(att.channels, float)
    names = row_names()
    base = f"start: {att.baseline.split(' (')[0]}"
    fig = go.Figure(go.Waterfall(
        orientation="h", measure=["absolute"] + ["relative"] * len(v) + ["total"],
        y=[base] + names + ["this face: the verdict's p(fake)"],
        x=[att.p_fake_baseline] + list(v) + [0.0],
        increasing=dict(marker=dict(color=FAKE)), decreasing=dict(marker=dict(color=REAL)),
        totals=dict(marker=dict(color="#495057")), connector=dict(line=dict(color="#ced4da")),
        hovertemplate="%{y}<br>%{x:+.3f}<extra></extra>"))
    _layout(fig, "Why: from the typical face to this one (red: towards fake)", 470)
    fig.update_yaxes(autorange="reversed", tickfont=dict(size=11), automargin=True)
    path = att.p_fake_baseline + np.r_[0.0, np.cumsum(v)]  # the score after each row
    lo, hi = float(min(path.min(), 0.5)), float(max(path.max(), 0.5))
    pad = max(0.02, 0.1 * (hi - lo))
    fig.update_xaxes(title_text=f"p(fake) ({att.method.replace('_', ' ')})",
                     range=[max(0.0, lo - pad), min(1.0, hi + pad)], automargin=True)
    return fig


def top_dims(att, k: int = 12) -> go.Figure:
    """The k single dimensions of the code that moved the score most, by name."""
    d = np.asarray(att.dims, float)
    flat = np.argsort(-np.abs(d).ravel())[:k]
    rows, dims = np.unravel_index(flat, d.shape)
    names = row_names()
    labels = [f"{names[r].split(' ·')[0]} · row {r}, dim {c}" for r, c in zip(rows, dims)]
    vals = d[rows, dims]
    fig = go.Figure(go.Bar(x=vals, y=labels, orientation="h",
                           marker_color=[FAKE if x > 0 else REAL for x in vals],
                           hovertemplate="%{y}<br>%{x:+.4f}<extra></extra>"))
    _layout(fig, f"The {k} single numbers of the code that mattered most", 380)
    fig.update_yaxes(autorange="reversed", tickfont=dict(size=11), automargin=True)
    fig.update_xaxes(title_text="contribution to p(fake)", zeroline=True,
                     zerolinecolor="#adb5bd", automargin=True)
    return fig


# --------------------------------------------------------------------------- benchmarks

PROJ_COLOURS = {"stylegan": "#364fc7", "pca": "#f59f00", "vqvae": "#37b24d",
                "pixels (CNN)": "#868e96", "cnn": "#868e96"}


def _bench_layout(fig, title, height=360):
    _layout(fig, title, height, legend=dict(orientation="h", y=-0.25, x=0))
    fig.update_layout(margin=dict(l=60, r=20, t=50, b=90))
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    return fig


def bench_table(res: dict) -> go.Figure:
    """Table 1 as bars: test ROC AUC per classifier, one colour per projector."""
    fig = go.Figure()
    rows = res.get("table", {})
    for proj in ("stylegan", "pca", "vqvae", "cnn"):
        keys = [k for k in rows if k.split("/")[0] == proj]
        if not keys:
            continue
        fig.add_trace(go.Bar(
            x=[k.split("/")[1] for k in keys], y=[rows[k]["roc_auc"] for k in keys],
            name={"cnn": "CNN on pixels", "stylegan": "StyleGAN latent (ours)",
                  "pca": "PCA-512", "vqvae": "VQ-VAE-2"}[proj],
            marker_color=PROJ_COLOURS[proj],
            hovertemplate="%{x}: AUC %{y:.3f}<extra>" + proj + "</extra>"))
    _bench_layout(fig, "Table 1: test ROC AUC by projector and classifier")
    fig.update_layout(barmode="group")
    fig.update_yaxes(range=[0.4, 1.0], title_text="test ROC AUC")
    fig.add_hline(y=0.5, line=dict(color=GREY, dash="dot", width=1))
    return fig


def bench_fewshot(res: dict) -> go.Figure:
    """Few-shot curves: mean test AUC over draws against the training groups."""
    fig = go.Figure()
    for key, pts in res.get("fewshot", {}).items():
        xs = [p.get("n_train") or p.get("groups") for p in pts]
        ys = [p["roc_auc"] for p in pts]
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines+markers", name=key.replace("cnn/", "CNN ").replace("stylegan/", ""),
            line=dict(color=GREY if key.startswith("cnn") else None,
                      dash="dash" if key.startswith("cnn") else "solid"),
            hovertemplate="%{x} training faces: AUC %{y:.3f}<extra>" + key + "</extra>"))
    _bench_layout(fig, "Few-shot: test AUC against training faces (mean of draws)")
    fig.update_xaxes(type="log", title_text="training faces (log scale)")
    fig.update_yaxes(title_text="test ROC AUC")
    return fig


def bench_rows(res: dict) -> go.Figure:
    """Per W+ row: test AUC of a classifier that reads that row alone."""
    fig = go.Figure()
    names = row_names()
    for clf, vals in res.get("channels", {}).items():
        fig.add_trace(go.Bar(x=[v["roc_auc"] for v in vals], y=names[:len(vals)],
                             orientation="h", name=clf,
                             hovertemplate="%{y}: AUC %{x:.3f}<extra>" + clf + "</extra>"))
    _bench_layout(fig, "Which W+ rows carry the signal: test AUC of one row alone", 480)
    fig.update_layout(barmode="group")
    fig.update_yaxes(autorange="reversed", tickfont=dict(size=11))
    fig.update_xaxes(range=[0.45, max([0.8] + [v["roc_auc"] + 0.02 for vs in
                                              res.get("channels", {}).values() for v in vs])],
                     title_text="test ROC AUC")
    return fig


def bench_recon(res: dict) -> go.Figure:
    """Reconstruction PSNR (mean and 95% interval) per projector."""
    rec = {k: v for k, v in res.get("recon", {}).items() if isinstance(v, dict) and "psnr" in v}
    fig = go.Figure(go.Bar(
        x=list(rec), y=[v["psnr"][0] for v in rec.values()],
        error_y=dict(type="data", array=[v["psnr"][1] for v in rec.values()]),
        marker_color=[PROJ_COLOURS.get(k.split()[0], "#364fc7") for k in rec],
        hovertemplate="%{x}: %{y:.2f} dB<extra></extra>"))
    _bench_layout(fig, "Reconstruction quality of the test faces (PSNR, higher is better)")
    fig.update_yaxes(title_text="PSNR (dB)", rangemode="tozero")
    return fig
