"""The Gradio demo, driven through gradio_client against an app launched in this process.

The app runs on the generator of LF_WEIGHTS / the embedded default (the `model` fixture)
and a small logistic-regression detector trained here (the `detector` fixture), handed to
the app through LF_DETECTOR, as a user would.
"""

import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

from lf_core.detector import SHIPPED  # noqa: E402

EXAMPLE = ROOT / "demo" / "examples" / "real_ffhq_00002.jpg"
UPLOAD_LIMIT_MB = 8  # the app under test gets a small upload limit (LF_MAX_UPLOAD_MB)

# outputs of /detect, in the order of demo.handlers.DETECT_OUTPUTS
FACES, CROP, RECON, LOSS, STATUS, VERDICT, WHY, DIMS, DIFF, JSON = range(10)


@pytest.fixture(scope="module")
def app_and_url(model, detector_path, start_app):
    old_limit = os.environ.get("LF_MAX_UPLOAD_MB")
    os.environ["LF_MAX_UPLOAD_MB"] = str(UPLOAD_LIMIT_MB)  # read at launch and per request
    app, url = start_app({"LF_DETECTOR": str(detector_path), "LF_WEIGHTS": model.path})
    yield app, url
    app.close()
    if old_limit is None:
        os.environ.pop("LF_MAX_UPLOAD_MB", None)
    else:
        os.environ["LF_MAX_UPLOAD_MB"] = old_limit


@pytest.fixture(scope="module")
def app_url(app_and_url):
    return app_and_url[1]


@pytest.fixture
def client(app_url):
    return Client(app_url, verbose=False)


def _is_verdict(html) -> bool:
    return isinstance(html, str) and ("lf-fake" in html or "lf-real" in html)


def test_endpoints_have_stable_names(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/detect", "/decide", "/video", "/explore", "/train", "/settings",
            "/benchmarks", "/stop_detect"} <= names


def test_detect_streams_then_verdict(client):
    t0 = time.perf_counter()
    job = client.submit(handle_file(str(EXAMPLE)), 50, 0.5, api_name="/detect")
    outs = list(job)
    outs = job.outputs() or outs
    final = outs[-1]
    live = [o for o in outs if "Step <b>" in str(o[STATUS])]
    # the verdict comes before the first step (it reads the encoder's code)
    first_verdict = next(i for i, o in enumerate(outs) if _is_verdict(o[VERDICT]))
    first_step = next(i for i, o in enumerate(outs) if "Step <b>" in str(o[STATUS]))
    assert first_verdict < first_step
    steps_seen = {str(o[STATUS]).split("Step <b>")[1].split(" /")[0] for o in live}
    assert len(steps_seen) >= 5, f"only {len(steps_seen)} intermediate updates"
    assert all("ETA" in o[STATUS] for o in live)
    recons = [o[RECON] for o in live if isinstance(o[RECON], str)]  # new G(w) every 10 steps
    assert len(recons) >= 3 and all(Path(r).is_file() for r in recons)
    assert _is_verdict(final[VERDICT])
    assert isinstance(final[RECON], str) and isinstance(final[FACES], str)
    js = final[JSON]
    assert js["verdict"] in ("real", "fake") and 0.0 <= js["p_fake"] <= 1.0
    assert js["steps"] == 50 and "perceptual" in js
    assert ("LPIPS" in js["perceptual"]) or ("MS-SSIM" in js["perceptual"])
    # the loss curve names the perceptual term as what it is
    loss = str(final[LOSS])
    assert js["perceptual"].split(" (")[0] in loss
    assert final[WHY] is not None and final[DIMS] is not None and final[DIFF] is not None
    assert js["explanation"]["method"] == "integrated_gradients"
    # the waterfall adds up to the verdict: baseline + the rows = p(fake)
    ex = js["explanation"]
    assert abs(ex["p_fake_baseline"] + ex["sum"] - js["p_fake"]) < 1e-4
    print(f"50-step detect: {len(outs)} updates in {time.perf_counter() - t0:.1f} s")

    # the prior slider re-decides without re-inverting (same session)
    from lf_core.classifiers import decide

    share = js["train_fake_share"]
    t1 = time.perf_counter()
    for prior in (0.01, 0.99):
        card = client.predict(prior, api_name="/decide")
        assert _is_verdict(card) and f"π = {prior:.2f}" in card
        if share is not None:
            want = "FAKE" if decide(js["p_fake"], prior, share) else "REAL"
            assert f'lf-label">{want}<' in card
    assert time.perf_counter() - t1 < 10


