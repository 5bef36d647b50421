"""LatentForensics core: the verbs align, invert, reconstruct, classify and explain.

    from lf_core import align, invert, reconstruct, classify, explain, load_model

Imported lazily, so `lf --help` does not load torch or mediapipe. The modules that hold
them have noun names (alignment, inversion, classifiers, explainers): a submodule named
like a verb would replace the verb on the package once imported.
"""

_VERBS = {
    "align": ("lf_core.alignment", "align"),
    "invert": ("lf_core.inversion", "invert"),
    "reconstruct": ("lf_core.inversion", "reconstruct"),
    "classify": ("lf_core.detect", "classify"),
    "explain": ("lf_core.explainers", "explain"),
    "load_model": ("lf_core.model", "load_model"),
    "predict_image": ("lf_core.detect", "predict_image"),
    "predict_video": ("lf_core.detect", "predict_video"),
}

__all__ = list(_VERBS)


def __getattr__(name):
    if name in _VERBS:
        import importlib

        mod, attr = _VERBS[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'lf_core' has no attribute {name!r}")
