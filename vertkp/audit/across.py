"""Findings across images and files: duplicate pictures, and sources and patients that
sit in more than one split or file.

Images are given as parallel lists in the audit's stable order (dataset order, then
file order); a finding between two images is reported on the first of them, the
other named in its detail.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .findings import Finding, make_finding
from .hashing import HASH_BITS, NEAR_DUPLICATE_BITS, close_hash_pairs

__all__ = ["duplicate_findings", "overlap_findings", "group_count_text"]


def _find(parent: List[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def duplicate_findings(labels: Sequence[str], names: Sequence[str], paths: Sequence[str],
                       hashes: Sequence[Optional[int]], sizes: Sequence[Optional[Tuple[int, int]]],
                       same_pixels: Callable[[int, int], bool],
                       max_bits: int = NEAR_DUPLICATE_BITS) -> List[Finding]:
    """``duplicate_image`` and ``near_duplicate_image`` findings.

    Args:
        labels, names, paths: per image, its dataset label, COCO file_name and
            resolved path (one file listed twice has one path).
        hashes: per image, its perceptual hash (uint64) or None (unreadable).
        sizes: per image, (width, height) px or None.
        same_pixels: ``same_pixels(i, j)``: whether images i and j decode to
            identical pixels (asked only for pairs of one size within ``max_bits``).
        max_bits: the near-duplicate Hamming distance.

    Identical pictures form groups; each group's first image gets one
    ``duplicate_image`` finding per other member. Near duplicates are reported once
    per pair of groups (on the earlier group's first image), with their distance.
    """
    ok = np.array([h is not None for h in hashes], dtype=bool)
    idx = np.flatnonzero(ok)
    if len(idx) < 2:
        return []
    h = np.array([hashes[k] for k in idx], dtype=np.uint64)
    pi, pj, pd = close_hash_pairs(h, max_bits)
    parent = list(range(len(labels)))
    same_file = set()
    near = []
    for a, b, d in zip(idx[pi], idx[pj], pd):
        a, b = int(a), int(b)
        if paths[a] == paths[b]:
            same_file.add((a, b))
            identical = True
        else:
            identical = sizes[a] == sizes[b] and same_pixels(a, b)
        if identical:
            ra, rb = _find(parent, a), _find(parent, b)
            parent[max(ra, rb)] = min(ra, rb)
        else:
            near.append((a, b, int(d)))
    out = []
    groups: Dict[int, List[int]] = defaultdict(list)
    for k in idx:
        groups[_find(parent, int(k))].append(int(k))
    for first, members in groups.items():
        for m in members[1:]:
            same = " (the same file)" if paths[first] == paths[m] else ""
            out.append(make_finding("duplicate_image", labels[first], names[first], [],
                                    f"identical pixels to {labels[m]}: {names[m]}{same}"))
    best: Dict[Tuple[int, int], int] = {}
    for a, b, d in near:
        ra, rb = _find(parent, a), _find(parent, b)
        if ra == rb:
            continue
        key = (min(ra, rb), max(ra, rb))
        best[key] = min(d, best.get(key, d))
    for (a, b), d in sorted(best.items()):
        out.append(make_finding("near_duplicate_image", labels[a], names[a], [],
                                f"perceptual hash {d} of {HASH_BITS} bits from {labels[b]}: {names[b]}"))
    return out


def group_count_text(counts: Dict[str, int]) -> str:
    """ "train (2 images) and val (1 image)": labels with their image counts, in order."""
    parts = [f"{label} ({n} image{'' if n == 1 else 's'})" for label, n in counts.items()]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def overlap_findings(kind: str, noun: str, labels: Sequence[str], names: Sequence[str],
                     keys: Sequence[Optional[str]], label_order: Sequence[str]) -> Tuple[List[Finding], Dict[str, int]]:
    """Findings of one key (a source stem, a patient id) found under more than one label.

    Args:
        kind: "source_overlap" or "patient_overlap".
        noun: how the detail names the key ("source", "patient").
        labels, names: per image, its dataset label and file_name.
        keys: per image, its key or None (not known).
        label_order: the labels in dataset order (the detail's order).

    Returns:
        (findings: one per key, on its first image, detail "patient 3209 in train (2
        images) and val (1 image)"; per label, how many of its images have a key
        that is also under another label).
    """
    rank = {lb: k for k, lb in enumerate(label_order)}
    members: Dict[str, List[int]] = defaultdict(list)
    for k, key in enumerate(keys):
        if key is not None:
            members[key].append(k)
    out, shared = [], {lb: 0 for lb in label_order}
    for key, ks in members.items():
        per_label: Dict[str, int] = defaultdict(int)
        for k in ks:
            per_label[labels[k]] += 1
        if len(per_label) < 2:
            continue
        counts = {lb: per_label[lb] for lb in sorted(per_label, key=rank.__getitem__)}
        for lb, n in counts.items():
            shared[lb] += n
        out.append(make_finding(kind, labels[ks[0]], names[ks[0]], [], f"{noun} {key} in {group_count_text(counts)}"))
    return out, shared
