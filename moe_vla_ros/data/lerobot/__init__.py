"""LeRobotDataset v3.0 in and out: writer (ours -> LeRobot), reader (LeRobot -> our episodes),
the layout checker and the feature mapping. pyarrow for parquet, PyAV for mp4; no `lerobot`."""

from moe_vla_ros.data.lerobot.mapping import LeRobotMapping, LeRobotMappingError
from moe_vla_ros.data.lerobot.reader import LeRobotActionError, LeRobotDemoDataset, import_lerobot, open_demonstrations
from moe_vla_ros.data.lerobot.schema import (
    CODEBASE_VERSION,
    LeRobotFormatError,
    LeRobotVersionError,
    assert_valid,
    check_dataset,
    is_lerobot_dataset,
)
from moe_vla_ros.data.lerobot.writer import ExportOptions, ExportReport, export_lerobot

__all__ = [
    "CODEBASE_VERSION", "ExportOptions", "ExportReport", "LeRobotActionError", "LeRobotDemoDataset",
    "LeRobotFormatError", "LeRobotMapping", "LeRobotMappingError", "LeRobotVersionError", "assert_valid",
    "check_dataset", "export_lerobot", "import_lerobot", "is_lerobot_dataset", "open_demonstrations",
]  # fmt: skip
