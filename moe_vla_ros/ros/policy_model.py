"""Model loading for the policy node: the spec's RuntimeConfig -> Policy, logged, warmed up
(control/warm_up.py), and the remote policy's state for status and diagnostics (`model.backend:
triton`). No subscriptions or publishers here; what the parameters ask for is spec/policy_node.py's.

A remote policy (TritonPolicy) whose inference misses its deadline or loses the server raises;
the PolicyRunner turns that step into a hold (never a command from stale data). With
`model.triton.fallback_onboard` it is a FallbackPolicy: the following steps run onboard and
`RemoteWatch` reports it: a log line at each switch, PolicyStatus (backend and execution_providers
are the onboard policy's, last_error says why it switched) and a WARN diagnostic naming the reason.
"""

from __future__ import annotations

import dataclasses
import threading

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from moe_vla_ros.control.safety import SafetyLimits
from moe_vla_ros.control.warm_up import warm_up
from moe_vla_ros.ros.telemetry_msgs import StatusSnapshot, placement_text
from moe_vla_ros.runtime.loader import load_policy
from moe_vla_ros.runtime.triton_policy import FallbackPolicy, TritonPolicy
from moe_vla_ros.runtime.types import Policy
from moe_vla_ros.spec.policy_node import PolicyNodeConfig


def load_configured_policy(cfg: PolicyNodeConfig, logger) -> Policy:
    """Load the model named by the parameters (empty model.path: the bundled default model)."""
    model = cfg.model
    path = model.model_path()
    if model.backend == "triton":
        t = model.triton
        onboard = f", onboard fallback on {list(model.providers)}" if t.fallback_onboard else ", no onboard fallback"
        logger.info(f"loading model {path} (backend triton: server {t.url}, deadline {t.deadline_s * 1e3:.0f} ms"
                    f"{onboard})")
    else:
        logger.info(f"loading model {path} (backend {model.backend}, providers {list(model.providers)})")
    policy = load_policy(path, cfg.runtime_config())
    meta = policy.fallback.metadata if isinstance(policy, FallbackPolicy) else policy.metadata
    if meta.cpu_fallback:
        logger.warning(
            f"requested providers {list(model.providers)} unavailable: running on {list(meta.execution_providers)}"
        )
    if meta.provider_placement:
        logger.info(f"provider placement (nodes per graph): {placement_text(meta.provider_placement)}")
    verification = meta.verification
    if verification.get("status") in ("fallback", "unavailable"):
        logger.warning(f"on-target verification: {verification['summary']}")
    elif verification:
        logger.info(f"on-target verification {verification['summary']} "
                    f"({verification['seconds'] * 1e3:.0f} ms, load + verification {verification['load_seconds']:.2f} s)")
    return policy


def warm_up_policy(policy: Policy, runs: int, limits: SafetyLimits | None) -> None:
    """control/warm_up.py's warm-up; a remote policy's with its connect timeout as the deadline
    (first calls set up the connection and warm the server up), and an onboard fallback warmed
    up too (its first answer after a switch must not be a cold start)."""
    if isinstance(policy, FallbackPolicy):
        warm_up(policy.fallback, runs, limits)
        policy = policy.primary
    if isinstance(policy, TritonPolicy):
        with policy.warm_up_deadline():
            warm_up(policy, runs, limits)
    else:
        warm_up(policy, runs, limits)


def remote_url(policy: Policy | None) -> str:
    """The Triton server's url of a remote policy (with or without fallback), else ""."""
    if isinstance(policy, FallbackPolicy):
        policy = policy.primary
    return policy.triton.url if isinstance(policy, TritonPolicy) else ""


class RemoteWatch:
    """Follows a FallbackPolicy for the node: logs each switch (poll() after every inference
    step), and adds the switch to PolicyStatus and /diagnostics."""

    def __init__(self, policy: FallbackPolicy, logger) -> None:
        self.policy = policy
        self.url = remote_url(policy)
        self._logger = logger
        self._lock = threading.Lock()
        self._seen = (0, 0)  # (switches, recoveries) already logged
        self._switch_error = ""  # the runner's last_error recorded for the step that switched

    @classmethod
    def of(cls, policy: Policy, logger) -> RemoteWatch | None:
        """A watch for a policy with an onboard fallback, else None."""
        return cls(policy, logger) if isinstance(policy, FallbackPolicy) else None

    @property
    def reason(self) -> str:
        """Why the node runs onboard ("" while on the server)."""
        return self.policy.fallback_reason

    def poll(self, runner_last_error: str) -> None:
        """Log a switch to the onboard policy or back (called on the inference thread)."""
        p = self.policy
        seen = (p.switches, p.recoveries)
        with self._lock:
            if seen == self._seen:
                return
            self._seen = seen
            if p.fallback_reason:
                self._switch_error = runner_last_error
        meta = p.fallback.metadata
        if p.fallback_reason:
            retry = (f"trying the server again every {p.retry_primary_s:g} s" if p.retry_primary_s > 0
                     else "staying onboard until the next configure")
            self._logger.warning(
                f"Triton server {self.url} failed, held for one step; continuing on the onboard policy "
                f"({meta.backend} on {list(meta.execution_providers)}), {retry}: {p.fallback_reason}")
        else:
            self._logger.warning(f"Triton server {self.url} answers again: back on the remote policy")

    def note(self) -> str:
        """"" on the server, else what status and diagnostics say about the onboard fallback."""
        reason = self.reason
        if not reason:
            return ""
        meta = self.policy.fallback.metadata
        return (f"on the onboard fallback ({meta.backend} on {','.join(meta.execution_providers)}) since the "
                f"Triton server {self.url} failed: {reason}")

    def status_snapshot(self, snapshot: StatusSnapshot) -> StatusSnapshot:
        """PolicyStatus: while onboard, last_error says so (unless a newer error came after)."""
        note = self.note()
        with self._lock:
            switch_error = self._switch_error
        if not note or snapshot.last_error not in ("", switch_error):
            return snapshot
        return dataclasses.replace(snapshot, last_error=note)

    def diagnostics(self, msg: DiagnosticArray, commanding: bool) -> DiagnosticArray:
        """/diagnostics: WARN while commanding onboard (not the ERROR of the switching step's
        inference error), and WARN while commanding on the server again after a switch (naming
        the last switch); the note added to the message while holding onboard; keys
        remote_fallback, fallback_reason, remote_url, remote_switches, remote_recoveries."""
        reason, p = self.reason, self.policy
        for status in msg.status:
            if reason and commanding:
                status.level, status.message = DiagnosticStatus.WARN, f"commanding {self.note()}"
            elif reason and self.note() not in status.message:
                status.message = f"{status.message}; {self.note()}"
            elif not reason and commanding and p.recoveries:
                status.level = DiagnosticStatus.WARN
                status.message = (f"commanding on the Triton server {self.url} again after {p.switches} switch(es) "
                                  f"to the onboard fallback, the last because: {p.last_fallback_reason}")
            status.values += [KeyValue(key="remote_url", value=self.url),
                              KeyValue(key="remote_fallback", value=str(bool(reason)).lower()),
                              KeyValue(key="fallback_reason", value=reason),
                              KeyValue(key="remote_switches", value=str(self.policy.switches)),
                              KeyValue(key="remote_recoveries", value=str(self.policy.recoveries))]
        return msg
