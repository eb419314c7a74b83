"""mp4 video streams through PyAV: encode RGB frames as LeRobot does, decode an episode's frames.

LeRobot (video_utils.py `encode_video_frames`) encodes with libsvtav1, pix_fmt yuv420p, g=2
(a key frame every 2 frames, so decoding from any frame is cheap) and crf=30; one mp4 holds
several episodes back to back, episode k's frames starting at its `from_timestamp`. Frames here
are stamped pts = frame number with time base 1/fps, so frame i of a file is at i/fps seconds.

The encoding is lossy (yuv420p halves the colour resolution; crf 30): decoded frames differ
from the originals by a few grey levels on average (see the round-trip test for the bound).
yuv444p keeps the colour at full resolution (small coloured objects stay sharp); LeRobot's
encode_video_frames accepts it for h264 only (for libsvtav1 and hevc it falls back to yuv420p
with a warning; SVT-AV1 encodes 4:2:0 only). Here libsvtav1 + yuv444p is refused and hevc +
yuv444p written as asked (libx265 encodes it; LeRobot's decoders, torchcodec and PyAV through
FFmpeg, convert any of these formats to RGB). The reader decodes whatever format the file has.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from moe_vla_ros.data.lerobot.schema import LeRobotFormatError

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1: errors only (its info banner goes to stderr otherwise)

CODECS = ("libsvtav1", "h264", "hevc")
PIX_FMTS = ("yuv420p", "yuv444p")
# pixel formats each codec's encoder (FFmpeg: libsvtav1, libx264, libx265) can write
CODEC_PIX_FMTS = {"libsvtav1": ("yuv420p",), "h264": PIX_FMTS, "hevc": PIX_FMTS}


def check_encoding(codec: str, pix_fmt: str, error: type[Exception] = ValueError) -> None:
    """`error` naming the bad value unless `codec` is one of CODECS and can write `pix_fmt`."""
    if codec not in CODECS:
        raise error(f"video codec must be one of {list(CODECS)}, got {codec!r}")
    if pix_fmt not in PIX_FMTS:
        raise error(f"pix_fmt must be one of {list(PIX_FMTS)}, got {pix_fmt!r}")
    if pix_fmt not in CODEC_PIX_FMTS[codec]:
        able = [c for c in CODECS if pix_fmt in CODEC_PIX_FMTS[c]]
        raise error(f"video codec {codec!r} cannot write pix_fmt {pix_fmt!r} (it writes {list(CODEC_PIX_FMTS[codec])}); "
                    f"use {' or '.join(repr(c) for c in able)} for {pix_fmt!r}")


_REALTIME = tuple(getattr(os, name) for name in ("SCHED_FIFO", "SCHED_RR") if hasattr(os, name))


def _scheduling() -> tuple[int, int] | None:
    """The calling thread's (policy, priority); None where the OS has no sched_getscheduler."""
    if not hasattr(os, "sched_getscheduler"):
        return None
    return os.sched_getscheduler(0), os.sched_getparam(0).sched_priority


def undo_realtime(saved: tuple[int, int] | None) -> int:
    """SVT-AV1 (svt_av1_enc_init) switches the thread that opens the encoder to SCHED_FIFO priority
    99 when it may (as root), and its worker threads inherit it: an export run as root, and every
    thread or child process started after it, would then starve the rest of the machine. When the
    caller was not real-time before (`saved`), every real-time thread of this process goes back to
    `saved`. Returns the number of threads changed."""
    if saved is None or saved[0] in _REALTIME:
        return 0
    changed = 0
    for tid in os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else ["0"]:
        try:
            if os.sched_getscheduler(int(tid)) in _REALTIME:
                os.sched_setscheduler(int(tid), saved[0], os.sched_param(saved[1]))
                changed += 1
        except (OSError, ValueError):  # the thread ended meanwhile
            pass
    return changed


def fps_fraction(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001) if float(fps) != int(fps) else Fraction(int(fps), 1)


