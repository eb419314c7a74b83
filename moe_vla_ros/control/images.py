"""Camera buffers to the model's RGB uint8 [H, W, 3] image, and back (no cv_bridge needed).

Raw images follow sensor_msgs/Image: ``height`` rows of ``step`` bytes each (rows may carry
padding after ``width * channels * bytes_per_channel`` bytes), ``is_bigendian`` for 16-bit data.
Supported encodings and what they become (the semantics of cv_bridge's conversion to "rgb8"):

    rgb8  bgr8  rgba8  bgra8      colour, alpha dropped
    mono8                         grey replicated into R, G and B
    mono16                        scaled by 255/65535 and rounded (cv_bridge's 16 -> 8 bit rule)
    8UC1  8UC3  8UC4  16UC1       generic OpenCV types, read as mono8, bgr8, bgra8 and mono16

cv_bridge's ``cvtColor`` refuses generic types as a colour source; its ``cvtColorForDisplay``
reads them in OpenCV's own channel order as listed above, and that is the rule followed here.

Compressed images (sensor_msgs/CompressedImage, jpeg or png) are decoded with cv2.imdecode into
OpenCV's BGR and converted to RGB, as cv_bridge's ``compressed_imgmsg_to_cv2(msg, "rgb8")``.

Everything is vectorised: a strided view over the message buffer (no copy, padding skipped by
the row stride), one cv2.resize on the view, one cv2.cvtColor on the small result. Resizing
before the colour conversion gives the same pixels (both act per channel) for less work.

Pure numpy/OpenCV: no rclpy (ros/conversions.py wraps these for messages).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from moe_vla_ros.errors import BadInputError


class ImageConversionError(BadInputError):
    """An image buffer cannot be converted: unknown encoding, inconsistent size, bad data."""


@dataclass(frozen=True)
class PixelLayout:
    """How one raw encoding stores a pixel and how it becomes RGB.

    Attributes:
        channels: values per pixel.
        bytes_per_channel: 1 (uint8) or 2 (uint16).
        to_rgb: cv2.cvtColor code to RGB, or None when the data already is RGB.
    """

    channels: int
    bytes_per_channel: int
    to_rgb: int | None

    @property
    def bytes_per_pixel(self) -> int:
        return self.channels * self.bytes_per_channel


PIXEL_LAYOUTS: dict[str, PixelLayout] = {
    "rgb8": PixelLayout(3, 1, None),
    "bgr8": PixelLayout(3, 1, cv2.COLOR_BGR2RGB),
    "rgba8": PixelLayout(4, 1, cv2.COLOR_RGBA2RGB),
    "bgra8": PixelLayout(4, 1, cv2.COLOR_BGRA2RGB),
    "mono8": PixelLayout(1, 1, cv2.COLOR_GRAY2RGB),
    "mono16": PixelLayout(1, 2, cv2.COLOR_GRAY2RGB),
    "8UC1": PixelLayout(1, 1, cv2.COLOR_GRAY2RGB),
    "8UC3": PixelLayout(3, 1, cv2.COLOR_BGR2RGB),
    "8UC4": PixelLayout(4, 1, cv2.COLOR_BGRA2RGB),
    "16UC1": PixelLayout(1, 2, cv2.COLOR_GRAY2RGB),
}
"""Raw encodings accepted by :func:`raw_to_rgb` (sensor_msgs/image_encodings names)."""

SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(PIXEL_LAYOUTS)

#: Encodings :func:`rgb_to_raw` can produce, with the cv2 code from RGB (None: no conversion).
OUTPUT_ENCODINGS: dict[str, int | None] = {
    "rgb8": None,
    "bgr8": cv2.COLOR_RGB2BGR,
    "rgba8": cv2.COLOR_RGB2RGBA,
    "bgra8": cv2.COLOR_RGB2BGRA,
    "mono8": cv2.COLOR_RGB2GRAY,
}

#: CompressedImage.format values (or their last word) that can be decoded.
COMPRESSED_FORMATS: tuple[str, ...] = ("jpeg", "jpg", "png")

_MONO16_TO_8 = 255.0 / 65535.0


@dataclass(frozen=True)
class RawImage:
    """A raw image buffer with the fields of sensor_msgs/Image (minus the header).

    Attributes:
        height: number of rows.
        width: number of pixels per row.
        encoding: one of :data:`OUTPUT_ENCODINGS` (or :data:`SUPPORTED_ENCODINGS`).
        step: bytes per row, including padding.
        data: ``height * step`` bytes.
        is_bigendian: byte order of 16-bit data; always False for the images produced here.
    """

    height: int
    width: int
    encoding: str
    step: int
    data: bytes
    is_bigendian: bool = False


def _byte_view(data: Any) -> np.ndarray:
    """Flat uint8 view of `data` (bytes, bytearray, memoryview, array.array, ndarray, list)."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise ImageConversionError(f"image data array must be uint8, got {data.dtype}")
        return data.reshape(-1)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def _check_size(size: tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    if len(size) != 2 or any(int(s) != s or int(s) < 1 for s in size):
        raise ImageConversionError(f"size must be (height, width) with positive integers, got {size!r}")
    return int(size[0]), int(size[1])


def resize_image(image: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Resize `image` [h, w(, c)] to `size` = (height, width); INTER_AREA when shrinking.

    Enlarging (either side grows) uses INTER_LINEAR. Returns `image` itself when the size
    already matches (callers copy where they need ownership).
    """
    size = _check_size(size)
    if size is None or image.shape[:2] == size:
        return image
    out_h, out_w = size
    shrinking = out_h <= image.shape[0] and out_w <= image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (out_w, out_h), interpolation=interpolation)  # cv2 takes (w, h)


def raw_to_rgb(
    data: Any,
    *,
    height: int,
    width: int,
    encoding: str,
    step: int,
    is_bigendian: bool = False,
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Convert a raw image buffer to a new RGB uint8 array [H, W, 3].

    Args:
        data: the ``height * step`` bytes of the image (any buffer, e.g. Image.data).
        height, width, encoding, step, is_bigendian: the sensor_msgs/Image fields.
        size: (height, width) to resize to (the contract's image size); None keeps the size.

    Raises:
        ImageConversionError: unknown encoding, zero size, ``step`` shorter than a row of
            pixels, or a data length other than ``step * height``.
    """
    layout = PIXEL_LAYOUTS.get(encoding)
    if layout is None:
        raise ImageConversionError(
            f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
        )
    size = _check_size(size)
    height, width, step = int(height), int(width), int(step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"image has zero size: {width}x{height} ({encoding})")
    row_bytes = width * layout.bytes_per_pixel
    if step < row_bytes:
        raise ImageConversionError(
            f"step {step} is shorter than one row of {width} {encoding} pixels ({row_bytes} bytes)"
        )
    buffer = _byte_view(data)
    if buffer.size != step * height:
        raise ImageConversionError(
            f"image data has {buffer.size} bytes, expected step*height = {step}*{height} = {step * height}"
        )
    if layout.bytes_per_channel == 2:
        dtype = np.dtype(">u2" if is_bigendian else "<u2")
    else:
        dtype = np.dtype(np.uint8)
    # [height, width, channels] view over the message bytes; the row stride skips the padding.
    pixels = np.ndarray(
        shape=(height, width, layout.channels),
        dtype=dtype,
        buffer=buffer,
        strides=(step, layout.bytes_per_pixel, layout.bytes_per_channel),
    )
    if layout.channels == 1:
        pixels = pixels[:, :, 0]  # [height, width]
    if layout.bytes_per_channel == 2:
        # native byte order ([height, width] uint16), then cv_bridge's 16 -> 8 bit scaling
        pixels = cv2.convertScaleAbs(pixels.astype(np.uint16), alpha=_MONO16_TO_8)
    small = resize_image(pixels, size)  # [H, W(, C)]
    if layout.to_rgb is None:
        return small.copy() if small is pixels else small  # never alias the message buffer
    return cv2.cvtColor(small, layout.to_rgb)  # [H, W, 3]


def _compressed_kind(fmt: str) -> str:
    """The codec named by a CompressedImage.format string ("jpeg", "rgb8; jpeg compressed bgr8")."""
    text = (fmt or "").strip().lower()
    if "compresseddepth" in text:
        raise ImageConversionError(
            f"compressed depth images are not supported (format {fmt!r}); subscribe to the raw topic"
        )
    if not text:
        return ""  # unspecified: let the decoder detect jpeg/png from the data
    for word in reversed(text.replace(";", " ").split()):
        if word in COMPRESSED_FORMATS:
            return "jpeg" if word == "jpg" else word
    raise ImageConversionError(
        f"unsupported compressed image format {fmt!r}; supported: {', '.join(COMPRESSED_FORMATS)}"
    )


def compressed_to_rgb(data: Any, *, format: str = "", size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode a jpeg/png buffer (CompressedImage.data) to a new RGB uint8 array [H, W, 3].

    Args:
        data: the compressed bytes.
        format: CompressedImage.format ("jpeg", "png", "bgr8; jpeg compressed bgr8", ...);
            "" lets the decoder detect the codec.
        size: (height, width) to resize to; None keeps the decoded size.

    Raises:
        ImageConversionError: empty or undecodable data, unsupported format (incl. compressedDepth).
    """
    _compressed_kind(format)
    size = _check_size(size)
    buffer = _byte_view(data)
    if buffer.size == 0:
        raise ImageConversionError(f"compressed image ({format or 'no format'}) has no data")
    bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR)  # [h, w, 3] BGR, or None
    if bgr is None or bgr.size == 0:
        shown = repr(format) if format else "unspecified"
        raise ImageConversionError(
            f"could not decode {buffer.size} bytes of compressed image data (format {shown})"
        )
    return cv2.cvtColor(resize_image(bgr, size), cv2.COLOR_BGR2RGB)  # [H, W, 3]


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageConversionError(f"expected an RGB uint8 array [H, W, 3], got {rgb.dtype} {rgb.shape}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ImageConversionError(f"image has zero size: {rgb.shape}")
    return rgb


def rgb_to_raw(rgb: np.ndarray, encoding: str = "rgb8") -> RawImage:
    """Pack an RGB uint8 array [H, W, 3] as an unpadded raw image in `encoding`.

    Raises:
        ImageConversionError: not an RGB uint8 array, or `encoding` not in :data:`OUTPUT_ENCODINGS`.
    """
    rgb = _check_rgb(rgb)
    if encoding not in OUTPUT_ENCODINGS:
        raise ImageConversionError(
            f"cannot publish encoding {encoding!r}; supported: {', '.join(OUTPUT_ENCODINGS)}"
        )
    code = OUTPUT_ENCODINGS[encoding]
    pixels = np.ascontiguousarray(rgb) if code is None else cv2.cvtColor(rgb, code)  # [H, W(, C)]
    height, width = rgb.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    return RawImage(height, width, encoding, width * channels, pixels.tobytes())


def rgb_to_compressed(rgb: np.ndarray, format: str = "jpeg", jpeg_quality: int = 90) -> bytes:
    """Encode an RGB uint8 array [H, W, 3] as jpeg or png bytes (BGR inside, as cv_bridge writes).

    Raises:
        ImageConversionError: not an RGB uint8 array, unknown format, or quality outside [1, 100].
    """
    rgb = _check_rgb(rgb)
    kind = _compressed_kind(format)
    if kind not in ("jpeg", "png"):
        raise ImageConversionError(f"compressed format must be jpeg or png, got {format!r}")
    if not 1 <= int(jpeg_quality) <= 100:
        raise ImageConversionError(f"jpeg_quality must be in [1, 100], got {jpeg_quality!r}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if kind == "jpeg" else []
    ok, encoded = cv2.imencode("." + kind, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ImageConversionError(f"OpenCV could not encode a {rgb.shape} image as {kind}")
    return encoded.tobytes()
