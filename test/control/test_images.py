"""Tests of moe_vla_ros/control/images.py against references built with cv2.cvtColor."""

import array

import cv2
import numpy as np
import pytest

from moe_vla_ros.control.images import (
    OUTPUT_ENCODINGS,
    ImageConversionError,
    compressed_to_rgb,
    raw_to_rgb,
    resize_image,
    rgb_to_compressed,
    rgb_to_raw,
)

H, W = 37, 53  # odd sizes catch row/stride mistakes


@pytest.fixture
def rgb():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)


def pack(pixels: np.ndarray, pad: int) -> tuple[bytes, int]:
    """Rows of `pixels` (uint8 [h, w(, c)]) followed by `pad` junk bytes each -> (data, step)."""
    rows = pixels.reshape(pixels.shape[0], -1)  # [h, w*c]
    junk = np.full((rows.shape[0], pad), 0xAB, dtype=np.uint8)
    padded = np.concatenate([rows, junk], axis=1)
    return padded.tobytes(), padded.shape[1]


# encoding -> (how to build the source from RGB, cv2 code back to RGB)
COLOUR_CASES = {
    "rgb8": (None, None),
    "bgr8": (cv2.COLOR_RGB2BGR, cv2.COLOR_BGR2RGB),
    "rgba8": (cv2.COLOR_RGB2RGBA, cv2.COLOR_RGBA2RGB),
    "bgra8": (cv2.COLOR_RGB2BGRA, cv2.COLOR_BGRA2RGB),
    "mono8": (cv2.COLOR_RGB2GRAY, cv2.COLOR_GRAY2RGB),
    "8UC1": (cv2.COLOR_RGB2GRAY, cv2.COLOR_GRAY2RGB),
    "8UC3": (cv2.COLOR_RGB2BGR, cv2.COLOR_BGR2RGB),
    "8UC4": (cv2.COLOR_RGB2BGRA, cv2.COLOR_BGRA2RGB),
}


@pytest.mark.parametrize("pad", [0, 3, 64])
@pytest.mark.parametrize("encoding", list(COLOUR_CASES))
def test_8bit_encodings_match_cvtcolor(rgb, encoding, pad):
    to_source, to_rgb = COLOUR_CASES[encoding]
    source = rgb if to_source is None else cv2.cvtColor(rgb, to_source)
    if source.ndim == 3 and source.shape[2] == 4:
        source[..., 3] = 17  # alpha must be dropped, whatever it is
    expected = source.copy() if to_rgb is None else cv2.cvtColor(source, to_rgb)
    data, step = pack(source, pad)
    out = raw_to_rgb(data, height=H, width=W, encoding=encoding, step=step)
    assert out.dtype == np.uint8 and out.shape == (H, W, 3)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("encoding", ["bgr8", "rgba8", "mono8"])
def test_resize_to_contract_size_matches_reference(rgb, encoding):
    to_source, to_rgb = COLOUR_CASES[encoding]
    source = cv2.cvtColor(rgb, to_source)
    data, step = pack(source, 5)
    out = raw_to_rgb(data, height=H, width=W, encoding=encoding, step=step, size=(16, 24))
    expected = cv2.resize(cv2.cvtColor(source, to_rgb), (24, 16), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(out, expected)


def test_enlarging_uses_linear_interpolation(rgb):
    out = resize_image(rgb, (2 * H, 2 * W))
    np.testing.assert_array_equal(out, cv2.resize(rgb, (2 * W, 2 * H), interpolation=cv2.INTER_LINEAR))
    assert resize_image(rgb, (H, W)) is rgb


def mono16_reference(values: np.ndarray) -> np.ndarray:
    """cv_bridge's mono16 -> rgb8: GRAY2RGB and scale by 255/65535 with rounding."""
    scaled = np.round(values.astype(np.float64) * 255.0 / 65535.0).astype(np.uint8)
    return cv2.cvtColor(scaled, cv2.COLOR_GRAY2RGB)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
@pytest.mark.parametrize("bigendian", [False, True])
def test_mono16_both_byte_orders_with_padding(encoding, bigendian):
    rng = np.random.default_rng(1)
    values = rng.integers(0, 65536, size=(H, W), dtype=np.uint16)
    values[0, :4] = (0, 65535, 257 * 100 + 128, 257 * 100 + 129)  # ends and rounding edges
    ordered = values.astype(">u2" if bigendian else "<u2")
    data, step = pack(ordered.view(np.uint8).reshape(H, W * 2), 6)
    out = raw_to_rgb(data, height=H, width=W, encoding=encoding, step=step, is_bigendian=bigendian)
    np.testing.assert_array_equal(out, mono16_reference(values))


def test_mono16_wrong_byte_order_flag_gives_different_image():
    values = np.arange(H * W, dtype=np.uint16).reshape(H, W) * 7
    data = values.astype(">u2").tobytes()
    right = raw_to_rgb(data, height=H, width=W, encoding="mono16", step=2 * W, is_bigendian=True)
    wrong = raw_to_rgb(data, height=H, width=W, encoding="mono16", step=2 * W, is_bigendian=False)
    np.testing.assert_array_equal(right, mono16_reference(values))
    assert not np.array_equal(right, wrong)


@pytest.mark.parametrize(
    "container", [bytes, bytearray, lambda b: array.array("B", b), list, lambda b: np.frombuffer(b, np.uint8)]
)
def test_accepts_message_buffer_types(rgb, container):
    data = container(rgb.tobytes())
    out = raw_to_rgb(data, height=H, width=W, encoding="rgb8", step=3 * W)
    np.testing.assert_array_equal(out, rgb)


def test_result_does_not_alias_the_message_buffer(rgb):
    buffer = bytearray(rgb.tobytes())
    out = raw_to_rgb(buffer, height=H, width=W, encoding="rgb8", step=3 * W)
    buffer[:] = bytes(len(buffer))
    np.testing.assert_array_equal(out, rgb)
    assert out.flags.c_contiguous and out.flags.writeable


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(encoding="yuv422"), "unsupported image encoding 'yuv422'"),
        (dict(encoding="rgb8", step=3 * W - 1), "shorter than one row"),
        (dict(encoding="rgb8", step=3 * W + 1), "expected step*height"),
        (dict(encoding="rgb8", height=0), "zero size"),
        (dict(encoding="rgb8", width=0), "zero size"),
        (dict(encoding="rgb8", size=(0, 5)), "size must be"),
    ],
)
def test_raw_errors_are_clear(rgb, kwargs, message):
    args = {"height": H, "width": W, "step": 3 * W, **kwargs}
    with pytest.raises(ImageConversionError, match=message.replace("*", r"\*")):
        raw_to_rgb(rgb.tobytes(), **args)


