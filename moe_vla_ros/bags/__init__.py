"""rosbag2 tools built on the rosbags library (no rclpy here; the ROS nodes live in ros/).

typestore   ROS 2 kilted + moe_vla_msgs types, hash checks      errors    BagError
writer      BagWriter (new mcap / sqlite3 bags)                  reader    BagReader, BagMessage
validate    validate_bag -> BagSummary, `moe_vla_bag_info`       synthetic generated demo bags
to_dataset  bag -> training dataset (`moe_vla_bag_to_dataset`), with demo_streams (first
            pass), episode_plan (cutting episodes) and resample (time alignment)
"""
