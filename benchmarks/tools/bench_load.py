"""The demo under load: concurrent users, a soak, and what a user beyond the queue sees.

    python benchmarks/tools/bench_load.py          # 8, 16, 32 users x 5 min; 300 detections
    python benchmarks/tools/bench_load.py --users 8 --minutes 1 --soak 30   # a quick check

Starts `python app.py` in its own process on 127.0.0.1 and a free port (as
benchmarks/speed/bench_demo.py does), with its temporary folders (GRADIO_TEMP_DIR: uploads
and outputs as Gradio caches them; TMPDIR: the demo's own output images) in one fresh
folder, and stops it at the end. It runs on LF_WEIGHTS / LF_DETECTOR as set, else the
embedded model and weights/detector-default.safetensors; the queue as configured
(LF_CONCURRENCY, LF_QUEUE_SIZE).

Soak (first, on the fresh server): --soak detections one after another by one user
(Detect, --soak-steps inversion steps); the server's resident memory (RSS) and the size of
its temporary folders after the warm-up (the first tenth, at least 10) and at the end.
Resident memory must not grow by more than 50 MB after the warm-up.

Burst: --burst users press Detect at the same moment, more than the queue holds (by
default 6 more than LF_QUEUE_SIZE waiting + LF_CONCURRENCY running): what those beyond the
queue get, and how fast.

Load, for each count in --users: that many gradio_client users (a session each) send
requests back to back for --minutes: in turn Detect at each of --steps (an example face
uploaded each time) and Video (a DFDC video of ../shared/data, every --every-th frame
scored). Per kind of request: how many ended with a verdict, p50 / p95 of the time to the
first streamed update, to the verdict and to the last update (the queue wait included),
and what else happened: "busy" (the queue was full: what the user got and how fast),
errors (by message), "hung" (no end within --timeout). A busy user waits 2 s and tries
again, as a person would. Timings are polled every 50 ms.

Everything runs on this machine: the users' threads share its CPUs with the server (they
mostly wait). The table is Markdown; --json writes every figure.
"""

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGE = ROOT / "demo" / "examples" / "real_ffhq_00002.jpg"
VIDEO = Path("videos/real/lynaeydofd.mp4")  # in the data folder
# the verdict card's place in each endpoint's outputs (demo.handlers.DETECT_OUTPUTS and
# VIDEO_OUTPUTS, whose gr.State comes last and is not sent)
VERDICT_AT = {"/detect": 5, "/video": 1}
VERDICT_CLASSES = ("lf-fake", "lf-real", "lf-unsure")
RSS_LIMIT_MB = 50
POLL_S = 0.05


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB."""
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss / 2**20
    except ImportError:
        with open(f"/proc/{pid}/status") as f:
            kb = next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS:"))
        return kb / 1024


def temp_mb(temp: Path) -> dict:
    """Sizes of the server's temporary folders: Gradio's cache (uploads and outputs) and
    the demo's own output images (TMPDIR/lf-demo-out), in MB."""
    return {"cache_mb": round(folder_mb(temp / "gradio"), 2),
            "outputs_mb": round(folder_mb(temp / "tmp"), 2)}


def folder_mb(path: Path) -> float:
    """Size of the files under a folder, in MB."""
    total = 0
    for root, _, names in os.walk(path):
        for n in names:
            try:
                total += os.lstat(os.path.join(root, n)).st_size
            except OSError:  # removed meanwhile
                pass
    return total / 2**20


def one_request(client, api, args, timeout):
    """Submit one request and follow it to its end. Returns {api, outcome (verdict,
    no verdict, busy, error, hung), first, verdict, done (s), message}."""
    from gradio_client.utils import QueueError

    rec = {"api": api, "first": None, "verdict": None, "done": None, "message": None}
    t0 = time.perf_counter()
    try:
        job = client.submit(*args, api_name=api)
        seen = 0
        while True:
            outs = job.outputs()
            now = time.perf_counter() - t0
            for out in outs[seen:]:
                rec["first"] = rec["first"] or now
                card = out[VERDICT_AT[api]] if isinstance(out, (list, tuple)) else None
                if rec["verdict"] is None and isinstance(card, str) and \
                        any(c in card for c in VERDICT_CLASSES):
                    rec["verdict"] = now
            seen = len(outs)
            if job.done():
                break
            if now > timeout:
                job.cancel()
                rec.update(outcome="hung", done=now)
                return rec
            time.sleep(POLL_S)
        job.result()
        rec["outcome"] = "verdict" if rec["verdict"] is not None else "no verdict"
    except QueueError as e:
        rec.update(outcome="busy", message=str(e))
    except Exception as e:  # noqa: BLE001 - what the user saw is the figure
        text = str(e).strip()
        first = text.splitlines()[0] if text else ""
        rec.update(outcome="error", message=f"{type(e).__name__}: {first}",
                   traceback="Traceback" in text or 'File "' in text)
    rec["done"] = time.perf_counter() - t0
    return rec


