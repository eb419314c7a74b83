"""The oracle baseline of the bag evaluators: a Policy that answers with the recording's own actions.

`RecordedActionsPolicy.infer(observation)` returns, for chunk step k, the reference action of
the bag at ``observation.stamp + (k + 1) / control_rate``: the target the recorded controller
was commanded at that time (for a bag from bags/from_sim.py: the scripted expert's), or the
recorded joint state where the bag has no commands. It looks at nothing else and knows the
future, so it is not a model: evaluated exactly like one (same runner, latency, merging and
safety filter), it shows the error floor the evaluation itself introduces (observation timing,
chunk merging, resampling on the control grid). A model that scores close to it imitates the
recording as well as the evaluation can tell.

Pure numpy: no rclpy, no model runtime.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.bags.from_sim import CONTRACT_KEY
from moe_vla_ros.bags.reader import BagReader
from moe_vla_ros.contract import ContractError, PolicyContract, SensorContract
from moe_vla_ros.evaluation.bag.config import EvaluationConfig
from moe_vla_ros.evaluation.bag.records import Reference, load_reference
from moe_vla_ros.runtime.types import Observation, Policy, PolicyMetadata, PolicyOutput


class RecordedActionsPolicy(Policy):
    """See the module docstring.

    Args:
        reference: the bag's recorded actions (evaluation/bag/records.load_reference).
        contract: the contract it serves (joint order of `reference`, chunk length, rate).
        latency_s: the latency it reports for every inference (simulated; 0 = instantaneous).
        name: model id reported in its metadata.
    """

    def __init__(self, reference: Reference, contract: PolicyContract, latency_s: float = 0.0,
                 name: str = "oracle") -> None:
        if reference.joint_positions.shape[1] != contract.sensors.num_joints:
            raise ValueError(
                f"reference has {reference.joint_positions.shape[1]} joints, the contract {contract.sensors.num_joints}"
            )
        if not (np.isfinite(latency_s) and latency_s >= 0):
            raise ValueError(f"latency_s must be a number >= 0, got {latency_s!r}")
        self.contract = contract
        self.reference = reference
        self.latency_s = float(latency_s)
        self._metadata = PolicyMetadata(name, "recorded-actions", (), False)

    @classmethod
    def from_bag(
        cls,
        bag: str | os.PathLike,
        contract: PolicyContract | SensorContract | None = None,
        config: EvaluationConfig | None = None,
        *,
        chunk_length: int = 16,
        latency_s: float = 0.0,
    ) -> RecordedActionsPolicy:
        """The oracle of `bag`. `contract`: a PolicyContract, a SensorContract (with
        `chunk_length`), or None to use the sensor contract stored in the bag's metadata
        (bags from from_sim.py have one)."""
        cfg = config or EvaluationConfig()
        with BagReader(bag) as reader:
            if contract is None:
                stored = reader.custom_data.get(CONTRACT_KEY)
                if not stored:
                    raise BagError(f"bag {bag} stores no sensor contract ({CONTRACT_KEY}); pass one")
                try:
                    contract = SensorContract.from_dict(json.loads(stored))
                except (ValueError, ContractError, TypeError) as e:
                    raise BagError(f"the sensor contract stored in {bag} is unusable: {e}") from None
            if isinstance(contract, SensorContract):
                contract = PolicyContract(contract, chunk_length=chunk_length)
            reader.require_topics([cfg.joint_state_topic, cfg.instruction_topic])
            reference = load_reference(reader, contract.sensors, cfg.joint_state_topic, cfg.instruction_topic,
                                       cfg.command_topic, cfg.reference_max_gap_s)
        return cls(reference, contract, latency_s, name=f"oracle:{reference.source}")

    @property
    def metadata(self) -> PolicyMetadata:
        return self._metadata

    def infer(self, observation: Observation, generate_reasoning: bool = True) -> PolicyOutput:
        start = time.perf_counter()
        observation.validate(self.contract)
        period = self.contract.sensors.control_period_s
        due = observation.stamp + period * np.arange(1, self.contract.chunk_length + 1)  # [H]
        targets, valid = self.reference.targets(due)  # [H, J], [H]
        actions = np.empty_like(targets)
        last = np.asarray(observation.joint_positions, dtype=np.float64)
        for k in range(len(due)):  # where nothing was recorded: keep the last known action
            last = targets[k] if valid[k] else last
            actions[k] = last
        return PolicyOutput(
            actions=actions, stamp=observation.stamp, reasoning=None, reasoning_is_new=False, expert_usage=(),
            latency_s=self.latency_s, stage_latency_s={"lookup": time.perf_counter() - start},
        )

    def reset(self) -> None:
        """Nothing to forget: every answer comes from the recording."""
