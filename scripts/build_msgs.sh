#!/usr/bin/env bash
# Build the interface package moe_vla_msgs (msg/*.msg -> rclpy types) into a Python venv prefix
# with plain CMake, using the ROS 2 kilted build tools installed from PyPI.
# Usage: scripts/build_msgs.sh [VENV]   (default: .venv next to this repo)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(cd "${1:-$repo/.venv}" && pwd)"
build="$repo/build/moe_vla_msgs"
export AMENT_PREFIX_PATH="$venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export PATH="$venv/bin:$PATH"
cmake -S "$repo/moe_vla_msgs" -B "$build" \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$venv" \
  -DCMAKE_INSTALL_PREFIX="$venv" \
  -DPython3_EXECUTABLE="$venv/bin/python" \
  -DBUILD_TESTING=OFF >"$build.configure.log" 2>&1 || { mkdir -p "$(dirname "$build")"; cat "$build.configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" >"$build.build.log" 2>&1 || { tail -50 "$build.build.log"; exit 1; }
cmake --install "$build" >"$build.install.log" 2>&1 || { tail -50 "$build.install.log"; exit 1; }
"$venv/bin/python" -c "from moe_vla_msgs.msg import ReasoningTrace, ExpertUsage, PolicyStatus; print('moe_vla_msgs built:', ReasoningTrace.__name__, ExpertUsage.__name__, PolicyStatus.__name__)"