def test_stop_gives_a_verdict_on_the_code_so_far(client):
    job = client.submit(handle_file(str(EXAMPLE)), 200, 0.5, api_name="/detect")
    while True:  # wait until the optimisation runs
        outs = job.outputs()
        if outs and "Step" in str(outs[-1][STATUS]):
            break
        assert not job.done(), "finished before it could be stopped"
        time.sleep(0.2)
    client.predict(api_name="/stop_detect")
    final = job.result(timeout=120)
    assert _is_verdict(final[VERDICT])
    assert final[JSON]["steps"] < 200 and "Stopped" in final[VERDICT]


def test_explore_mixes_layers_of_the_detected_face(client):
    client.predict(handle_file(str(EXAMPLE)), 0, 0.5, api_name="/detect")
    a, mixed, b, info = client.predict("coarse", 8, "mean face", None, None, api_name="/explore")
    from PIL import Image

    imgs = [np.asarray(Image.open(p).convert("RGB")) for p in (a, mixed, b)]
    assert all(im.shape == (256, 256, 3) for im in imgs)
    assert "coarse" in info and "p(fake)" in info
    assert "two views" not in info  # the test's LR detector scores one view


def test_explore_scores_both_views_with_the_default(model):
    """The shipped two-view detector scores a mixed code as it scores a face: with the code
    of its mirror image (here: of the face the code draws), as the Detect verdict does."""
    from demo.handlers import _explore
    from demo.state import Settings, get_detector
    from lf_core import inversion as inv
    from lf_core.alignment import align
    from lf_core.detector import DEFAULT_DETECTOR
    from lf_core.io import load_image
    from lf_core.pipeline import mirror_code

    settings = Settings(weights=model.path, detector=str(DEFAULT_DETECTOR))
    *_, info = _explore("coarse", 8, "mean face", str(EXAMPLE), None, None, settings)
    assert "the two views this detector averages" in info
    det, _ = get_detector(settings)
    w = inv.encode(model, align(load_image(EXAMPLE), max_faces=1)[0].crop[None])
    p = float(det.prob_fake(w, mirror_code(model, inv.reconstruct(model, w)[0]))[0])
    assert f"p(fake) {p:.3f} →" in info


def test_video_per_frame_scores(client, data_dir, detector):
    from lf_core.classifiers import decide
    from lf_core.pipeline import VIDEO_RULE

    video = data_dir / "videos" / "real" / "lynaeydofd.mp4"
    timeline, card, gallery, status, js = client.predict(
        handle_file(str(video)), 100, 0, 0.5, api_name="/video")
    frames = js["frames"]
    assert [f["index"] for f in frames] == [0, 100, 200]
    scored = [f["faces"][0]["prob_fake"] for f in frames if f["faces"]]
    assert scored and all(0.0 <= p <= 1.0 for p in scored)
    # the video's score is made of the per-frame scores, by the stated rule
    assert js["rule"] == VIDEO_RULE and js["prob_fake"] == pytest.approx(np.mean(scored))
    fake = decide(js["prob_fake"], 0.5, detector.train_fake_share_)  # the app's detector
    assert js["verdict"] == ("fake" if fake else "real")
    assert _is_verdict(card) and "Video rule" in card
    assert gallery and timeline is not None


def _good_request_works(client):
    out = client.predict(handle_file(str(EXAMPLE)), 0, 0.5, api_name="/detect")
    assert _is_verdict(out[VERDICT])


