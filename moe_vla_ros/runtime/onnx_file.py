"""Read the header of an ONNX file (IR version, opset imports) without the `onnx` package.

The robot side needs only numpy + onnxruntime, but the loader must reject a graph whose opset
differs from the manifest before ONNX Runtime is asked to build a session from it. A ModelProto
is a protobuf message; its top-level fields are walked here and every field except

    1  ir_version    (varint)
    7  graph         (length-delimited; only checked to be present)
    8  opset_import  (length-delimited OperatorSetIdProto: 1 domain (string), 2 version (varint))

is skipped by its wire type. Anything that is not a well-formed message with an IR version, a
graph and a default-domain opset raises OnnxHeaderError.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from moe_vla_ros.errors import BadInputError

_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5
_IR_VERSION, _GRAPH, _OPSET_IMPORT = 1, 7, 8
DEFAULT_DOMAIN = ""


class OnnxHeaderError(BadInputError):
    """The bytes are not a readable ONNX model."""


@dataclass(frozen=True)
class OnnxHeader:
    """ir_version and {domain: opset version} of a model ("" is the default ai.onnx domain)."""

    ir_version: int
    opsets: dict[str, int]

    @property
    def default_opset(self) -> int:
        return self.opsets[DEFAULT_DOMAIN]


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= len(data):
            raise OnnxHeaderError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise OnnxHeaderError("varint longer than 64 bits")


def _fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of every top-level field; LEN values as bytes."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 0x7
        if number == 0:
            raise OnnxHeaderError("field number 0")
        if wire == _VARINT:
            value, pos = _varint(data, pos)
            yield number, wire, value
        elif wire == _FIXED64:
            pos += 8
        elif wire == _FIXED32:
            pos += 4
        elif wire == _LEN:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise OnnxHeaderError(f"field {number} runs past the end of the file")
            yield number, wire, data[pos : pos + length]
            pos += length
        else:
            raise OnnxHeaderError(f"unsupported protobuf wire type {wire} (field {number})")
        if pos > len(data):
            raise OnnxHeaderError("truncated message")


def parse_header(data: bytes) -> OnnxHeader:
    """OnnxHeader of a serialized ModelProto; raises OnnxHeaderError if it is not one."""
    ir_version, has_graph, opsets = None, False, {}
    for number, wire, value in _fields(data):
        if number == _IR_VERSION and wire == _VARINT:
            ir_version = int(value)  # type: ignore[arg-type]
        elif number == _GRAPH and wire == _LEN:
            has_graph = True
        elif number == _OPSET_IMPORT and wire == _LEN:
            domain, version = DEFAULT_DOMAIN, None
            for sub_number, sub_wire, sub_value in _fields(value):  # type: ignore[arg-type]
                if sub_number == 1 and sub_wire == _LEN:
                    try:
                        domain = bytes(sub_value).decode("utf-8")  # type: ignore[arg-type]
                    except UnicodeDecodeError:
                        raise OnnxHeaderError("opset domain is not UTF-8") from None
                elif sub_number == 2 and sub_wire == _VARINT:
                    version = int(sub_value)  # type: ignore[arg-type]
            if version is None:
                raise OnnxHeaderError(f"opset import for domain {domain!r} has no version")
            opsets["" if domain == "ai.onnx" else domain] = version
    if ir_version is None or not has_graph or DEFAULT_DOMAIN not in opsets:
        raise OnnxHeaderError("no IR version, graph or default-domain opset import")
    return OnnxHeader(ir_version, opsets)


def read_header(path: str | os.PathLike) -> OnnxHeader:
    """OnnxHeader of the ONNX file at `path` (raises OnnxHeaderError, or OSError if unreadable)."""
    with open(path, "rb") as f:
        return parse_header(f.read())
