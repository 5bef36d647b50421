"""Latency of the Gradio demo as a user feels it, through gradio_client.

    python benchmarks/speed/bench_demo.py                       # 3 runs, encoder + 20 steps
    python benchmarks/speed/bench_demo.py --runs 5 --steps 20 --detector weights/detector-default.safetensors

Starts `python app.py` in its own process on a free port (on LF_WEIGHTS or the embedded
model; the client in this process plays the browser), then per run: submit an image (upload included) to /detect and time
  - first live update: the first streamed update (detected face + aligned crop)
  - first reconstruction: the first update carrying G(w) (the encoder's code)
  - verdict: the first update carrying the verdict card (encoder + N steps + classifier)
  - done: the last update (attributions included)
and print medians against the targets (verdict <= 6 s, first update <= 2 s), next to the
same work without the UI (lf_core.pipeline.predict_image, in process). The first request
(model loading, graph building) is a warm-up and not counted.

Without --detector (and no weights/detector-default.safetensors), a small logistic
regression is trained first on 16 DFDC crops with lf_core.quicktrain (not timed).
Timings depend heavily on how busy the CPU is: the script prints the load average and
the CPU count next to them.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

TARGET_VERDICT_S = 6.0
TARGET_FIRST_S = 2.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(env: dict, log=subprocess.DEVNULL):
    """`python app.py` in its own process (environment `env`) on a free port of 127.0.0.1,
    as a user runs it; returns (process, url) once gradio_client can connect (2 minutes at
    most). log: where its output goes."""
    from gradio_client import Client

    port = free_port()
    env = dict(env, GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False")
    app = subprocess.Popen([sys.executable, str(ROOT / "app.py")], env=env, cwd=ROOT,
                           stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(240):
        try:
            Client(url, verbose=False)
            return app, url
        except Exception:
            if app.poll() is not None:
                sys.exit(f"app.py exited with {app.returncode}")
            time.sleep(0.5)
    app.terminate()
    sys.exit("app.py did not start within 2 minutes")


def quick_detector(data: Path) -> Path:
    from lf_core.lab.data import read_manifest, split_of
    from lf_core.model import load_model
    from lf_core.quicktrain import quick_train

    items = [it for it in read_manifest(data / "dfdc_faces" / "manifest.csv")
             if split_of(it.group) == "train"]
    picked = [it for it in items if it.label == 0][:8] + [it for it in items if it.label == 1][:8]
    res = quick_train([it.path for it in picked], [it.label for it in picked], load_model(),
                      folds=2)
    path = Path(tempfile.mkdtemp(prefix="lf-bench-")) / "det.safetensors"
    res.detector.save(path, metrics=res.detector.metrics)
    return path


def one_run(client, image, steps):
    from gradio_client import handle_file

    t0 = time.perf_counter()
    job = client.submit(handle_file(str(image)), steps, 0.5, api_name="/detect")
    first = recon = verdict = None
    n = 0
    for out in job:
        if not isinstance(out, (list, tuple)) or len(out) < 6:
            print(f"  (unexpected update: {str(out)[:200]})", flush=True)
            continue
        n += 1
        now = time.perf_counter() - t0
        if first is None:
            first = now
        if recon is None and out[2] is not None:
            recon = now
        if verdict is None and isinstance(out[5], str) and ("lf-fake" in out[5] or "lf-real" in out[5]):
            verdict = now
    job.result()
    return {"first_update_s": first, "first_recon_s": recon, "verdict_s": verdict,
            "done_s": time.perf_counter() - t0, "updates": n}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--image", type=Path, default=ROOT / "demo" / "examples" / "real_ffhq_00002.jpg")
    ap.add_argument("--detector", type=Path, default=None)
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("LF_DATA", ROOT.parent / "shared" / "data")))
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    from gradio_client import Client

    from lf_core.detector import DEFAULT_DETECTOR
    from lf_core.lab.bench import machine, machine_line

    det = args.detector or (DEFAULT_DETECTOR if DEFAULT_DETECTOR.exists() else None)
    if det is None:
        print("no detector given or installed: training a small one (not timed)…", flush=True)
        det = quick_detector(args.data)
    # the app in its own process, as `python app.py` runs it; the client here plays the browser
    app, url = start_app(dict(os.environ, LF_DETECTOR=str(det)))
    try:
        client = Client(url, verbose=False)
        one_run(client, args.image, 0)  # warm-up: model load, mediapipe graphs, captum import
        runs = []
        for i in range(args.runs):
            r = one_run(client, args.image, args.steps)
            runs.append(r)
            print(f"run {i + 1}: first update {r['first_update_s']:.2f} s, first G(w) "
                  f"{r['first_recon_s']:.2f} s, verdict "
                  f"{r['verdict_s']:.2f} s, done {r['done_s']:.2f} s, {r['updates']} updates",
                  flush=True)
    finally:
        app.terminate()
        app.wait(timeout=30)
    core = []  # the same work without the UI (the app has exited): lf_core.predict_image
    from lf_core.detector import load_detector
    from lf_core.model import load_model
    from lf_core.pipeline import predict_image

    model, detector = load_model(), load_detector(det)
    predict_image(str(args.image), steps=0, model=model, detector=detector)  # warm-up
    for _ in range(args.runs):
        t = time.perf_counter()
        predict_image(str(args.image), steps=args.steps, model=model, detector=detector)
        core.append(time.perf_counter() - t)

    med = {k: statistics.median(r[k] for r in runs)
           for k in ("first_update_s", "first_recon_s", "verdict_s", "done_s")}
    load = os.getloadavg()
    print(f"\nupload -> verdict, encoder + {args.steps} steps: median {med['verdict_s']:.2f} s "
          f"(target <= {TARGET_VERDICT_S:.0f} s: {'OK' if med['verdict_s'] <= TARGET_VERDICT_S else 'MISSED'})")
    print(f"upload -> first live update:            median {med['first_update_s']:.2f} s "
          f"(target <= {TARGET_FIRST_S:.0f} s: {'OK' if med['first_update_s'] <= TARGET_FIRST_S else 'MISSED'})")
    print(f"upload -> first reconstruction G(w):    median {med['first_recon_s']:.2f} s")
    print(f"upload -> explanations shown:           median {med['done_s']:.2f} s")
    med["core_predict_image_s"] = statistics.median(core)
    print(f"same image, lf_core.predict_image only: median {med['core_predict_image_s']:.2f} s "
          "(no UI, no upload: the floor on this machine)")
    print(f"({args.runs} runs; load average before {load[0]:.1f}; {machine_line()})")
    if args.json:
        args.json.write_text(json.dumps({"steps": args.steps, "runs": runs, "median": med,
                                         "machine": machine(), "loadavg": load[0],
                                         "targets": {"verdict_s": TARGET_VERDICT_S,
                                                     "first_update_s": TARGET_FIRST_S}}, indent=1))


if __name__ == "__main__":
    main()