def test_bad_uploads_give_readable_errors_and_the_app_keeps_serving(client, tmp_path):
    from gradio_client.exceptions import AppError

    not_image = tmp_path / "notes.jpg"
    not_image.write_text("this is not a picture")
    grey = tmp_path / "grey.png"
    from PIL import Image

    Image.new("RGB", (320, 240), (128, 128, 128)).save(grey)
    corrupt = tmp_path / "clip.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(50_000))

    cases = [(not_image, "/detect", "not an image"), (grey, "/detect", "No face found"),
             (corrupt, "/video", "could not be opened as a video")]
    for path, api, want in cases:
        args = (handle_file(str(path)), 0, 0.5) if api == "/detect" else \
            (handle_file(str(path)), 100, 0, 0.5)
        with pytest.raises(AppError) as err:
            client.predict(*args, api_name=api)
        msg = str(err.value)
        assert want in msg, msg
        assert "Traceback" not in msg and "File \"" not in msg
        _good_request_works(client)

    # too large: refused before upload by the client, and by the server on a raw upload
    big = tmp_path / "big.jpg"
    big.write_bytes(os.urandom((UPLOAD_LIMIT_MB + 1) * 2**20))
    with pytest.raises(Exception) as err:
        client.predict(handle_file(str(big)), 0, 0.5, api_name="/detect")
    assert "maximum file size" in str(err.value)
    import httpx

    with open(big, "rb") as f:
        r = httpx.post(client.src.rstrip("/") + "/gradio_api/upload",
                       files={"files": ("big.jpg", f, "image/jpeg")}, timeout=60)
    assert r.status_code == 413 and "maximum allowed size" in r.text
    _good_request_works(client)


def test_output_images_are_removed_once_sent(client, monkeypatch, tmp_path):
    """Detect and Video write their images into a folder of their own, removed when the
    request ends (Gradio has its copies by then): the folder does not grow with the
    requests served, and every image still reaches the user."""
    from demo import state

    monkeypatch.setattr(state, "OUT_ROOT", tmp_path / "out")
    out = client.predict(handle_file(str(EXAMPLE)), 10, 0.5, api_name="/detect")
    for i in (FACES, CROP, RECON, DIFF):
        assert isinstance(out[i], str) and Path(out[i]).is_file()  # downloaded by the client
    assert list((tmp_path / "out").iterdir()) == []


def test_a_long_session_holds_the_same_components(app_and_url):
    """Detect after Detect in one session (a browser tab): its components are updated in
    place, not copied anew by each update (Gradio keeps every gr.skip()'s copy)."""
    app, url = app_and_url
    c = Client(url, verbose=False, download_files=False)
    for api, args in (("/detect", (0, 0.5)), ("/check_image", ())):
        sizes = []
        for _ in range(3):
            c.predict(handle_file(str(EXAMPLE)), *args, api_name=api)
            sizes.append(len(app.state_holder[c.session_hash].blocks_config.blocks))
        assert sizes[0] == sizes[1] == sizes[2], api


def test_four_clients_at_once(app_url):
    results, errors = {}, []

    def run(i):
        try:
            c = Client(app_url, verbose=False)
            out = c.predict(handle_file(str(EXAMPLE)), 0, 0.5, api_name="/detect")
            results[i] = out
        except Exception as e:  # collected, asserted below
            errors.append(repr(e))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    assert len(results) == 4 and all(_is_verdict(o[VERDICT]) for o in results.values())
    ps = {round(o[JSON]["p_fake"], 6) for o in results.values()}
    assert len(ps) == 1  # same image, same code, same score


def test_train_your_own_then_detect_with_it(client, dfdc_pairs):
    reals = [handle_file(str(r)) for r, _ in dfdc_pairs[:4]]
    fakes = [handle_file(str(f)) for _, f in dfdc_pairs[:4]]
    # 8 faces: the accuracy's interval reaches chance, so it is not switched in unasked
    report, download, source, _ = client.predict(reals, fakes, None, "lr", False,
                                                 api_name="/train")
    assert "cross-validated accuracy" in report and "95% interval" in report
    assert "not switched in" in report and source == "Detector file"
    assert download  # still offered
    report, download, source, _ = client.predict(reals, fakes, None, "lr", True,
                                                 api_name="/train")
    assert "now used by the **Detect**" in report
    assert source == "My trained detector (this session)"
    path = download if isinstance(download, str) else download.get("value")
    from lf_core.classifiers import load_classifier

    det = load_classifier(path)
    assert det.KIND == "lr" and det.metrics["quick_train"]["n_real"] >= 1
    out = client.predict(handle_file(str(EXAMPLE)), 0, 0.5, api_name="/detect")
    assert "trained in this session" in out[VERDICT]


def test_train_rejects_one_class(client, dfdc_pairs):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as err:
        client.predict([handle_file(str(dfdc_pairs[0][0]))], [], None, "lr", False,
                       api_name="/train")
    assert "fake" in str(err.value)


def test_settings_bad_path_is_reported(client):
    status, header = client.predict("/nonexistent/ffhq.pt", "", "Detector file",
                                    api_name="/settings")
    assert "Weights not changed" in status and "not found" in status
    assert "Generator:" in header


