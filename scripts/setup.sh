#!/usr/bin/env bash
# One-command setup on a fresh Debian 12 / Python 3.11 machine with no ROS installed:
#   1. creates the virtual environment .venv/ (or $MOE_VLA_VENV),
#   2. installs every pinned dependency from requirements.txt (ROS 2 kilted wheels, torch CPU,
#      ONNX / ONNX Runtime, transformers, MuJoCo, rosbags, ...),
#   3. builds our interface package moe_vla_msgs into the venv,
#   4. installs moe_vla_ros itself (editable),
#   5. installs the ROS 2 launch stack from third_party/ros2-launch (launch, launch_ros,
#      composition_interfaces) and registers moe_vla_ros in the venv's ament index, so the launch
#      files run with the venv's python (scripts/install_launch_stack.sh; scripts/ros2_launch.py).
# Re-running it is safe and fast (it reuses the venv).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MOE_VLA_VENV:-$repo/.venv}"
python="${PYTHON:-python3}"
cd "$repo"
start=$(date +%s)
# The pure-Python launch stack (launch, launch_ros, composition_interfaces) ships in
# third_party/ros2-launch (unmodified upstream copies, Apache-2.0); MOE_VLA_ROS2_LAUNCH_VENDOR
# points elsewhere. An installed `launch` (a sourced ROS 2) wins at import time.
vendor="${MOE_VLA_ROS2_LAUNCH_VENDOR:-$repo/third_party/ros2-launch}"
if [ ! -d "$vendor/python/launch" ]; then
  echo "[setup] ERROR: ROS 2 launch stack not found at $vendor" >&2
  exit 1
fi
export MOE_VLA_ROS2_LAUNCH_VENDOR="$vendor"

if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating venv $venv"
  "$python" -m venv "$venv"
fi
echo "[setup] installing pinned dependencies (requirements.txt)"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "pip==25.3" "setuptools==80.9.0" "wheel==0.45.1"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt 2> >(grep -v "^WARNING: Location" >&2)

echo "[setup] building interface package moe_vla_msgs"
mkdir -p build
bash scripts/build_msgs.sh "$venv"

echo "[setup] installing moe_vla_ros (editable)"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .

echo "[setup] installing the ROS 2 launch stack and the ament index entry of moe_vla_ros"
bash scripts/install_launch_stack.sh "$venv"

"$venv/bin/python" -c "import rclpy, torch, onnxruntime, mujoco; from moe_vla_msgs.msg import ReasoningTrace; import moe_vla_ros, launch_ros.actions; print('[setup] ok: rclpy, launch_ros, torch', torch.__version__, 'onnxruntime', onnxruntime.__version__, 'mujoco', mujoco.__version__)"
# The Triton server venv (.venv-triton: its own pins, numpy<2) for the serving tests/benchmark;
# a failure leaves the robot-side setup usable (the Triton tests are skipped with the reason).
if ! bash scripts/setup_triton_server.sh; then
  echo "[setup] WARNING: could not build the Triton server venv (reason above); the Triton tests will be skipped" >&2
fi
echo "[setup] done in $(( $(date +%s) - start )) s. Activate with: . $venv/bin/activate"
