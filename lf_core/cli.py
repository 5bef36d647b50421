"""`lf`: the command line. Every command only calls lf_core."""

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

EXIT_CODES = """exit codes:
  0  success
  1  error (message on stderr)
  2  bad command line
  3  bad input file (not an image/video, corrupt, too large, no decodable frame)
  4  no face found
  5  weights missing, unknown or unsafe
  130 interrupted
"""


def atomic_npz(path, **arrays):
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def cmd_align(a):
    from .align import align
    from .io import load_image, save_image

    faces = align(load_image(a.image), max_faces=a.max_faces)
    out = Path(a.output)
    for i, f in enumerate(faces):
        p = out if i == 0 else out.with_name(f"{out.stem}_{i}{out.suffix}")
        save_image(f.crop, p)
        print(f"{p}\tface {i}: box={list(map(int, f.box))} score={f.score:.2f}")
    return 0


def cmd_invert(a):
    from . import invert
    from .align import align
    from .io import load_image, save_image
    from .model import load_model

    model = load_model(a.weights)
    face = align(load_image(a.image), max_faces=1)[0]
    r = invert.run(model, face.crop, steps=a.steps, seed=a.seed)
    atomic_npz(a.output, w=r.w, steps=r.steps, psnr=r.psnr, weights=model.name)
    if a.recon:
        save_image(r.image, a.recon)
    print(f"{a.output}\tW+ {tuple(r.w.shape)}, {r.steps} steps, PSNR {r.psnr:.2f} dB, "
          f"{r.perceptual}")
    return 0


def cmd_predict(a):
    from .detect import predict_image, predict_video
    from .io import is_video
    from .model import load_model

    if not 0 < a.prior < 1:
        raise SystemExit(_usage_error(f"--prior must be in (0, 1), got {a.prior}"))
    model = load_model(a.weights)
    if is_video(a.input):
        res = predict_video(a.input, every=a.every, steps=a.steps, prior_fake=a.prior,
                            model=model, detector=a.detector)
        if a.json:
            print(json.dumps(res.to_json(), indent=1))
        else:
            n = sum(1 for f in res.frames if f.faces)
            p = "n/a" if res.prob_fake is None else f"{res.prob_fake:.3f}"
            print(f"{a.input}: {res.verdict.upper()} (p_fake {p}, {n}/{len(res.frames)} "
                  f"frames with a face; {res.rule})")
        return 4 if res.prob_fake is None else 0
    res = predict_image(a.input, steps=a.steps, prior_fake=a.prior, model=model,
                        detector=a.detector)
    if a.json:
        print(json.dumps(res.to_json(), indent=1))
    else:
        for i, f in enumerate(res.faces):
            print(f"{a.input} face {i}: {f.verdict.upper()} (p_fake {f.prob_fake:.3f}, "
                  f"LR {f.likelihood_ratio:.2f}, prior {a.prior}, {f.steps} steps)")
    return 0


def cmd_train_generator(a):
    from .train_gen import TrainConfig, train

    train(TrainConfig(out=a.out, hours=a.hours, steps=a.steps, batch=a.batch, seed=a.seed,
                      threads=a.threads))
    return 0


def parser():
    p = argparse.ArgumentParser(
        prog="lf", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="LatentForensics: real or deepfake, from a face's StyleGAN latent code.",
        epilog=EXIT_CODES)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("align", help="detect and FFHQ-align faces (256 x 256)")
    s.add_argument("image")
    s.add_argument("-o", "--output", required=True, help="PNG/JPEG; extra faces get _1, _2...")
    s.add_argument("--max-faces", type=int, default=1)
    s.set_defaults(fn=cmd_align)

    s = sub.add_parser("invert", help="invert the largest face into W+ (1, 14, 512)")
    s.add_argument("image")
    s.add_argument("--steps", type=int, default=100, help="0 = encoder only")
    s.add_argument("-o", "--output", required=True, help=".npz with w (1, 14, 512)")
    s.add_argument("--recon", help="also write the reconstruction G(w) here")
    s.add_argument("--weights", help="generator checkpoint (default: embedded model)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(fn=cmd_invert)

    s = sub.add_parser("predict", help="real or fake, for an image or a video")
    s.add_argument("input", help="image or video (mp4, mov, avi, mkv, webm)")
    s.add_argument("--steps", type=int, default=0, help="inversion steps (0 = encoder only)")
    s.add_argument("--prior", type=float, default=0.5, help="expected share of fakes, in (0, 1)")
    s.add_argument("--every", type=int, default=10, help="video: score every Nth frame")
    s.add_argument("--json", action="store_true")
    s.add_argument("--weights", help="generator checkpoint (default: embedded model)")
    s.add_argument("--detector", help="detector .safetensors (default: embedded)")
    s.set_defaults(fn=cmd_predict)

    s = sub.add_parser("train-generator", help="train the embedded compact generator + encoder")
    s.add_argument("--out", default="runs/gen")
    s.add_argument("--hours", type=float, default=1.0)
    s.add_argument("--steps", type=int, default=0, help="stop after this many steps (0: hours)")
    s.add_argument("--batch", type=int, default=8)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=int, default=0)
    s.set_defaults(fn=cmd_train_generator)
    return p


def _usage_error(msg):
    print(f"lf: error: {msg}", file=sys.stderr)
    return 2


def main(argv=None):
    from .errors import LFError

    a = parser().parse_args(argv)
    try:
        return a.fn(a)
    except LFError as e:
        print(f"lf: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("lf: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # never a traceback for a user; LF_DEBUG=1 shows it
        if os.environ.get("LF_DEBUG"):
            raise
        print(f"lf: internal error: {type(e).__name__}: {e} (rerun with LF_DEBUG=1 and "
              "report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
