"""The Gradio Blocks of the LatentForensics demo, and how to launch it.

    from demo.ui import build_demo, launch
    app = build_demo(); launch(app)             # what `python app.py` does

Endpoints (stable api_names, for gradio_client):
    /detect   (image, steps, prior) -> streamed: faces, crop, reconstruction, loss plot,
              status, verdict HTML, channel plot, dims heat map, |x - G(w)|, result JSON
    /decide   (prior) -> verdict HTML for the last result of the session
    /video    (video, every, steps, prior) -> streamed: timeline, verdict, gallery, status, JSON
    /explore  (what, row, source, face_a, face_b) -> G(w_A), mixed, G(w_B), text
    /train    (real files, fake files, zip, kind) -> report, detector file
    /settings (weights, detector, source) -> status
    /benchmarks () -> Markdown, gallery
"""

import os
import types
from pathlib import Path

import gradio as gr

from . import handlers as H
from . import render
from .state import (
    DETECTOR_CHOICES,
    SRC_FILE,
    SRC_TRAINED,
    Settings,
    by_name,
    max_upload_mb,
    warm_up,
)

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
CONCURRENCY = int(os.environ.get("LF_CONCURRENCY", "2"))
QUEUE_SIZE = int(os.environ.get("LF_QUEUE_SIZE", "16"))

INTRO = """
# LatentForensics: real face or deepfake?

The demo finds the face, **aligns** it like FFHQ, **inverts** it into the latent space of a
StyleGAN2 generator (a *W+ code*: 14 layers × 512 numbers) and lets a light **classifier**
read that code. A teaching demo: the embedded models are small and trained here.
"""
STEPS_HTML = (
    '<div class="lf-steps"><span>1 · detect &amp; align</span><span>2 · invert into W+</span>'
    "<span>3 · classify the code</span><span>4 · decide with a prior</span>"
    "<span>5 · explain</span></div>")

DETECT_HELP = """
The **verdict** reads the code the detector was trained on (the encoder's, for the default):
it comes first, and does not change with the steps. **Steps** refine the reconstruction you
watch (gradient steps on the code). The **prior** is the share of fakes you expect where the
photo comes from: when fakes are rare, stronger evidence is needed to say *fake*. Moving it
re-decides instantly. **Unsure** means the face is unlike every kind of face the detector
was trained on. The default first names the kind of face (*looks most like*), then hands it
to the detector made for that kind (*judged by*): *faceswap* for faces like video frames,
*all* for the others.
"""


def _raw_image_upload(self, payload):
    """The raw upload path goes to the handler: lf_core.io reads (and refuses, with a
    readable message) whatever was uploaded, instead of Gradio's PIL call failing with a
    generic error on a non-image."""
    if payload is None:
        return None
    if getattr(payload, "path", None):
        return str(payload.path)
    return type(self).preprocess(self, payload)  # data: URLs (webcam / clipboard)


def _raw_video_upload(self, payload):
    """No conversion on upload (no ffmpeg needed): lf_core.io reads the file."""
    if payload is None:
        return None
    if not getattr(payload, "path", None):
        raise gr.Error("The uploaded video has no data; upload it again.")
    return str(payload.path)


def SafeImage(**kw) -> gr.Image:
    """gr.Image(type="filepath") whose upload reaches the handler unopened. (The override
    is per instance: a gr.Image subclass would make Gradio write a .pyi stub here.)"""
    comp = gr.Image(**kw)
    comp.preprocess = types.MethodType(_raw_image_upload, comp)
    return comp


def SafeVideo(**kw) -> gr.Video:
    comp = gr.Video(**kw)
    comp.preprocess = types.MethodType(_raw_video_upload, comp)
    return comp


