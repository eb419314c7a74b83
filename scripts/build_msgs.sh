#!/usr/bin/env bash
# Build ROS 2 interface packages (msg/srv -> rclpy types) into a Python venv prefix with plain
# CMake, using the ROS 2 kilted build tools installed from PyPI.
# Usage: scripts/build_msgs.sh [VENV] [PACKAGE_DIR ...]
#   VENV         default: .venv next to this repo ($MOE_VLA_VENV if set)
#   PACKAGE_DIR  interface package folders (CMakeLists.txt + package.xml); default: moe_vla_msgs
# Each package is built in build/<package name>/ and installed into the venv prefix. Packages we
# do not own build unmodified: scripts/cmake/wheel_python_includes.cmake is injected into their
# configure step (CMAKE_PROJECT_INCLUDE), the same fix moe_vla_msgs/CMakeLists.txt carries.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(cd "${1:-${MOE_VLA_VENV:-$repo/.venv}}" && pwd)"
shift || true
[ "$#" -gt 0 ] || set -- "$repo/moe_vla_msgs"
export AMENT_PREFIX_PATH="$venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export PATH="$venv/bin:$PATH"
mkdir -p "$repo/build"
for src in "$@"; do
  src="$(cd "$src" && pwd)"
  [ -f "$src/CMakeLists.txt" ] && [ -f "$src/package.xml" ] || {
    echo "[build_msgs] $src is not an interface package (no CMakeLists.txt / package.xml)" >&2; exit 1; }
  name="$(basename "$src")"
  build="$repo/build/$name"
  # A build folder configured from another source folder (the package moved) is started afresh.
  if [ -f "$build/CMakeCache.txt" ] && ! grep -qx "CMAKE_HOME_DIRECTORY:INTERNAL=$src" "$build/CMakeCache.txt"; then
    rm -rf "$build"
  fi
  cmake -S "$src" -B "$build" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$venv" \
    -DCMAKE_INSTALL_PREFIX="$venv" \
    -DCMAKE_PROJECT_INCLUDE="$repo/scripts/cmake/wheel_python_includes.cmake" \
    -DPython3_EXECUTABLE="$venv/bin/python" \
    -DBUILD_TESTING=OFF >"$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
  cmake --build "$build" -j "$(nproc)" >"$build.build.log" 2>&1 || { tail -50 "$build.build.log"; exit 1; }
  cmake --install "$build" >"$build.install.log" 2>&1 || { tail -50 "$build.install.log"; exit 1; }
  echo "[build_msgs] $name built into $venv"
done
