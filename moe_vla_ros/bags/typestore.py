"""The rosbags typestore used by every bag tool: ROS 2 kilted's messages plus ours.

`get_typestore()` returns rosbags' `Stores.ROS2_KILTED` store (the standard message definitions
of the distro our rclpy wheels come from) with the `moe_vla_msgs` types registered from their
.msg text. The .msg files are looked up, in order, in ``share/moe_vla_msgs/msg/`` under this
interpreter's prefix (where scripts/setup.sh installs the built interface package), under every
``AMENT_PREFIX_PATH`` entry, and finally in the repository's ``moe_vla_msgs/msg/``.

Types a bag or the ROS graph uses that the store lacks (another robot's messages, say) can be
added with `ensure_type()`, which reads ``share/<package>/msg/<Type>.msg`` from the same
prefixes, nested types included.

rosbags computes RIHS01 type hashes from the definitions; `rosidl_hash_mismatches()` compares
them with the hashes rosidl wrote next to the installed .msg files, so a drift between what we
store in bags and what rclpy's generated types use is caught by a test.

Pure: rosbags only, no rclpy.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from rosbags.interfaces import Nodetype
from rosbags.serde import SerdeError
from rosbags.typesys import Stores, get_types_from_msg
from rosbags.typesys import get_typestore as _rosbags_typestore
from rosbags.typesys.base import TypesysError
from rosbags.typesys.store import Typestore

from moe_vla_ros.bags.errors import BagError

# Newest rosbags store matching the ROS 2 distro of our rclpy / message wheels (kilted).
DISTRO_STORE = Stores.ROS2_KILTED
INTERFACE_PACKAGE = "moe_vla_msgs"
REPO_ROOT = Path(__file__).resolve().parents[2]


def _share_roots() -> Iterator[Path]:
    """share/ folders to search, in priority order (interpreter prefix, then AMENT_PREFIX_PATH)."""
    seen: set[Path] = set()
    prefixes = [sys.prefix] + [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    for prefix in prefixes:
        share = Path(prefix) / "share"
        if share not in seen:
            seen.add(share)
            yield share


def find_msg_dir(package: str = INTERFACE_PACKAGE) -> Path:
    """The folder holding `package`'s .msg files (installed copy first, then the repository's)."""
    candidates = [share / package / "msg" for share in _share_roots()]
    if package == INTERFACE_PACKAGE:
        candidates.append(REPO_ROOT / INTERFACE_PACKAGE / "msg")
    for folder in candidates:
        if folder.is_dir() and any(folder.glob("*.msg")):
            return folder
    raise BagError(
        f"no .msg files for package {package!r} in any of: {[str(c) for c in candidates]} "
        "(run scripts/setup.sh, or set AMENT_PREFIX_PATH)"
    )


def types_from_msg_dir(msg_dir: Path, package: str) -> dict:
    """Parse every <Type>.msg of `msg_dir` into a rosbags typesdict named <package>/msg/<Type>."""
    typs: dict = {}
    for path in sorted(Path(msg_dir).glob("*.msg")):
        typs.update(get_types_from_msg(path.read_text(), f"{package}/msg/{path.stem}"))
    return typs


def new_typestore() -> Typestore:
    """A fresh store: the distro's standard messages plus moe_vla_msgs (not shared)."""
    store = _rosbags_typestore(DISTRO_STORE)
    store.register(types_from_msg_dir(find_msg_dir(INTERFACE_PACKAGE), INTERFACE_PACKAGE))
    return store


@lru_cache(maxsize=1)
def get_typestore() -> Typestore:
    """The process-wide store used by readers, writers, the recorder and the player.

    Types are only ever added to it (`ensure_type`, definitions read from bags), never changed.
    """
    return new_typestore()


def _nested_type_names(fields) -> Iterator[str]:
    for _, (node_type, detail) in fields:
        if node_type == Nodetype.NAME:
            yield detail
        elif node_type in (Nodetype.ARRAY, Nodetype.SEQUENCE):
            (sub_type, sub_detail), _ = detail
            if sub_type == Nodetype.NAME:
                yield sub_detail


