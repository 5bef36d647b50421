"""LatentForensics demo: `python app.py` opens http://127.0.0.1:7860 (GRADIO_SERVER_PORT
to change the port) on the embedded default model (or LF_WEIGHTS / LF_DETECTOR)."""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import torch  # noqa: E402

torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))

from demo.ui import build_demo, launch  # noqa: E402

demo = build_demo()

if __name__ == "__main__":
    launch(demo, server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
