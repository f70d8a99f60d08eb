#!/usr/bin/env bash
# Paper-scale GPU check in one command: the plain reference (shared tools/gpu_anchor.py, FACTS.md's
# H200 numbers) and our own stack at the same shapes (benchmarks/paper_scale.py), in the same run.
#
#   1. here, with the package index reachable (once per session):
#        bash benchmarks/run_gpu_check.sh --prepare
#      puts into .gpucheck/ (git-ignored via .git/info/exclude) what the GPU image lacks or has in
#      another version: wheels of transformers / peft / regex at this venv's versions, soundfile (+ cffi,
#      pycparser), omegaconf (+ antlr4 runtime, built here: source only), soxr, and a copy of the shared gpu_anchor.py (../shared does not travel to the device).
#   2. on the GPU machine (device tool: command "bash benchmarks/run_gpu_check.sh",
#      carry [".gpucheck"], timeout_s 600):
#        bash benchmarks/run_gpu_check.sh
#      installs the wheels into /tmp/site, runs the anchor (timeout 240 s) then paper_scale.py
#      (timeout 300 s), prints both tables, and writes anchor.log, paper_scale.log, gpu_anchor.json,
#      paper_scale.json and summary.md under $OUT (or runs/gpu-check/ when OUT is unset).
#
# Measured on an H200 (2026-11-30): 211 s of command time in all (anchor at --steps 4 and ours), plus
# ~35 s to start the machine.
# Options go to paper_scale.py, e.g. `bash benchmarks/run_gpu_check.sh --steps 4`; ANCHOR_ARGS goes to
# the anchor (default "--steps 4": its medians in half the time of its own default 8); SKIP_ANCHOR=1
# leaves it out (a second run in the same session, e.g. with `--profile "$OUT/prof"`); OURS_TIMEOUT
# (default 300 s) bounds paper_scale.py, e.g. longer with `--decode-modes off,static,cudagraphs,inductor`
# (an inductor compile of the 9B step takes minutes; paper_scale.json is saved after each stage). Without a GPU the
# same script is a dry run at tiny sizes on CPU (anchor --tiny, paper_scale.py --tiny), ~1 min.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
STAGE=.gpucheck
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python