def cycle_of(steps, every, video):
    """The requests a user sends in turn: [(kind, api, make_args)]."""
    from gradio_client import handle_file

    out = [(f"Detect, {s} steps", "/detect", lambda s=s: (handle_file(str(IMAGE)), s, 0.5))
           for s in steps]
    if video is not None:
        out.append((f"Video, every {every}th frame", "/video",
                    lambda: (handle_file(str(video)), every, 0, 0.5)))
    return out


def load(url, users, minutes, cycle, timeout, seed):
    """`users` users sending `cycle` requests back to back for `minutes`: their records."""
    from gradio_client import Client

    records, lock = [], threading.Lock()
    end = time.monotonic() + 60 * minutes
    rng = random.Random(seed)
    delays = [rng.uniform(0, 5) for _ in range(users)]  # arrivals spread over 5 s

    def user(i):
        time.sleep(delays[i])
        client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
        k = i  # users start at different points of the cycle
        while time.monotonic() < end:
            kind, api, make = cycle[k % len(cycle)]
            rec = dict(one_request(client, api, make(), timeout), kind=kind)
            with lock:
                records.append(rec)
            if rec["outcome"] == "busy":
                time.sleep(2.0)
            else:
                k += 1

    threads = [threading.Thread(target=user, args=(i,), daemon=True) for i in range(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60 * minutes + timeout + 60)
    return records


def soak(url, n, steps, pid, temp, timeout):
    """n detections in a row by one user: RSS and temporary folders after the warm-up and
    at the end."""
    from gradio_client import Client

    client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
    warm = max(10, n // 10)
    make = cycle_of([steps], 0, None)[0][2]
    rows, outcomes = [], {}
    every = max(1, (n - warm) // 5)
    for i in range(1, n + 1):
        rec = one_request(client, "/detect", make(), timeout)
        outcomes[rec["outcome"]] = outcomes.get(rec["outcome"], 0) + 1
        if i == warm or i == n or (i > warm and (i - warm) % every == 0):
            rows.append({"done": i, "rss_mb": round(rss_mb(pid), 1), **temp_mb(temp)})
            print(f"  soak {i}/{n}: RSS {rows[-1]['rss_mb']:.0f} MB, Gradio cache "
                  f"{rows[-1]['cache_mb']:.1f} MB, demo outputs {rows[-1]['outputs_mb']:.1f} MB",
                  flush=True)
    first, last, per = rows[0], rows[-1], max(1, n - warm)
    return {"n": n, "steps": steps, "warm_up": warm, "outcomes": outcomes, "samples": rows,
            "rss_growth_mb": round(last["rss_mb"] - first["rss_mb"], 1),
            "rss_max_growth_mb": round(max(r["rss_mb"] for r in rows) - first["rss_mb"], 1),
            **{f"{k[:-3]}_kb_per_request": round((last[k] - first[k]) * 1024 / per, 1)
               for k in ("cache_mb", "outputs_mb")}}


def burst(url, n, steps, timeout):
    """n users press Detect at the same moment, more than the queue holds: their records."""
    from gradio_client import Client

    clients = [Client(url, verbose=False, download_files=False, analytics_enabled=False)
               for _ in range(n)]
    kind, api, make = cycle_of([steps], 0, None)[0]
    start, records, lock = threading.Barrier(n), [], threading.Lock()

    def user(client):
        args = make()
        start.wait()
        rec = dict(one_request(client, api, args, timeout), kind=kind)
        with lock:
            records.append(rec)
    threads = [threading.Thread(target=user, args=(c,), daemon=True) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 60)
    return records


def pct(xs, q):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    if len(xs) == 1:
        return xs[0]
    return statistics.quantiles(xs, n=100, method="inclusive")[q - 1]


def summary(records) -> list[dict]:
    """One row per kind of request (Detect at k steps, Video)."""
    kinds = {}
    for r in records:
        kinds.setdefault(r["kind"], []).append(r)
    rows = []
    for name, rs in sorted(kinds.items()):
        ok = [r for r in rs if r["outcome"] == "verdict"]
        busy = [r for r in rs if r["outcome"] == "busy"]
        errors = {}
        for r in rs:
            if r["outcome"] in ("error", "no verdict"):
                m = r["message"] or r["outcome"]
                errors[m] = errors.get(m, 0) + 1
        rows.append({
            "kind": name, "requests": len(rs), "verdicts": len(ok), "busy": len(busy),
            "busy_max_s": max((r["done"] for r in busy), default=None),
            "busy_message": busy[0]["message"] if busy else None,
            "errors": errors, "hung": sum(r["outcome"] == "hung" for r in rs),
            "tracebacks": sum(bool(r.get("traceback")) for r in rs),
            **{f"{k}_p{q}": pct([r[k] for r in ok], q) for k in ("first", "verdict", "done")
               for q in (50, 95)}})
    return rows


def _s(v):
    return "–" if v is None else f"{v:.1f}"


def table(results) -> str:
    lines = ["| users | request | verdicts / sent | first update p50 / p95 s | verdict p50 / p95 s "
             "| done p50 / p95 s | busy (slowest answer) | errors | hung |",
             "|---:|---|---:|---|---|---|---|---:|---:|"]
    for users, rows in results.items():
        for r in rows:
            busy = f"{r['busy']} ({_s(r['busy_max_s'])} s)" if r["busy"] else "0"
            lines.append(
                f"| {users} | {r['kind']} | {r['verdicts']} / {r['requests']} | "
                f"{_s(r['first_p50'])} / {_s(r['first_p95'])} | "
                f"{_s(r['verdict_p50'])} / {_s(r['verdict_p95'])} | "
                f"{_s(r['done_p50'])} / {_s(r['done_p95'])} | {busy} | "
                f"{sum(r['errors'].values())} | {r['hung']} |")
    return "\n".join(lines)


def _counts(text):
    try:
        ns = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        ns = None
    if not ns or min(ns) < 0:
        raise argparse.ArgumentTypeError(f"use counts like 8,16,32, got {text!r}")
    return ns


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--users", type=_counts, default=[8, 16, 32],
                    help="concurrent users, one load run per count (default 8,16,32; 0: none)")
    ap.add_argument("--minutes", type=float, default=5.0, help="length of each load run")
    ap.add_argument("--steps", type=_counts, default=[0, 20],
                    help="Detect requests at these inversion steps (default 0,20)")
    ap.add_argument("--every", type=int, default=30, help="Video: score every Nth frame")
    ap.add_argument("--no-video", action="store_true", help="Detect requests only")
    ap.add_argument("--soak", type=int, default=300, help="sequential detections (0: no soak)")
    ap.add_argument("--burst", type=int, default=None,
                    help="users pressing Detect (the last of --steps) at the same moment, to "
                         "see what those beyond the queue get (default: the queue's size + "
                         "its concurrency + 6; 0: none)")
    ap.add_argument("--soak-steps", type=int, default=0, help="inversion steps in the soak")
    ap.add_argument("--timeout", type=float, default=600.0,
                    help="a request without an end after this many seconds counts as hung")
    ap.add_argument("--data", type=Path,
                    default=Path(os.environ.get("LF_DATA", ROOT.parent / "shared" / "data")))
    ap.add_argument("--seed", type=int, default=0, help="users' arrival times")
    ap.add_argument("--json", type=Path, help="also write every figure here")
    args = ap.parse_args()
    queue = {"concurrency": int(os.environ.get("LF_CONCURRENCY", "2")),
             "max_size": int(os.environ.get("LF_QUEUE_SIZE", "16"))}
    if args.burst is None:
        args.burst = queue["concurrency"] + queue["max_size"] + 6
    if args.minutes > 60 or args.soak > 5000 or max(*args.users, args.burst) > 256:
        ap.error("at most 60 minutes a run, 5000 soak detections and 256 users")

    sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks" / "speed")]
    from bench_demo import start_app

    from lf_core.detector import DEFAULT_DETECTOR
    from lf_core.lab.bench import machine, machine_line

    det = os.environ.get("LF_DETECTOR") or str(DEFAULT_DETECTOR)
    if not Path(det).is_file():
        sys.exit(f"no detector at {det}: set LF_DETECTOR (lf train) to measure verdicts")
    video = None if args.no_video else args.data / VIDEO
    if video is not None and not video.is_file():
        print(f"no {video}: Detect requests only", flush=True)
        video = None
    temp = Path(tempfile.mkdtemp(prefix="lf-load-"))
    (temp / "gradio").mkdir()
    (temp / "tmp").mkdir()
    log = open(temp / "server.log", "wb")
    env = dict(os.environ, LF_DETECTOR=det, GRADIO_TEMP_DIR=str(temp / "gradio"),
               TMPDIR=str(temp / "tmp"))
    started = time.strftime("%Y-%m-%d %H:%M")
    load_before = os.getloadavg()[0]
    app, url = start_app(env, log=log)
    out = {"date": started, "command": "python benchmarks/tools/bench_load.py "
           + " ".join(sys.argv[1:]), "machine": machine(), "load_before": load_before,
           "queue": queue}
    try:
        print(f"server {url} (pid {app.pid}), RSS {rss_mb(app.pid):.0f} MB; temporary folders "
              f"in {temp}", flush=True)
        if args.soak:
            print(f"soak: {args.soak} detections, {args.soak_steps} steps", flush=True)
            out["soak"] = soak(url, args.soak, args.soak_steps, app.pid, temp, args.timeout)
        out["load"] = {}
        if args.burst:
            print(f"burst: {args.burst} users press Detect at once", flush=True)
            recs = burst(url, args.burst, args.steps[-1], args.timeout)
            out["load"][f"{args.burst} at once"] = summary(recs)
        cycle = cycle_of(args.steps, args.every, video)
        for users in [u for u in args.users if u]:
            print(f"load: {users} users, {args.minutes:g} min", flush=True)
            recs = load(url, users, args.minutes, cycle, args.timeout, args.seed)
            out["load"][users] = summary(recs)
            out.setdefault("after_load", {})[users] = {"rss_mb": round(rss_mb(app.pid), 1),
                                                       **temp_mb(temp)}
        out["alive"] = app.poll() is None
    finally:
        app.terminate()
        try:
            app.wait(timeout=30)
        except Exception:  # noqa: BLE001 - a server that does not stop is killed
            app.kill()
        log.close()
    server_log = (temp / "server.log").read_text(errors="replace")
    out["server_tracebacks"] = server_log.count("Traceback (most recent call last)")
    shutil.rmtree(temp, ignore_errors=True)

    print(f"\n## {out['command']}\n\n{started}; {machine_line()}; load average before "
          f"{load_before:.1f}; queue: {out['queue']['concurrency']} at once, "
          f"{out['queue']['max_size']} waiting\n")
    if out.get("load"):
        print(table(out["load"]))
        msgs = {r["busy_message"] for rows in out["load"].values() for r in rows if r["busy"]}
        errs = {}
        for rows in out["load"].values():
            for r in rows:
                for m, c in r["errors"].items():
                    errs[m] = errs.get(m, 0) + c
        print(f"\nbusy answers: {sorted(msgs) or 'none'}; errors: {errs or 'none'}; "
              f"tracebacks shown to users: "
              f"{sum(r['tracebacks'] for rows in out['load'].values() for r in rows)}")
        for users, a in out["after_load"].items():
            print(f"after {users} users: RSS {a['rss_mb']:.0f} MB, Gradio cache "
                  f"{a['cache_mb']:.1f} MB, demo outputs {a['outputs_mb']:.1f} MB")
    if out.get("soak"):
        s = out["soak"]
        first, last = s["samples"][0], s["samples"][-1]
        verdict = "OK" if s["rss_max_growth_mb"] <= RSS_LIMIT_MB else "OVER"
        print(f"\nsoak: {s['n']} detections ({s['outcomes']}); RSS after {s['warm_up']} "
              f"{first['rss_mb']:.0f} MB, at the end {last['rss_mb']:.0f} MB: growth "
              f"{s['rss_growth_mb']:+.1f} MB (most {s['rss_max_growth_mb']:+.1f}; limit "
              f"{RSS_LIMIT_MB} MB: {verdict}); Gradio cache {first['cache_mb']:.1f} -> "
              f"{last['cache_mb']:.1f} MB, demo outputs {first['outputs_mb']:.1f} -> "
              f"{last['outputs_mb']:.1f} MB (KB a request after the warm-up: "
              f"{s['cache_kb_per_request']:.0f} and {s['outputs_kb_per_request']:.0f})")
    print(f"server still serving at the end: {out['alive']}; tracebacks in its log: "
          f"{out['server_tracebacks']}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