def test_settings_offer_the_shipped_detectors(app_url):
    """The faceswap detector chosen under Settings (its own client: a session of its own);
    the status and header say which detector judges from now on."""
    from demo.state import DETECTOR_CHOICES

    assert [p for _, p in DETECTOR_CHOICES] == [str(p) for p in SHIPPED.values()]
    c = Client(app_url, verbose=False)
    status, header = c.predict("", str(SHIPPED["faceswap"]), "Detector file",
                               api_name="/settings")
    assert "detector-faceswap" in status and "detector-faceswap" in header
    assert "ffhq" not in status.split("trained on ")[1] and "utkface" in status

    # the default is a set: the card says what the face looks like and which member judged,
    # and the explanation (on that member) still adds up to the card's p(fake)
    c = Client(app_url, verbose=False)
    c.predict("", str(SHIPPED["default"]), "Detector file", api_name="/settings")
    job = c.submit(handle_file(str(EXAMPLE)), 0, 0.5, api_name="/detect")
    outs = list(job)
    final = (job.outputs() or outs)[-1]
    js = final[JSON]
    assert js["judged_by"] == "all" and js["nearest_source"] == "ffhq_stylegan"
    assert "Looks most like" in final[VERDICT] and "Judged by" in final[VERDICT]
    ex = js["explanation"]
    assert abs(ex["p_fake_baseline"] + ex["sum"] - js["p_fake"]) < 1e-4


def test_no_detector_degrades_readably(model, tmp_path, start_app):
    app, url = start_app({"LF_DETECTOR": str(tmp_path / "none.safetensors"),
                          "LF_WEIGHTS": model.path})
    try:
        c = Client(url, verbose=False)
        out = c.predict(handle_file(str(EXAMPLE)), 0, 0.5, api_name="/detect")
        assert out[RECON] is not None  # aligned and inverted anyway
        assert "No verdict" in out[VERDICT] and "Detector file not found" in out[VERDICT]
        assert out[JSON]["verdict"] is None
    finally:
        app.close()


def test_detector_of_another_generator_gives_no_verdict(model, detector, tmp_path, start_app):
    """A detector trained on another generator's codes: the face is still inverted, and the
    verdict card says why there is none instead of scoring codes it never saw."""
    import copy

    path = tmp_path / "other.safetensors"
    copy.copy(detector).save(path, metrics={"projector": {"kind": "stylegan", "steps": 0, "weights": "ffhq.pt",
                                               "weights_sha256": "0123456789abcdef"}})
    app, url = start_app({"LF_DETECTOR": str(path), "LF_WEIGHTS": model.path})
    try:
        out = Client(url, verbose=False).predict(handle_file(str(EXAMPLE)), 0, 0.5,
                                                 api_name="/detect")
        assert out[RECON] is not None
        assert "the detector does not fit" in out[VERDICT] and "ffhq.pt" in out[VERDICT]
        assert out[JSON]["verdict"] is None
    finally:
        app.close()


def test_benchmarks_tab_explains_how_to_make_results(client, monkeypatch, tmp_path):
    """Both branches: the repository's RESULTS.md (figures moved to the gallery), then no
    RESULTS.md at all (the tab says how to make one)."""
    import demo.handlers as H

    results = ROOT / "benchmarks" / "RESULTS.md"
    n_fig = results.read_text().count("![")
    def items(gallery):  # the client gives the Gallery's update (a dict) or its value
        return gallery.get("value") or [] if isinstance(gallery, dict) else gallery or []

    md, gallery = client.predict(api_name="/benchmarks")
    assert n_fig and md.count("shown below") == n_fig and len(items(gallery)) == n_fig
    monkeypatch.setattr(H, "RESULTS_MD", tmp_path / "RESULTS.md")  # the app runs in-process
    md, gallery = client.predict(api_name="/benchmarks")
    assert "No benchmark results yet" in md and "lf bench" in md and not items(gallery)
    # the tab's plots: one figure each for Table 1, few-shot, per row and reconstruction
    *figs, note = H.bench_plots(H.bench_names()[0])
    assert len(figs) == 4 and all(f is not None and len(f.data) for f in figs)
    assert note.startswith("`lf bench")


# --------------------------------------------------------------------------- core parts


