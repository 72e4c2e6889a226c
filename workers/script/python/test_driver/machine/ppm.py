# SPDX-License-Identifier: MIT
"""PPM (P6, as QEMU's screendump writes it) to PNG, in pure Python, so
screenshots need no netpbm on the host (the reference shells out to
pnmtopng)."""

import struct
import zlib


class PPMError(ValueError):
    pass


def _tokens(data: bytes, count: int) -> tuple[list[int], int]:
    """Read @count whitespace-separated header integers after the magic,
    skipping comments; return them and the offset of the pixel data."""
    values: list[int] = []
    i = 2
    while len(values) < count:
        while i < len(data) and data[i : i + 1].isspace():
            i += 1
        if i < len(data) and data[i : i + 1] == b"#":
            while i < len(data) and data[i : i + 1] not in (b"\n", b"\r"):
                i += 1
            continue
        j = i
        while j < len(data) and data[j : j + 1].isdigit():
            j += 1
        if j == i:
            raise PPMError("malformed PPM header")
        values.append(int(data[i:j]))
        i = j
    # exactly one whitespace byte separates the header from the raster
    return values, i + 1


def ppm_to_png(data: bytes) -> bytes:
    if data[:2] != b"P6":
        raise PPMError("not a binary PPM (P6) image")
    (width, height, maxval), off = _tokens(data, 3)
    if maxval != 255 or width <= 0 or height <= 0:
        raise PPMError(f"unsupported PPM: {width}x{height}, maxval {maxval}")
    stride = width * 3
    raster = data[off : off + stride * height]
    if len(raster) != stride * height:
        raise PPMError("truncated PPM image")
    rows = b"".join(b"\x00" + raster[y * stride : (y + 1) * stride] for y in range(height))

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b"")
