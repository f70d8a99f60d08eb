#!/usr/bin/env bash
# Run the test suite offline (no model hub), on the venv made by scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# Same numbers on every CI machine: "auto" precision / dtype stay fp32 even on a CPU with native bf16;
# the bf16 paths are tested explicitly (tests/test_hardware_bf16.py).
export EMOREASON_CPU_BF16="${EMOREASON_CPU_BF16:-0}"
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
