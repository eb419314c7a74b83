#!/usr/bin/env bash
# Make the venv an ament prefix in which `launch` / `launch_ros` run this package's launch files,
# as in a sourced colcon workspace (called by scripts/setup.sh after the editable install):
#   1. the vendored composition_interfaces (third_party/ros2-launch) is built into the venv
#      (launch_ros.actions imports it),
#   2. the vendored pure-Python `launch` / `launch_ros` are copied into <venv>/opt/ros2_launch/python
#      and put at the END of sys.path by a .pth file, so an installed `launch` (a sourced ROS 2 on
#      PYTHONPATH, or one in site-packages) is preferred,
#   3. the same .pth appends the venv to AMENT_PREFIX_PATH for every venv interpreter (the ROS 2
#      wheels do not set it), so ament_index_python / FindPackageShare find packages in the venv,
#   4. moe_vla_ros is registered in the venv's ament index like a colcon --symlink-install:
#      share/ament_index/resource_index/packages/moe_vla_ros, share/moe_vla_ros/{package.xml,
#      launch,config,models} (symlinks to this checkout: edits apply without re-running setup) and
#      lib/moe_vla_ros/<executable> (symlinks to the console scripts in <venv>/bin).
# Usage: scripts/install_launch_stack.sh [VENV]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(cd "${1:-${MOE_VLA_VENV:-$repo/.venv}}" && pwd)"
pkg=moe_vla_ros
vendor="${MOE_VLA_ROS2_LAUNCH_VENDOR:-$repo/third_party/ros2-launch}"
if [ ! -d "$vendor/python/launch" ] || [ ! -d "$vendor/python/launch_ros" ] || [ ! -f "$vendor/composition_interfaces/package.xml" ]; then
  echo "[setup] ERROR: the vendored ROS 2 launch stack is missing: expected $vendor/{python/launch,python/launch_ros,composition_interfaces}" >&2
  exit 1
fi
vendor="$(cd "$vendor" && pwd)"

# 1. composition_interfaces (same CMake route as moe_vla_msgs)
bash "$repo/scripts/build_msgs.sh" "$venv" "$vendor/composition_interfaces"

# 2. + 3. launch / launch_ros and AMENT_PREFIX_PATH
dest="$venv/opt/ros2_launch"
rm -rf "$dest"
mkdir -p "$dest"
cp -r --no-preserve=mode "$vendor/python" "$vendor"/LICENSE.* "$vendor/README.md" "$dest/"
find "$dest" -name __pycache__ -prune -exec rm -rf {} +
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
cat >"$site/moe_vla_ros2_launch.pth" <<PTH
$dest/python
import os, sys; _p = [x for x in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if x]; sys.prefix in _p or os.environ.__setitem__('AMENT_PREFIX_PATH', os.pathsep.join(_p + [sys.prefix]))
PTH

# 4. ament index entry, share/ and lib/ of moe_vla_ros
mkdir -p "$venv/share/ament_index/resource_index/packages" "$venv/share/$pkg" "$venv/lib/$pkg"
cp "$repo/resource/$pkg" "$venv/share/ament_index/resource_index/packages/$pkg"
for item in package.xml launch config models; do
  ln -sfn "$repo/$item" "$venv/share/$pkg/$item"
done
find "$venv/lib/$pkg" -maxdepth 1 -type l -delete
scripts="$("$venv/bin/python" - "$repo/setup.py" <<'PY'
import sys
source = open(sys.argv[1]).read()
start = source.index("CONSOLE_SCRIPTS = [")
ns = {}
exec(source[start:source.index("]", start) + 1], ns)
print("\n".join(spec.split("=")[0].strip() for spec in ns["CONSOLE_SCRIPTS"]))
PY
)"
for exe in $scripts; do
  [ -x "$venv/bin/$exe" ] || { echo "[setup] ERROR: console script $exe missing in $venv/bin (editable install failed?)" >&2; exit 1; }
  ln -sfn "$venv/bin/$exe" "$venv/lib/$pkg/$exe"
done

"$venv/bin/python" - <<'PY'
import launch, launch_ros
from launch_ros.substitutions.find_package import get_package_share_directory
from launch_ros.substitutions.executable_in_package import ExecutableInPackage  # noqa: F401
share = get_package_share_directory("moe_vla_ros")
print(f"[setup] launch {launch.__path__[0]}, launch_ros {launch_ros.__path__[0]}; moe_vla_ros share {share}")
PY
