"""LeRobotDataset v3.0 in and out, with pyarrow (parquet) and PyAV (mp4); no `lerobot` package.

- schema.py: the layout (paths, features, stats keys) and `check_dataset`, the checker;
- writer.py: `export_lerobot`, our dataset -> LeRobot folder (`ExportOptions`);
- reader.py: `LeRobotDemoDataset` (LeRobot folder -> our episodes), `import_lerobot`,
  `open_demonstrations` (either format);
- mapping.py: `LeRobotMapping`, LeRobot feature names -> our sensor contract;
- stats.py, video.py: LeRobot's statistics, mp4 encoding/decoding.

Import from the modules (this package file imports nothing, so no module cycles through it).
"""
