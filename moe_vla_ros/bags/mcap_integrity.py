"""Chunk CRCs of our .mcap files: written after the bag is closed, checked before a bag is used.

rosbags' MCAP writer (pinned 0.11.9) leaves every Chunk record's `uncompressed_crc` at 0 ("not
computed", MCAP spec), so flipped bytes inside a chunk go unnoticed. Its reader does check a
non-zero CRC when it decompresses a chunk. So:

* `write_chunk_crcs(path)` fills in the CRC32 of every chunk of a finished .mcap file in place
  (BagWriter.close calls it): each Chunk record's crc field lies at a fixed offset
  (opcode 1 + length 8 + message_start_time 8 + message_end_time 8 + uncompressed_size 8);
* `check_chunk_crcs(path)` reads the data section once and reports every chunk whose CRC does
  not match, and how many chunks carry no CRC (bags written before, or by other tools).

`scan_records(path)` walks the records of the data section in file order, chunks expanded, and
stops quietly at a truncated record: what `reindex.py` uses to recover a bag whose recorder was
killed before it wrote the summary, footer and metadata.yaml.

Record layouts follow the MCAP specification (https://mcap.dev/spec): opcode u8, length u64,
body; strings u32 length + UTF-8; byte arrays u32 (chunk records: u64) length + bytes.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from rosbags.rosbag2.storage_mcap import DECOMPRESSORS

from moe_vla_ros.errors import BadInputError

MAGIC = b"\x89MCAP0\r\n"
OP_HEADER, OP_FOOTER, OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK, OP_DATA_END = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0F
_CHUNK_FIXED = struct.Struct("<QQQI")  # message_start_time, message_end_time, uncompressed_size, uncompressed_crc
CRC_OFFSET = 1 + 8 + 8 + 8 + 8  # from the start of a Chunk record to its uncompressed_crc field


class McapFormatError(BadInputError):
    """The file is not MCAP or a record is malformed (not merely truncated)."""


@dataclass(frozen=True)
class Record:
    """One record of the data section.

    Attributes:
        opcode: MCAP record opcode.
        body: the record body.
        offset: file offset of the record (for records inside a chunk: of the chunk).
        in_chunk: the record came out of a chunk.
    """

    opcode: int
    body: bytes
    offset: int
    in_chunk: bool = False


@dataclass(frozen=True)
class ChunkCheck:
    """Result of `check_chunk_crcs`.

    Attributes:
        chunks: chunks found in the data section.
        unchecked: chunks without a CRC (0).
        problems: one line per chunk whose CRC or decompression failed.
        truncated: the data section ends inside a record (no footer; killed recorder).
    """

    chunks: int
    unchecked: int
    problems: tuple[str, ...]
    truncated: bool


def _read_records(f: BinaryIO, end: int | None) -> Iterator[tuple[int, int, bytes]]:
    """(offset, opcode, body) of top-level records after the header magic; stops at a truncated one."""
    while end is None or f.tell() < end:
        offset = f.tell()
        head = f.read(9)
        if len(head) < 9:
            return
        opcode, length = struct.unpack("<BQ", head)
        body = f.read(length)
        if len(body) < length:
            return
        yield offset, opcode, body


def _open_checked(path: Path) -> BinaryIO:
    f = open(path, "rb")
    if f.read(8) != MAGIC:
        f.close()
        raise McapFormatError(f"{path} is not an MCAP file (bad magic)")
    return f


def chunk_records(body: bytes) -> tuple[int, int, bytes]:
    """(uncompressed_crc, offset of the crc in the body, uncompressed records) of a Chunk body."""
    _, _, size, crc = _CHUNK_FIXED.unpack_from(body, 0)
    pos = _CHUNK_FIXED.size
    (clen,) = struct.unpack_from("<I", body, pos)
    compression = body[pos + 4 : pos + 4 + clen].decode()
    pos += 4 + clen
    (rlen,) = struct.unpack_from("<Q", body, pos)
    data = body[pos + 8 : pos + 8 + rlen]
    if len(data) != rlen:
        raise McapFormatError("chunk records run past the chunk")
    if compression not in DECOMPRESSORS:
        raise McapFormatError(f"unsupported chunk compression {compression!r}")
    raw = DECOMPRESSORS[compression](data, size)
    if len(raw) != size:
        raise McapFormatError(f"chunk decompresses to {len(raw)} bytes, its header says {size}")
    return crc, 24, raw


def _inner_records(raw: bytes) -> Iterator[tuple[int, bytes]]:
    pos = 0
    while pos + 9 <= len(raw):
        opcode, length = struct.unpack_from("<BQ", raw, pos)
        body = raw[pos + 9 : pos + 9 + length]
        if len(body) < length:
            raise McapFormatError("a record runs past the end of its chunk")
        yield opcode, body
        pos += 9 + length


def write_chunk_crcs(path: str | os.PathLike) -> int:
    """Fill in the CRC32 of every chunk of the .mcap at `path` whose CRC is 0; returns chunks written."""
    path = Path(path)
    written = 0
    with _open_checked(path) as f:
        updates = []
        for offset, opcode, body in _read_records(f, None):
            if opcode == OP_DATA_END:
                break
            if opcode == OP_CHUNK:
                crc, _, raw = chunk_records(body)
                if crc == 0:
                    updates.append((offset + CRC_OFFSET, zlib.crc32(raw)))
    with open(path, "r+b") as f:
        for position, crc in updates:
            f.seek(position)
            f.write(struct.pack("<I", crc))
            written += 1
        f.flush()
        os.fsync(f.fileno())
    return written


def check_chunk_crcs(path: str | os.PathLike) -> ChunkCheck:
    """Verify every chunk of the .mcap at `path` (see the module docstring); McapFormatError if not MCAP."""
    path = Path(path)
    chunks = unchecked = 0
    problems: list[str] = []
    ended = False
    with _open_checked(path) as f:
        for offset, opcode, body in _read_records(f, None):
            if opcode in (OP_DATA_END, OP_FOOTER):
                ended = True
                break
            if opcode != OP_CHUNK:
                continue
            chunks += 1
            try:
                crc, _, raw = chunk_records(body)
            except (McapFormatError, struct.error, UnicodeDecodeError, ValueError) as e:
                problems.append(f"chunk {chunks} at byte {offset} of {path.name} is corrupt ({e})")
                continue
            if crc == 0:
                unchecked += 1
            elif zlib.crc32(raw) != crc:
                problems.append(f"chunk {chunks} at byte {offset} of {path.name} fails its CRC check "
                                f"(stored {crc:08x}, computed {zlib.crc32(raw):08x}): the file was corrupted")
    return ChunkCheck(chunks, unchecked, tuple(problems), truncated=not ended)


def scan_records(path: str | os.PathLike, problems: list[str]) -> Iterator[Record]:
    """Schema / Channel / Message records of the data section in file order, chunks expanded.

    Stops at the first truncated record (a killed writer). Chunks that are corrupt or fail
    their CRC are skipped with a line in `problems`.
    """
    path = Path(path)
    with _open_checked(path) as f:
        index = 0
        for offset, opcode, body in _read_records(f, None):
            if opcode in (OP_DATA_END, OP_FOOTER):
                return
            if opcode in (OP_SCHEMA, OP_CHANNEL, OP_MESSAGE):
                yield Record(opcode, body, offset)
            elif opcode == OP_CHUNK:
                index += 1
                try:
                    crc, _, raw = chunk_records(body)
                    if crc and zlib.crc32(raw) != crc:
                        raise McapFormatError("CRC mismatch")
                    inner = list(_inner_records(raw))
                except (McapFormatError, struct.error, UnicodeDecodeError, ValueError) as e:
                    problems.append(f"skipped chunk {index} at byte {offset}: {e}")
                    continue
                for op, inner_body in inner:
                    if op in (OP_SCHEMA, OP_CHANNEL, OP_MESSAGE):
                        yield Record(op, inner_body, offset, in_chunk=True)
        problems.append(f"{path.name} ends without a footer (the writer was stopped before closing the bag)")
