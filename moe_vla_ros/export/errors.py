"""Errors of the export pipeline."""

from moe_vla_ros.errors import FailedError


class ExportError(FailedError):
    """The export could not be carried out (bad checkpoint, occupied output folder, ...)."""


class ExportVerificationError(ExportError):
    """An exported graph or the exported policy does not match PyTorch (or violates the op allowlist).

    Attributes:
        report: the verification results gathered until the failure (JSON-serialisable).
    """

    def __init__(self, message: str, report: dict | None = None) -> None:
        super().__init__(message)
        self.report = report or {}