def _msg_file(msgtype: str) -> Path | None:
    package, _, name = msgtype.partition("/msg/")
    if not package or not name:
        return None
    for share in _share_roots():
        path = share / package / "msg" / f"{name}.msg"
        if path.is_file():
            return path
    return None


def ensure_type(store: Typestore, msgtype: str) -> None:
    """Make sure `msgtype` (e.g. "pkg/msg/Type") and its nested types are in `store`.

    Missing types are read from installed ``share/<pkg>/msg/<Type>.msg`` files; raises BagError
    naming the type when no definition can be found.
    """
    pending, found = [msgtype], {}
    while pending:
        name = pending.pop()
        if name in store.fielddefs or name in found:
            continue
        path = _msg_file(name)
        if path is None:
            what = f"needed by {msgtype}" if name != msgtype else "requested"
            raise BagError(
                f"unknown message type {name} ({what}): not a {DISTRO_STORE.name} standard type, "
                f"not in {INTERFACE_PACKAGE}, and no share/<package>/msg/<Type>.msg for it under "
                f"{[str(s) for s in _share_roots()]}"
            )
        typs = get_types_from_msg(path.read_text(), name)
        found.update(typs)
        for _, fields in typs.values():
            pending.extend(_nested_type_names(fields))
    if found:
        try:
            store.register(found)
        except TypesysError as e:
            raise BagError(f"cannot register {sorted(found)}: {e}") from None


def register_definition(store: Typestore, msgtype: str, definition: str) -> None:
    """Register `msgtype` from a concatenated ros2msg definition as stored in bags.

    Raises BagError when the definition cannot be parsed or conflicts with a registered type.
    """
    if msgtype in store.fielddefs:
        return
    try:
        store.register(get_types_from_msg(definition, msgtype))
    except (TypesysError, ValueError) as e:
        raise BagError(f"the definition of {msgtype} stored in the bag is unusable: {e}") from None


def deserialize_cdr(store: Typestore, data: bytes | memoryview, msgtype: str) -> object:
    """Deserialise CDR bytes of `msgtype`, tolerating trailing bytes after the message.

    rclpy.serialization.serialize_message returns a buffer sized by Fast CDR's serialized-size
    estimate, which for sequences of structs (e.g. JointTrajectory.points) exceeds the message
    by a few bytes; ROS deserialisers ignore them, rosbags' size check rejects them. Bags
    written from serialize_message output (rosbag2_py scripts do this) therefore need this.
    Messages received from the middleware carry no such bytes.
    """
    try:
        return store.deserialize_cdr(data, msgtype)
    except SerdeError as e:
        if "size mismatch" not in str(e) or len(data) < 4:
            raise
    msgdef = store.get_msgdef(msgtype)
    little_endian = bytes(data[1:2]) == b"\x01"
    func = msgdef.deserialize_cdr_le if little_endian else msgdef.deserialize_cdr_be
    message, _ = func(memoryview(data)[4:], 0, msgdef.cls, store)
    return message


def rosidl_hash_mismatches(store: Typestore, package: str = INTERFACE_PACKAGE) -> dict[str, tuple[str, str]]:
    """Types of `package` whose rosbags RIHS01 hash differs from the one rosidl generated.

    Reads the ``<Type>.json`` type descriptions rosidl installs beside the .msg files (present
    only for a built package). Returns {type: (rosbags hash, rosidl hash)}; empty when all agree.
    Raises BagError when no installed description is found.
    """
    msg_dir = find_msg_dir(package)
    descriptions = sorted(msg_dir.glob("*.json"))
    if not descriptions:
        raise BagError(f"{msg_dir} has no rosidl type descriptions (*.json): is {package} built?")
    mismatches = {}
    for path in descriptions:
        for entry in json.loads(path.read_text()).get("type_hashes", []):
            name, theirs = entry["type_name"], entry["hash_string"]
            ensure_type(store, name)
            ours = store.hash_rihs01(name)
            if ours != theirs:
                mismatches[name] = (ours, theirs)
    return mismatches
