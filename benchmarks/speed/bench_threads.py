"""Why the demo runs every model call on one thread (demo/state.py, `on_lane`).

torch's CPU kernels run on libgomp, which keeps one OpenMP thread team per calling thread.
This times one generator forward + backward (batch 1, the inversion step's core) on one
worker thread, then again after a second thread has run a single torch call, leaving a
second, idle team behind (the thread stays alive, as gradio's worker threads do; the team
goes away only with its thread).

    python benchmarks/speed/bench_threads.py

2-core CPU, idle (2026-11-25): 0.126 s per step on one thread; 0.20 s once a second team
exists (about 1.7x slower). OMP_WAIT_POLICY=PASSIVE removes the gap but makes both ~0.18 s.
"""

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

import torch


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    lane = ThreadPoolExecutor(1)
    box = {}

    def setup():
        from lf_core.model import load_model
        box["G"] = load_model().G
        box["w"] = torch.randn(1, 14, 512)

    def step(n):
        w = box["w"].clone().requires_grad_(True)
        t = time.perf_counter()
        for _ in range(n):
            box["G"](w).square().mean().backward()
        return (time.perf_counter() - t) / n

    lane.submit(setup).result()
    lane.submit(step, 2).result()  # warm-up
    one = min(lane.submit(step, a.runs).result() for _ in range(3))
    other = ThreadPoolExecutor(1)  # a second live thread (as gradio's worker threads are)
    other.submit(step, 1).result()  # runs torch once: a second team, idle from now on
    two = min(lane.submit(step, a.runs).result() for _ in range(3))
    print(f"torch threads: {torch.get_num_threads()}")
    print(f"G forward+backward, all torch on one thread:     {one * 1000:.0f} ms")
    print(f"same thread, after a second thread ran torch once: {two * 1000:.0f} ms "
          f"({two / one:.2f}x)")


if __name__ == "__main__":
    main()
