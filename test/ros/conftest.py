"""test/ros helpers (fake_robot, policy_node_harness) are importable by the tests here; the
`harness_factory` fixture makes PolicyNodeHarness instances and always closes them."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from policy_node_harness import PolicyNodeHarness


@pytest.fixture
def harness_factory(ros_context, tiny_model_dir):
    """make(model_dir=tiny_model_dir, **parameter overrides) -> a running PolicyNodeHarness."""
    made = []

    def make(model_dir=tiny_model_dir, **overrides):
        h = PolicyNodeHarness(ros_context, model_dir, **overrides)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()
