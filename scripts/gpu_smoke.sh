#!/usr/bin/env bash
# GPU smoke test in one call: a few GAD steps of a random Qwen2.5-0.5B-sized student with vLLM
# rollouts, then with transformers' generate; prints step time, tokens/s and peak memory.
#
#   scripts/gpu_smoke.sh [--install] [gpu_smoke.py options, e.g. --arch Qwen2.5-1.5B --steps 6]
#
# Python: $PYTHON if set, else .venv-gpu/bin/python if it exists, else .venv/bin/python.
# --install first creates .venv-gpu with a CUDA torch and vLLM (needs network, several GB). It does not
# use `pip install -e ".[vllm]"`: that cannot resolve while pyproject.toml pins torch==2.13.0 and
# vllm 0.33.0 pins torch==2.14.0 (docs/deployment.md), so it installs vllm first, then the project's
# other dependencies, then the project without dependencies (as Dockerfile.cuda does).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--install" ]; then
    shift
    python3 -m venv .venv-gpu
    .venv-gpu/bin/python -m pip install --quiet --upgrade pip
    .venv-gpu/bin/python -m pip install --quiet "vllm==0.33.0"
    .venv-gpu/bin/python - > /tmp/gad-gpu-requirements.txt <<'PY'
import re, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print("\n".join(d for d in deps if re.split(r"[<>=!~; \[]", d, maxsplit=1)[0] != "torch"))
PY
    .venv-gpu/bin/python -m pip install --quiet -r /tmp/gad-gpu-requirements.txt
    .venv-gpu/bin/python -m pip install --quiet --no-deps -e .
fi

if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x .venv-gpu/bin/python ]; then PY=.venv-gpu/bin/python
else PY=.venv/bin/python
fi

# Fail in a second, before any import, where there is no GPU at all.
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu_smoke: no NVIDIA GPU here (nvidia-smi is missing or lists no device): run this on a GPU machine" >&2
    exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
exec "$PY" scripts/gpu_smoke.py "$@"