def test_channel_labels_follow_the_rosinality_layout():
    from lf_core.layout import channel_labels, layer_resolutions

    labels = channel_labels()
    assert len(labels) == 14
    assert labels[0] == "0: 4px" and labels[1].startswith("1: 4px rgb")
    assert labels[2] == "2: 8px" and labels[13] == "13: 256px rgb"
    assert layer_resolutions()[11] == (128, 256)


def test_explain_methods_agree_in_sign(detector, model):
    from lf_core.explainers import ChannelAblation, IntegratedGradients, explain, mix

    rng = np.random.default_rng(0)
    w = (model.w_avg.numpy() + rng.normal(0, 0.5, (14, 512)).astype(np.float32))[None]
    base = model.w_avg.numpy()
    ig = IntegratedGradients(detector, base).explain(w)
    assert ig.dims.shape == (14, 512) and ig.channels.shape == (14,)
    # completeness: the attributions add up to p(w) - p(baseline)
    assert abs(ig.dims.sum() - (ig.p_fake - ig.p_fake_baseline)) < 1e-3
    ab = ChannelAblation(detector, base).explain(w)
    assert ab.method == "channel_ablation" and ab.dims.shape == (14, 512)
    # For a logistic regression both have the sign of each row's term in the logit: IG's row
    # sum is that term times a positive path integral, ablation moves p along a monotone
    # sigmoid. Rows whose effect is below IG's numerical error (1e-3) are left out.
    big = np.abs(ab.channels) > 1e-3
    assert big.sum() >= 4, ab.channels
    np.testing.assert_array_equal(np.sign(ig.channels[big]), np.sign(ab.channels[big]))
    assert explain(w, detector).method == "integrated_gradients"
    m = mix(w, base[None], "fine")
    assert np.allclose(m[0, 8:], base[8:]) and np.allclose(m[0, :8], w[0, :8])


def test_quick_train_counts_and_skips(model, dfdc_pairs, tmp_path):
    from lf_core.quicktrain import quick_train

    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png")
    imgs = [r for r, _ in dfdc_pairs[:3]] + [f for _, f in dfdc_pairs[:3]] + [junk]
    res = quick_train(imgs, [0, 0, 0, 1, 1, 1, 1], model, folds=5)
    assert (res.n_real, res.n_fake) == (3, 3)  # the DFDC faces all align
    assert len(res.skipped) == 1 and "junk.png" in res.skipped[0]
    # 5 folds asked, 3 faces per class: 3 stratified folds, each scored
    assert res.folds == 3 and len(res.cv_scores) == 3
    assert res.cv_accuracy == pytest.approx(np.mean(res.cv_scores))
    assert res.detector.predict_proba(np.zeros((1, 14, 512), np.float32)).shape == (1, 2)
    # it records its codes as lf extract does, so lf evaluate and lf predict accept it
    from lf_core.detector import Detector
    from lf_core.lab.projectors import StyleGANProjector

    proj = res.detector.metrics["projector"]
    assert proj["kind"] == "stylegan" and proj == StyleGANProjector(model).meta()
    assert Detector(res.detector).check(model) == []


def test_train_from_a_zip(client, dfdc_pairs, tmp_path):
    import zipfile

    z = tmp_path / "faces.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for i, (r, f) in enumerate(dfdc_pairs[:3]):
            zf.write(r, f"mine/real/{i}.jpg")
            zf.write(f, f"mine/fake/{i}.jpg")
        zf.writestr("mine/notes.txt", "not a face")
    report, download, source, _ = client.predict(None, None, handle_file(str(z)), "lr", False,
                                                 api_name="/train")
    assert "cross-validated accuracy" in report and "skipped" in report
    assert "notes.txt" in report


def test_torch_lane_one_thread():
    """Every model call of the demo runs on one thread (demo/state.py): nested calls run in
    place, a streamed generator is advanced there and closed there when left early."""
    from demo.state import on_lane, stream_on_lane

    names = set()

    def where():
        names.add(threading.current_thread().name)
        return on_lane(threading.current_thread)  # nested: no deadlock, same thread

    threads = [threading.Thread(target=lambda: names.add(on_lane(where).name)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(names) == 1 and next(iter(names)).startswith("lf-torch")

    closed = []

    def gen():
        try:
            for _ in range(10):
                yield threading.current_thread().name
        finally:
            closed.append(threading.current_thread().name)

    for k, name in enumerate(stream_on_lane(gen())):
        assert name.startswith("lf-torch")
        if k == 2:
            break
    assert closed and closed[0].startswith("lf-torch")
