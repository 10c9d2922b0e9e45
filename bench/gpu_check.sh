#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py) with the repository's venv when there is one:
#   bench/gpu_check.sh                      # -> gpu_check.json in the current folder
#   bench/gpu_check.sh --quick --out x.json # CPU / CI: tiny models, skips what needs CUDA
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
    if [[ -x "$here/../.venv/bin/python" ]]; then python="$here/../.venv/bin/python"; else python=python3; fi
fi
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
else
    echo "gpu_check: no nvidia-smi: CUDA and TensorRT parts will be skipped (see the JSON)" >&2
fi
exec "$python" "$here/gpu_check.py" "$@"
