# Sourced by the long comparison scripts: run the code under test from a snapshot of the committed
# HEAD (git archive of moe_vla_ros/ into WORK/src, made once per WORK folder), so edits made in the
# working tree during a run that takes hours do not reach its trainings, exports or policy nodes.
#   use_code_snapshot REPO WORK   prepends the snapshot to PYTHONPATH, sets SNAPSHOT_COMMIT
use_code_snapshot() {
  local repo="$1" work="$2"
  if [ ! -f "$work/src/commit" ]; then
    rm -rf "$work/src" && mkdir -p "$work/src"
    git -C "$repo" archive HEAD moe_vla_ros | tar -x -C "$work/src"
    git -C "$repo" rev-parse HEAD > "$work/src/commit"
  fi
  export PYTHONPATH="$repo/$work/src${PYTHONPATH:+:$PYTHONPATH}"
  SNAPSHOT_COMMIT="$(cat "$work/src/commit")"
}
