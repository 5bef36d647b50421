"""LatentForensics core: the verbs align, invert, reconstruct, classify and explain, and
the pipeline that chains them.

    from lf_core import align, invert, classify, explain, load_image, load_model, verdict_codes

    model = load_model()
    face = align(load_image("face.jpg"))[0]            # Face: crop (256, 256, 3), box, ...
    r = invert(model, face.crop, steps=100)             # Inversion: w (1, 14, 512), image, psnr
    w, w_mirror = verdict_codes(model, face.crop)       # the codes the detector reads
    v = classify(w, w_mirror)                           # Verdict: label, prob_fake, ...

Imported lazily, so `lf --help` does not load torch or mediapipe. The modules that hold
them have noun names (alignment, inversion, detector, explainers): a submodule named like
a verb would replace the verb on the package once imported. The paper's experiments
(projectors, extraction, evaluation, baselines, benches, training) are in `lf_core.lab`;
nothing here imports them.
"""

_NAMES = {
    # verbs
    "align": "alignment", "invert": "inversion", "invert_stream": "inversion",
    "reconstruct": "inversion", "classify": "detector", "explain": "explainers",
    "load_model": "model", "load_image": "io", "load_detector": "detector",
    "verdict_codes": "pipeline", "analyse_image": "pipeline", "analyse_video": "pipeline",
    "predict_image": "pipeline", "predict_video": "pipeline",
    # result types
    "Face": "alignment", "Inversion": "inversion", "Progress": "inversion",
    "Verdict": "decision", "Detector": "detector", "Attribution": "explainers",
    "FaceResult": "pipeline", "ImageResult": "pipeline", "FrameResult": "pipeline",
    "VideoResult": "pipeline", "LFError": "errors",
}

__all__ = list(_NAMES)


def __getattr__(name):
    if name in _NAMES:
        import importlib

        return getattr(importlib.import_module(f"lf_core.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'lf_core' has no attribute {name!r}")
