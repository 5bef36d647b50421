#!/usr/bin/env bash
# benchmarks/tools/gpu_joint.sh: joint G + E training in two phases inside LIMIT seconds, on a
# CUDA machine; the results come back under $OUT as G.safetensors + E.safetensors + log.jsonl.
#   EXTRA=--encoder-only: E alone against the frozen G (the G.* part comes back unchanged)
#   LR1, LR2: the two phases' starting lr (2e-4, 1e-4)
# Usage (weights/README.md tells the runs made with it):
#   first, where the data is: lf train-generator --out runs/gen --pack-to .gpu/faces.npz
#   then, on the GPU machine: LIMIT=560 OUT=out bash benchmarks/tools/gpu_joint.sh
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
set -u
export PYTHONUNBUFFERED=1
END=$(( $(date +%s) + ${LIMIT:-560} ))
left() { echo $(( END - $(date +%s) )); }
nvidia-smi --query-gpu=name --format=csv,noheader
split() {  # G.* and E.* as two files of at most 16 MiB, the loop's log beside them
  python3 -c "import os; from safetensors import safe_open; from safetensors.torch import save_file; f=safe_open('/tmp/g/lf-compact-256.safetensors','pt'); [save_file({k: f.get_tensor(k) for k in f.keys() if k.startswith(p+'.')}, os.environ['OUT']+f'/{p}.safetensors', metadata=f.metadata()) for p in 'GE']" ; cp /tmp/g/log.jsonl $OUT/ 2>/dev/null; echo "split at $(tail -1 /tmp/g/log.jsonl)"
}
phase() {  # lr, seconds of training
  local h=$(python3 -c "print(max($2, 30) / 3600)")
  echo "phase lr=$1 train_s=$2 left=$(left)"
  timeout $(( $(left) - 25 )) python3 -m lf_core.cli train-generator --from-pack .gpu/faces.npz --out /tmp/g \
    --hours $h --batch 32 --lr $1 --lr-end 1e-5 --cooldown 0.5 ${EXTRA:-} >> $OUT/train.log 2>&1
  local rc=$?; echo "rc=$rc"; tail -c 1200 $OUT/train.log | tr '\r' '\n' | grep -v '^\s*$' | tail -4; return $rc
}
# phase 1: ~62% of the time; a divergence (the guard stops it) -> once more with TF32 off
if ! phase ${LR1:-2e-4} $(( ($(left) - 90) * 62 / 100 )); then
  export NVIDIA_TF32_OVERRIDE=0; rm -rf /tmp/g; echo "retry with NVIDIA_TF32_OVERRIDE=0"
  phase ${LR1:-2e-4} $(( ($(left) - 90) * 62 / 100 )) || { gzip $OUT/train.log; exit 1; }
fi
split
phase ${LR2:-1e-4} $(( $(left) - 75 )) && split
tail -4 /tmp/g/log.jsonl
gzip $OUT/train.log; ls -la $OUT
