"""Perceptual hashes of images, and the pairs of hashes that are close.

Every image is decoded once for its hash, small: a JPEG in PIL's draft mode at the
smallest DCT scale that keeps THUMBNAIL_MIN_PX on each side (every byte is still
read, so a truncated file is an error, and the EXIF orientation is applied as
``vertkp.data.imaging.images.decode_image`` applies it); any other format through
``decode_image`` itself. The hash is ``imagehash.phash`` (64 bits) of the grey
thumbnail, packed into one uint64, and hashes are compared all against all in numpy
(XOR, then popcount), in blocks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import imagehash
import numpy as np
from PIL import Image

from ..data.imaging.images import decode_thumbnail

__all__ = ["HASH_SIZE", "HASH_BITS", "NEAR_DUPLICATE_BITS", "THUMBNAIL_MIN_PX", "Thumbnail", "read_thumbnail",
           "perceptual_hash", "popcount64", "close_hash_pairs"]

# imagehash.phash's hash_size: a HASH_SIZE x HASH_SIZE block of the DCT of a 4x larger
# grey thumbnail, each bit set where a coefficient is above their median.
HASH_SIZE = 8
HASH_BITS = HASH_SIZE * HASH_SIZE
# Two images whose perceptual hashes differ in at most this many of the HASH_BITS bits
# are near duplicates (re-encoded, resized or re-contrasted copies differ by 0-4 bits;
# distinct synthetic phantom radiographs, which look far more alike than real X-rays,
# by 6 or more). phash sets half its bits, so distances are even.
NEAR_DUPLICATE_BITS = 4
# JPEGs are decoded for the hash at the smallest DCT scale (1/1 to 1/8) that keeps at
# least this many px on each side (phash looks at 32 x 32).
THUMBNAIL_MIN_PX = 64
# Set bits of every byte value, for popcount without numpy's bitwise_count.
_BYTE_BITS = np.array([bin(b).count("1") for b in range(256)], dtype=np.int64)


@dataclass(frozen=True)
class Thumbnail:
    """A small grey picture of an image for hashing.

    Attributes:
        gray: uint8 [h, w], EXIF orientation applied (h, w <= the image's).
        size: (width, height) of the image as ``decode_image`` returns it, px.
    """

    gray: np.ndarray
    size: Tuple[int, int]


def read_thumbnail(path) -> Thumbnail:
    """Decode ``path`` small for hashing (``vertkp.data.imaging.images.decode_thumbnail``).

    Raises:
        ImageReadError: missing, empty, not an image, truncated.
    """
    gray, size = decode_thumbnail(path, THUMBNAIL_MIN_PX)
    return Thumbnail(gray, size)


def perceptual_hash(gray: np.ndarray) -> np.uint64:
    """``imagehash.phash`` (HASH_SIZE) of a uint8 grey image, its bits packed row-major,
    most significant first, into one uint64."""
    bits = imagehash.phash(Image.fromarray(np.asarray(gray, dtype=np.uint8)), hash_size=HASH_SIZE).hash
    return np.packbits(np.asarray(bits, dtype=bool).ravel()).view(">u8").astype(np.uint64)[0]


def popcount64(x: np.ndarray) -> np.ndarray:
    """Number of set bits of each uint64 (any shape), as int64."""
    x = np.ascontiguousarray(x, dtype=np.uint64)
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x).astype(np.int64)
    return _BYTE_BITS[x.view(np.uint8).reshape(x.shape + (8,))].sum(axis=-1)


def close_hash_pairs(hashes: np.ndarray, max_bits: int = NEAR_DUPLICATE_BITS,
                     max_block: int = 4_000_000) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs of hashes within ``max_bits`` of each other.

    Args:
        hashes: uint64 [N].
        max_bits: the largest Hamming distance kept.
        max_block: at most this many distances are held at once (rows of the
            upper triangle are done in blocks).

    Returns:
        (i, j, d): int64 arrays of the pairs i < j (row-major order) and their
        Hamming distances d <= max_bits.
    """
    h = np.ascontiguousarray(hashes, dtype=np.uint64).ravel()
    n = len(h)
    rows = max(1, max_block // max(n, 1))
    out_i, out_j, out_d = [], [], []
    for a in range(0, n, rows):
        b = min(n, a + rows)
        d = popcount64(h[a:b, None] ^ h[None, a:])  # [b - a, n - a]: columns from a
        r, c = np.nonzero(d <= max_bits)
        keep = c > r  # column a + c against row a + r: j > i
        out_i.append(r[keep] + a), out_j.append(c[keep] + a), out_d.append(d[r[keep], c[keep]])
    if not out_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return (np.concatenate(out_i).astype(np.int64), np.concatenate(out_j).astype(np.int64),
            np.concatenate(out_d).astype(np.int64))
