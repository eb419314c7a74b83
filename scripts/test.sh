#!/usr/bin/env bash
# The test command: runs the whole suite in the project venv with ROS 2 isolated to this machine.
#   - ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST: DDS discovery never leaves the machine,
#   - a per-run ROS_DOMAIN_ID (random in 100..199 unless already set) so parallel runs don't meet,
#   - ROS_LOG_DIR inside build/,
#   - the venv on AMENT_PREFIX_PATH (after any sourced workspace), for the launch tests.
# Extra arguments go to pytest (e.g. scripts/test.sh test/control -q).
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MOE_VLA_VENV:-$repo/.venv}"
cd "$repo"
if [ ! -x "$venv/bin/python" ]; then
  echo "no venv at $venv: run scripts/setup.sh first" >&2
  exit 2
fi
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( 100 + RANDOM % 100 ))}"
export ROS_LOG_DIR="$repo/build/ros_log"
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
export MPLBACKEND=Agg
export HF_HUB_OFFLINE=1
# The venv is an ament prefix (scripts/install_launch_stack.sh): launch_ros finds moe_vla_ros there.
case ":${AMENT_PREFIX_PATH:-}:" in
  *":$venv:"*) ;;
  *) export AMENT_PREFIX_PATH="${AMENT_PREFIX_PATH:+$AMENT_PREFIX_PATH:}$venv" ;;
esac
mkdir -p "$ROS_LOG_DIR"
echo "[test] ROS_DOMAIN_ID=$ROS_DOMAIN_ID ROS_AUTOMATIC_DISCOVERY_RANGE=$ROS_AUTOMATIC_DISCOVERY_RANGE"
"$venv/bin/python" -m pytest "$@"
rc=$?
# pytest exit code 5 = no tests collected (e.g. a filter matched nothing): not a failure of the suite.
if [ "$rc" -eq 5 ]; then
  echo "[test] pytest collected no tests"
  rc=0
fi
exit "$rc"