class VideoEncoder:
    """One mp4 file of RGB frames [H, W, 3] uint8, appended episode by episode."""

    def __init__(self, path: Path, fps: float, height: int, width: int, codec: str = "libsvtav1",
                 crf: int | None = 30, gop: int | None = 2, pix_fmt: str = "yuv420p") -> None:
        import av

        check_encoding(codec, pix_fmt)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.frames = 0
        self.bytes = 0
        self._rate = fps_fraction(fps)
        self._container = av.open(str(path), "w")
        options = {}
        if gop is not None:
            options["g"] = str(gop)
        if crf is not None:
            options["crf"] = str(crf)
        self._stream = self._container.add_stream(codec, rate=self._rate, options=options)
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, pix_fmt
        self._scheduling = _scheduling()  # restored once the encoder (and its threads) exist
        self._opened = False

    def add(self, frames: np.ndarray) -> None:
        """Append frames [T, H, W, 3] uint8 RGB."""
        import av

        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = self.frames
            self.frames += 1
            for packet in self._stream.encode(frame):
                self.bytes += packet.size
                self._container.mux(packet)
            if not self._opened:  # the first encode opened the encoder
                self._opened = True
                undo_realtime(self._scheduling)

    def close(self) -> None:
        for packet in self._stream.encode():
            self.bytes += packet.size
            self._container.mux(packet)
        self._container.close()
        undo_realtime(self._scheduling)


def video_info(path: Path) -> dict[str, Any]:
    """A video feature's `info` as LeRobot's get_video_info writes it."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pix_fmt = stream.codec_context.pix_fmt or "yuv420p"
        info = {
            "video.height": stream.codec_context.height,
            "video.width": stream.codec_context.width,
            "video.codec": stream.codec_context.codec.canonical_name,
            "video.pix_fmt": pix_fmt,
            "video.is_depth_map": False,
            "video.fps": int(stream.base_rate) if stream.base_rate and stream.base_rate.denominator == 1 else float(stream.base_rate or 0),
            "video.channels": 4 if ("rgba" in pix_fmt or "yuva" in pix_fmt) else (1 if "gray" in pix_fmt else 3),
            "has_audio": bool(container.streams.audio),
        }
    return info


class VideoReader:
    """Decodes frames of one mp4 by timestamp; keeps the file open between episodes and continues
    without seeking when the next request starts where the last one ended (sequential reading)."""

    def __init__(self, path: Path) -> None:
        import av

        if not path.is_file():
            raise LeRobotFormatError(f"video file {path} is missing")
        try:
            self._container = av.open(str(path))
        except av.FFmpegError as e:
            raise LeRobotFormatError(f"cannot open video {path}: {e}") from None
        self.path = path
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self._decoder = None
        self._pending = None  # a decoded frame not yet consumed
        self._last_time = None

    def read(self, from_s: float, count: int, fps: float) -> np.ndarray:
        """`count` frames [count, H, W, 3] uint8 RGB, frame k the one nearest from_s + k/fps
        (within half a period); LeRobotFormatError when the file has no such frame."""
        import av

        half = 0.5 / fps
        if self._decoder is None or self._last_time is None or not self._last_time < from_s < self._last_time + 2.0:
            offset = int(max(0.0, from_s - half) / float(self._stream.time_base))
            self._container.seek(offset, stream=self._stream, backward=True, any_frame=False)
            self._decoder = self._container.decode(self._stream)
            self._pending = None
        out: list[np.ndarray | None] = [None] * count
        filled = 0
        try:
            while filled < count:
                frame = self._pending if self._pending is not None else next(self._decoder)
                self._pending = None
                t = float(frame.pts * frame.time_base) if frame.pts is not None else float(frame.time)
                k = int(round((t - from_s) * fps))
                if k < 0 or abs(t - (from_s + k / fps)) > half:
                    continue
                if k >= count:
                    self._pending = frame
                    break
                if out[k] is None:
                    filled += 1
                out[k] = frame.to_ndarray(format="rgb24")
                self._last_time = t
        except StopIteration:
            self._decoder = None
        except av.FFmpegError as e:
            raise LeRobotFormatError(f"cannot decode {self.path}: {e}") from None
        missing = [k for k, f in enumerate(out) if f is None]
        if missing:
            raise LeRobotFormatError(
                f"{self.path} has no frame at {from_s + missing[0] / fps:.4f} s "
                f"({len(missing)} of {count} frames from {from_s:.4f} s missing)"
            )
        return np.stack(out)

    def close(self) -> None:
        self._container.close()