def _examples():
    if not EXAMPLES_DIR.is_dir():
        return []
    return [[str(p)] for p in sorted(EXAMPLES_DIR.iterdir())
            if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp")][:3]


def build_demo() -> gr.Blocks:
    defaults = Settings.default()
    # delete_cache: uploads and outputs older than an hour are removed every hour
    with gr.Blocks(title="LatentForensics: real or deepfake?", analytics_enabled=False,
                   delete_cache=(3600, 3600)) as demo:
        settings = gr.State(defaults)
        result = gr.State(None)
        vresult = gr.State(None)

        gr.Markdown(INTRO, elem_classes=["lf-hero"])
        gr.HTML(STEPS_HTML)
        header = gr.Markdown(elem_classes=["lf-status"])

        with gr.Tabs():
            # ------------------------------------------------------------ Detect
            with gr.Tab("Detect", id="detect"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=4, min_width=300):
                        image = SafeImage(label="Face photo", type="filepath",
                                          sources=["upload", "webcam", "clipboard"], height=300,
                                          elem_id="lf-image")
                        ex = _examples()
                        if ex:
                            gr.Examples(ex, inputs=[image], label="Examples (FFHQ photos and a StyleGAN face; "
                                        "CC BY-NC-SA 4.0, see demo/examples/ATTRIBUTION.md)")
                        steps = gr.Slider(0, H.MAX_STEPS, value=20, step=1,
                                          label="Reconstruction: inversion steps",
                                          elem_id="lf-steps")
                        with gr.Row():
                            run = gr.Button("Detect", variant="primary", elem_id="lf-detect")
                            stop = gr.Button("Stop", variant="stop", elem_id="lf-stop")
                        prior = gr.Slider(0.01, 0.99, value=0.5, step=0.01,
                                          label="Expected share of fakes (prior π)")
                        verdict = gr.HTML(render.placeholder_card(), elem_id="lf-verdict")
                        gr.Markdown(DETECT_HELP)
                    with gr.Column(scale=7):
                        status = gr.HTML(H._status("Waiting for a photo."), elem_id="lf-status")
                        with gr.Row():
                            faces_img = gr.Image(label="Detected face",
                                                 interactive=False, height=260, format="jpeg")
                            crop_img = gr.Image(label="Aligned crop x",
                                                interactive=False, height=260, format="png")
                            recon_img = gr.Image(label="Reconstruction",
                                                 interactive=False, height=260, format="png")
                        loss_plot = gr.Plot(label="Inversion loss", show_label=False)
                        with gr.Accordion("Why? Attributions over the W+ code", open=True):
                            gr.Markdown(
                                "Starting from a typical real face's p(fake), each bar adds what "
                                "one layer of the W+ code changes on the way to this face (red: "
                                "towards fake, blue: towards real); they end at this face's "
                                "p(fake). Coarse layers hold pose and face shape, middle ones the "
                                "features, fine ones colour and texture. Integrated Gradients "
                                "for differentiable detectors, ablation for random forests. The "
                                "difference image shows what the generator could not reproduce.")
                            with gr.Row(equal_height=False):
                                chan_plot = gr.Plot(label="Per layer", show_label=False, scale=3,
                                                    elem_id="lf-why")
                                diff_img = gr.Image(label="|x − G(w)|, ×4", interactive=False,
                                                    height=300, format="png", scale=2)
                            dims_plot = gr.Plot(label="The numbers that mattered most",
                                                show_label=False)
                        with gr.Accordion("Raw result (JSON)", open=False):
                            result_json = gr.JSON(label="result")

                det_outputs = {"faces": faces_img, "crop": crop_img, "recon": recon_img,
                               "loss": loss_plot, "status": status, "verdict": verdict,
                               "why": chan_plot, "dims": dims_plot, "diff": diff_img,
                               "json": result_json, "result": result}
                image.upload(H.check_image, [image], [image, status], api_name="check_image",
                             concurrency_limit=None, show_progress="hidden")
                run.click(by_name(H.detect, H.DETECT_OUTPUTS, on_error=H.failed),
                          [image, steps, prior, settings],
                          [det_outputs[n] for n in H.DETECT_OUTPUTS],
                          api_name="detect", show_progress="minimal",
                          show_progress_on=[status], concurrency_id="heavy")
                stop.click(H.stop_detect, None, None, api_name="stop_detect",
                           concurrency_limit=None, show_progress="hidden")
                prior.change(H.redecide, [prior, result], [verdict], api_name="decide",
                             concurrency_limit=None, show_progress="hidden")

            # ------------------------------------------------------------ Video
            with gr.Tab("Video", id="video"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=4, min_width=300):
                        vid = SafeVideo(label="Short video", sources=["upload"], height=260,
                                        elem_id="lf-video")
                        every = gr.Slider(1, 300, value=10, step=1, label="Score every Nth frame",
                                          elem_id="lf-every")
                        vsteps = gr.Slider(0, H.MAX_VIDEO_STEPS, value=0, step=1,
                                           label="Reconstruction steps per frame")
                        with gr.Row():
                            vrun = gr.Button("Analyse video", variant="primary", elem_id="lf-vrun")
                            vstop = gr.Button("Stop", variant="stop")
                        vprior = gr.Slider(0.01, 0.99, value=0.5, step=0.01,
                                           label="Expected share of fakes (prior π)")
                        vverdict = gr.HTML(render.placeholder_card(
                            "Upload a video and press <b>Analyse video</b>."), elem_id="lf-vverdict")
                        gr.Markdown(f"**Aggregation:** {H.VIDEO_RULE}. At most "
                                    f"{H.MAX_VIDEO_FRAMES} sampled frames are scored.")
                    with gr.Column(scale=7):
                        vstatus = gr.HTML(H._status("Waiting for a video."))
                        timeline = gr.Plot(label="Per-frame score", show_label=False)
                        vgallery = gr.Gallery(label="Most suspicious frames (aligned faces, "
                                              "highest p_fake first)", columns=6, height=210,
                                              object_fit="contain")
                        with gr.Accordion("Raw result (JSON)", open=False):
                            vjson = gr.JSON(label="result")
                vid_outputs = {"timeline": timeline, "verdict": vverdict, "gallery": vgallery,
                               "status": vstatus, "json": vjson, "result": vresult}
                vid.upload(H.check_video, [vid], [vid, vstatus], api_name="check_video",
                           concurrency_limit=None, show_progress="hidden")
                vrun.click(by_name(H.video, H.VIDEO_OUTPUTS, on_error=H.failed),
                           [vid, every, vsteps, vprior, settings],
                           [vid_outputs[n] for n in H.VIDEO_OUTPUTS],
                           api_name="video", show_progress="minimal",
                           show_progress_on=[vstatus], concurrency_id="heavy")
                vstop.click(H.stop_video, None, None, api_name="stop_video",
                            concurrency_limit=None, show_progress="hidden")
                vprior.change(H.redecide_video, [vprior, vresult], [vverdict],
                              api_name="decide_video", concurrency_limit=None,
                              show_progress="hidden")

            # ------------------------------------------------------------ Explore
            with gr.Tab("Explore", id="explore"):
                gr.Markdown(
                    "**Style mixing.** The W+ code has one 512-d style per generator layer. "
                    "Replace the *coarse* layers (0-3: 4-8 px, pose and head shape), the "
                    "*middle* ones (4-7: 16-32 px, features and expression), the *fine* ones "
                    "(8-13: 64-256 px, colour and texture) or a single one by another face's "
                    "or by the mean face's, and see what they control. Face A is the last "
                    "face of the Detect tab unless you upload one here.")
                with gr.Row(equal_height=False):
                    with gr.Column(scale=4, min_width=300):
                        what = gr.Radio(["coarse", "middle", "fine", "one row"], value="coarse",
                                        label="Layers to replace")
                        row = gr.Slider(0, 13, value=8, step=1, label="Row (for 'one row')")
                        source = gr.Radio(["mean face", "another face"], value="mean face",
                                          label="Take them from")
                        with gr.Row():
                            face_a = SafeImage(label="Face A", type="filepath",
                                               sources=["upload", "clipboard"], height=160,
                                               elem_id="lf-face-a")
                            face_b = SafeImage(label="Face B",
                                               type="filepath", sources=["upload", "clipboard"],
                                               height=160, elem_id="lf-face-b")
                        erun = gr.Button("Mix", variant="primary", elem_id="lf-mix")
                    with gr.Column(scale=7):
                        with gr.Row():
                            e_a = gr.Image(label="G(w_A): face A", interactive=False, format="png")
                            e_mix = gr.Image(label="Mixed", interactive=False, format="png")
                            e_b = gr.Image(label="Layers from", interactive=False,
                                           format="png")
                        e_info = gr.Markdown(elem_id="lf-einfo")
                erun.click(H.explore, [what, row, source, face_a, face_b, result, settings],
                           [e_a, e_mix, e_b, e_info], api_name="explore", concurrency_id="heavy",
                           show_progress_on=[e_mix])

            # ------------------------------------------------------------ Benchmarks
            with gr.Tab("Benchmarks", id="benchmarks"):
                gr.Markdown("The paper's experiments on this project's models and data "
                            "(`lf bench`): detection on the test split (by source video), "
                            "few training faces, which W+ rows matter, reconstruction.")
                names = H.bench_names()
                bname = gr.Radio(names, value=names[0] if names else None, label="Bench",
                                 elem_id="lf-bench")
                bnote = gr.Markdown(elem_classes=["lf-status"])
                with gr.Row():
                    btab = gr.Plot(show_label=False, min_width=320)
                    bfew = gr.Plot(show_label=False, min_width=320)
                with gr.Row():
                    brows = gr.Plot(show_label=False, min_width=320)
                    brec = gr.Plot(show_label=False, min_width=320)
                with gr.Accordion("All the tables (benchmarks/RESULTS.md)", open=False):
                    bref = gr.Button("Refresh", size="sm", min_width=100)
                    bmd = gr.Markdown()
                    bgal = gr.Gallery(label="Figures", columns=1, height="auto",
                                      object_fit="contain", visible=False)
                bouts = [btab, bfew, brows, brec, bnote]
                bname.change(H.bench_plots, [bname], bouts, api_name="bench_plots")
                bref.click(H.benchmarks, None, [bmd, bgal], api_name="benchmarks")

            # ------------------------------------------------------------ Train your own
            with gr.Tab("Train your own", id="train"):
                gr.Markdown(
                    "Upload some **real** and some **fake** face photos (or one zip with "
                    "`real/` and `fake/` folders). Each face is aligned and encoded "
                    "(encoder only), and a logistic regression is fitted on the codes in "
                    "seconds (its penalty picked by cross-validation within the training "
                    "faces). Its cross-validated accuracy is reported, it becomes this "
                    "session's detector at once, and you can download it.")
                with gr.Row(equal_height=False):
                    with gr.Column():
                        real_files = gr.File(label="Real faces", file_count="multiple",
                                             file_types=["image"], type="filepath",
                                             elem_id="lf-real")
                        fake_files = gr.File(label="Fake faces", file_count="multiple",
                                             file_types=["image"], type="filepath",
                                             elem_id="lf-fake")
                        zip_file = gr.File(label="…or a zip with real/ and fake/ folders",
                                           file_types=[".zip"], type="filepath")
                        kind = gr.Radio([("logistic regression", "lr"), ("MLP-2", "mlp2")],
                                        value="lr", label="Classifier")
                        anyway = gr.Checkbox(False, label="Use it even if it is no better "
                                             "than chance", elem_id="lf-anyway")
                        trun = gr.Button("Train", variant="primary", elem_id="lf-train")
                    with gr.Column():
                        treport = gr.Markdown(elem_id="lf-treport")
                        tdown = gr.DownloadButton("Download detector (.safetensors)",
                                                  visible=False)

        # ------------------------------------------------------------ Settings
        with gr.Accordion("Settings: weights and detector", open=False):
            with gr.Row():
                wpath = gr.Textbox(defaults.weights, label="Generator weights "
                                   "(.safetensors / .pt / .pkl; default: LF_WEIGHTS or "
                                   "the embedded model)", elem_id="lf-wpath")
                dpath = gr.Dropdown(DETECTOR_CHOICES, value=defaults.detector,
                                    allow_custom_value=True, elem_id="lf-dpath",
                                    label="Detector: a shipped one, or a .safetensors path "
                                    "(default: LF_DETECTOR or the default)")
            dsrc = gr.Radio([SRC_FILE, SRC_TRAINED], value=SRC_FILE, label="Use")
            sapply = gr.Button("Reload", size="sm", elem_id="lf-sapply")
            sstatus = gr.Markdown()
        sapply.click(H.apply_settings, [wpath, dpath, dsrc, settings],
                     [sstatus, settings, header], api_name="settings")
        for choose in (dsrc, dpath):
            choose.input(H.apply_settings, [wpath, dpath, dsrc, settings],
                         [sstatus, settings, header], api_visibility="private")
        trun.click(H.train, [real_files, fake_files, zip_file, kind, anyway, settings],
                   [treport, tdown, settings, dsrc, header], api_name="train",
                   concurrency_id="heavy", show_progress_on=[treport])

        demo.load(H.page_load, [settings], [header], api_visibility="private")
        demo.load(H.benchmarks, None, [bmd, bgal], api_visibility="private")
        demo.load(H.bench_plots, [bname], bouts, api_visibility="private")
    return demo


THEME = gr.themes.Soft(
    primary_hue="indigo", neutral_hue="slate",
    font=["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"])


def launch(demo: gr.Blocks | None = None, **kw):
    """Queue (concurrency limit, queue size), upload limit, theme, CSS; then launch.
    Keyword arguments go to Blocks.launch (server_port, prevent_thread_lock, ...)."""
    demo = demo or build_demo()
    if os.environ.get("LF_WARMUP", "1") != "0":
        warm_up()
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)
    kw.setdefault("server_name", os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    if "server_port" not in kw and os.environ.get("GRADIO_SERVER_PORT"):
        kw["server_port"] = int(os.environ["GRADIO_SERVER_PORT"])
    kw.setdefault("max_file_size", int(max_upload_mb() * 2**20))
    kw.setdefault("show_error", False)
    kw.setdefault("state_session_capacity", 200)  # each session keeps its last result
    kw.setdefault("ssr_mode", False)
    kw.setdefault("footer_links", ["api", "settings"])
    kw.setdefault("theme", THEME)
    kw.setdefault("css", render.CSS)
    demo.launch(**kw)
    return demo
