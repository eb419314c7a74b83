#!/usr/bin/env bash
# Builds the Triton server venv .venv-triton/ (or $MOE_VLA_TRITON_VENV) from
# requirements-triton-server.txt: numpy<2, nvidia-pytriton (bundles tritonserver with the python
# backend) and ONNX Runtime for the python models that stand in for Triton's onnxruntime backend
# (moe_vla_ros/serving/). Idempotent: a venv whose stamp matches the requirements is kept.
# ~1 min and ~450 MB. Used by the Triton tests and benchmarks/bench_triton.py; the robot side
# only needs tritonclient (requirements.txt).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MOE_VLA_TRITON_VENV:-$repo/.venv-triton}"
python="${PYTHON:-python3}"
req="$repo/requirements-triton-server.txt"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "[setup-triton] $venv is up to date"
  exit 0
fi
start=$(date +%s)
if [ ! -x "$venv/bin/python" ]; then
  echo "[setup-triton] creating venv $venv"
  "$python" -m venv "$venv"
fi
echo "[setup-triton] installing requirements-triton-server.txt"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" 2> >(grep -v "^WARNING: Location" >&2)
tritonserver="$("$venv/bin/python" -c 'import pytriton, pathlib; print(pathlib.Path(pytriton.__file__).parent / "tritonserver" / "bin" / "tritonserver")')"
if [ ! -x "$tritonserver" ]; then
  echo "[setup-triton] ERROR: nvidia-pytriton installed no tritonserver at $tritonserver" >&2
  exit 1
fi
"$venv/bin/python" -c "import numpy, onnxruntime; assert numpy.__version__.startswith('1.'), numpy.__version__; print('[setup-triton] ok: numpy', numpy.__version__, 'onnxruntime', onnxruntime.__version__)"
echo "$want" > "$stamp"
echo "[setup-triton] done in $(( $(date +%s) - start )) s: $tritonserver"