def test_data_length_error_names_the_numbers(rgb):
    with pytest.raises(ImageConversionError, match=rf"{H * 3 * W - 1} bytes, expected step\*height"):
        raw_to_rgb(rgb.tobytes()[:-1], height=H, width=W, encoding="rgb8", step=3 * W)


@pytest.mark.parametrize("fmt", ["png", "rgb8; png compressed bgr8", ""])
def test_png_round_trip_is_exact(rgb, fmt):
    data = rgb_to_compressed(rgb, "png")
    np.testing.assert_array_equal(compressed_to_rgb(data, format=fmt), rgb)


@pytest.mark.parametrize("fmt", ["jpeg", "jpg", "bgr8; jpeg compressed bgr8"])
def test_jpeg_matches_cv2_decode_and_is_close_to_source(rgb, fmt):
    smooth = cv2.GaussianBlur(rgb, (7, 7), 3)  # jpeg is lossy; smooth content compresses well
    data = rgb_to_compressed(smooth, "jpeg", jpeg_quality=95)
    out = compressed_to_rgb(data, format=fmt, size=(20, 30))
    reference = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(out, cv2.resize(reference, (30, 20), interpolation=cv2.INTER_AREA))
    full = compressed_to_rgb(data, format=fmt)
    assert np.abs(full.astype(int) - smooth.astype(int)).mean() < 3.0


@pytest.mark.parametrize(
    "data, fmt, message",
    [
        (b"", "jpeg", "has no data"),
        (b"not an image at all", "jpeg", "could not decode 19 bytes"),
        (b"\x89PNG", "16UC1; compressedDepth png", "compressed depth"),
        (b"\x00", "tiff", "unsupported compressed image format 'tiff'"),
    ],
)
def test_compressed_errors_are_clear(data, fmt, message):
    with pytest.raises(ImageConversionError, match=message):
        compressed_to_rgb(data, format=fmt)


@pytest.mark.parametrize("encoding", list(OUTPUT_ENCODINGS))
def test_rgb_to_raw_round_trips(rgb, encoding):
    raw = rgb_to_raw(rgb, encoding)
    assert (raw.height, raw.width, raw.encoding, raw.is_bigendian) == (H, W, encoding, False)
    assert len(raw.data) == raw.step * raw.height
    back = raw_to_rgb(raw.data, height=raw.height, width=raw.width, encoding=raw.encoding, step=raw.step)
    expected = rgb
    if encoding == "mono8":
        expected = cv2.cvtColor(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    np.testing.assert_array_equal(back, expected)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda img: rgb_to_raw(img, "yuv422"), "cannot publish encoding 'yuv422'"),
        (lambda img: rgb_to_raw(img[..., :2].copy()), r"expected an RGB uint8 array \[H, W, 3\]"),
        (lambda img: rgb_to_raw(img.astype(np.float32)), "float32"),
        (lambda img: rgb_to_compressed(img, "bmp"), "unsupported compressed image format 'bmp'"),
        (lambda img: rgb_to_compressed(img, "jpeg", jpeg_quality=0), "jpeg_quality"),
    ],
)
def test_output_errors_are_clear(rgb, call, message):
    with pytest.raises(ImageConversionError, match=message):
        call(rgb)