if [ "${1:-}" = "--prepare" ]; then
  set -e
  mkdir -p "$STAGE" .git/info
  grep -qxF "/$STAGE/" .git/info/exclude 2>/dev/null || echo "/$STAGE/" >> .git/info/exclude
  versions=$($PY - <<'EOF'
from importlib.metadata import version
print(" ".join(f"{n}=={version(n)}" for n in ("transformers", "peft", "regex", "soundfile", "cffi", "pycparser", "omegaconf", "soxr")))
EOF
)
  # omegaconf's parser runtime is published as source only: build its (pure-Python) wheel here
  antlr=$($PY -c 'from importlib.metadata import version; print("antlr4-python3-runtime==" + version("antlr4-python3-runtime"))')
  echo "downloading wheels for Python 3.12 x86-64: $versions"
  rm -f "$STAGE"/*.whl
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$STAGE" $versions
  $PY -m pip wheel -q --no-deps -w "$STAGE" "$antlr"
  for d in shared ../shared; do
    if [ -f "$d/tools/gpu_anchor.py" ]; then cp "$d/tools/gpu_anchor.py" "$STAGE/"; break; fi
  done
  [ -f "$STAGE/gpu_anchor.py" ] || echo "warning: no shared/tools/gpu_anchor.py found; the check will run without the anchor"
  du -sh "$STAGE"; ls "$STAGE"
  echo "ready: on the GPU machine run 'bash benchmarks/run_gpu_check.sh' with carry [\"$STAGE\"]"
  exit 0
fi

OUT_DIR=${OUT:-$ROOT/runs/gpu-check}
mkdir -p "$OUT_DIR" "$STAGE"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
if ls "$STAGE"/*.whl >/dev/null 2>&1; then
  # --no-deps: everything else these wheels need is in the GPU image (torch, accelerate, tokenizers, hub).
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$STAGE"/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} \
    || echo "warning: wheel install failed; using the image's packages"
  # transformers checks some dependency versions at import (regex, tokenizers, hub): if the staged
  # set does not import, fall back to the image's own packages rather than fail outright.
  if [[ "${PYTHONPATH:-}" == /tmp/site* ]] && ! $PY -c "import transformers, peft, soundfile, omegaconf, soxr" 2>"$OUT_DIR/import_error.log"; then
    echo "warning: staged wheels do not import (see import_error.log); using the image's packages"
    PYTHONPATH=${PYTHONPATH#/tmp/site}; PYTHONPATH=${PYTHONPATH#:}; export PYTHONPATH
  fi
fi
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}  # emoreason from this tree, not installed there
nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
$PY -c "import torch, transformers, peft, accelerate; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), '| transformers', transformers.__version__, '| peft', peft.__version__, '| accelerate', accelerate.__version__)"
SIZE=()
if [ "$($PY -c 'import torch; print(int(torch.cuda.is_available()))')" != 1 ]; then
  echo "no GPU: dry run of this script at tiny sizes on CPU (one thread)"
  SIZE=(--tiny)
  export OMP_NUM_THREADS=1
fi

# The anchor: from the tree's shared/ or ../shared (copied beside the wheels), else a --prepare copy.
for d in shared ../shared; do
  if [ -f "$d/tools/gpu_anchor.py" ]; then cp "$d/tools/gpu_anchor.py" "$STAGE/gpu_anchor.py"; break; fi
done
anchor_rc=skipped
if [ -n "${SKIP_ANCHOR:-}" ]; then
  echo "== anchor: skipped (SKIP_ANCHOR set)"
elif [ -f "$STAGE/gpu_anchor.py" ]; then
  echo "== anchor: $STAGE/gpu_anchor.py (plain transformers, eager then SDPA encoders)"
  # shellcheck disable=SC2086  # ANCHOR_ARGS is a word list on purpose
  OUT=$OUT_DIR timeout 240 $PY "$STAGE/gpu_anchor.py" "${SIZE[@]}" ${ANCHOR_ARGS---steps 4} 2>&1 | tee "$OUT_DIR/anchor.log" | grep -v "it/s\]"
  anchor_rc=${PIPESTATUS[0]}
else
  echo "== anchor: gpu_anchor.py not found (run --prepare here first); skipped"
fi

echo "== ours: benchmarks/paper_scale.py $*"
# Expandable segments: less fragmentation near the H100's limit (and for the checkpointing retry after
# an OOM); max_memory_allocated, the number compared with the anchor, does not depend on it.
PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True timeout "${OURS_TIMEOUT:-300}" $PY benchmarks/paper_scale.py --out "$OUT_DIR/paper_scale.json" "${SIZE[@]}" "$@" 2>&1 \
  | tee "$OUT_DIR/paper_scale.log" | grep -v "it/s\]\|^train:"
ours_rc=${PIPESTATUS[0]}

# One summary: anchor numbers (from its JSON, or its last printed line if it was cut short) and ours.
$PY - "$OUT_DIR" "$anchor_rc" "$ours_rc" <<'EOF' | tee "$OUT_DIR/summary.md"
import json, sys
from pathlib import Path
out, anchor_rc, ours_rc = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
A = {}
if (out / "gpu_anchor.json").is_file():
    A = json.loads((out / "gpu_anchor.json").read_text())
elif (out / "anchor.log").is_file():
    for line in (out / "anchor.log").read_text().splitlines():
        if line.startswith("{"):
            A = json.loads(line)  # per-variant progress lines: the last one holds the most
print(f"\n## GPU check summary (anchor exit {anchor_rc}, ours exit {ours_rc})\n")
print(f"device: {A.get('device', '?')}, torch {A.get('torch', '?')}; bf16 matmul {A.get('bf16_matmul_tflops', '?')} TFLOP/s\n")
print("| anchor (plain transformers) | eager encoders | SDPA encoders | FACTS H200 (SDPA) |\n|---|---|---|---|")
for key, ref in (("train_step_s", "0.509"), ("train_samples_per_s", "11.8"), ("peak_mem_GiB", "64"),
                 ("mfu_vs_measured_peak", "0.31"), ("generate_tok_per_s", "-")):
    print(f"| {key} | {A.get(key + '_eager', '-')} | {A.get(key + '_sdpa', '-')} | {ref} |")
P = out / "paper_scale.json"
if P.is_file():
    R = json.loads(P.read_text())
    print("\n| ours (builder + Trainer + Engine) | value |\n|---|---|")
    for key in ("device_name", "build_s", "startup_s", "gradient_checkpointing", "mixed_precision", "seq_len", "step_s", "samples_per_s",
                "model_step_s", "model_samples_per_s", "data_s", "peak_mem_GiB", "loss_finite", "bf16_matmul_tflops",
                "model_tflop_per_step", "mfu", "mfu_loop", "analyze_score_only_s", "analyze_s",
                "analyze_decode_ms_per_token", "served_score_only_s", "served_decode_ms_per_token", "analyze_ok", "analyze_peak_mem_GiB"):
        print(f"| {key} | {R.get(key, '-')} |")
    modes = R.get("decode_modes", {})
    if modes:
        print("\n| decode mode (as served) | ms/step | first call s | half batch first call s | explanations as the first mode "
              "| graphs / breaks / cudagraph skips | error |\n|---|---|---|---|---|---|---|")
        first = next(iter(modes))
        for mode, row in modes.items():
            print(f"| {mode} | {row.get('decode_ms_per_step', '-')} | {row.get('first_call_s', '-')} | "
                  f"{row.get('first_call_half_batch_s', '-')} | {row.get('same_explanations_as_' + first, '-')} | "
                  f"{row.get('compiled_graphs', '-')} / {row.get('graph_breaks', '-')} / {row.get('cudagraph_skips', '-')} | {row.get('error', '')} |")
else:
    print("\nours: no paper_scale.json (see paper_scale.log)")
EOF
echo "files in $OUT_DIR: $(ls "$OUT_DIR" | tr '\n' ' ')"
[ "$ours_rc" = 0 ]
