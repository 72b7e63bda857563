"""Each distinct image once: identical bytes, and near-duplicates (re-encoded or resized copies) by perceptual hash."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from skinlesion.core.modes import Split
from skinlesion.data.fetch import UNSPLIT


@dataclass(frozen=True)
class Record:
    """One usable image."""

    path: str
    label: str
    sha256: str
    given_split: str
    group: str
    phash: str = ""
    dhash: str = ""
    chash: str = ""


# Two images are one when their 64-bit perceptual (DCT) hashes differ in at most PHASH_BITS bits, their
# difference hashes in at most DHASH_BITS, and the perceptual hashes of their centres (the central
# square, half the shorter side: core.images.centre_square) in at most CHASH_BITS. Measured on the
# shared real samples (tests/test_split.py checks it): JPEG re-encodes (quality 70) and half-size copies
# of all 1,123 HAM10000 and 302 ISIC 2018 images are within 4, 5 and 4 bits of their original, and no two
# distinct lesions are within 4 pHash bits (closest: 6). The whole-image hashes are fooled by images
# alike in layout only: distinct synthetic lesions in a dark circular frame fall within 4 pHash and 5
# dHash bits (13 pairs over generator seeds 0-5; seed 1 merged a melanoma with a nevus, and a nevus with
# two vascular lesions), but their centres are 12-28 bits apart, as are (12 or more) those of the 81
# pairs of real lesions within 10 pHash bits. CHASH_BITS sits between the 4 of copies and those 12.
PHASH_BITS = 4
DHASH_BITS = 5
CHASH_BITS = 8
# When the same bytes sit in several given splits, the copy in the first of these is kept.
_KEEP_PRIORITY = {Split.TEST: 0, Split.VAL: 1, Split.TRAIN: 2, UNSPLIT: 3}


def near_duplicate_clusters(phashes: list[str], dhashes: list[str], chashes: list[str]) -> list[int]:
    """A cluster id per image: images within all three thresholds share one (transitively).

    Identical files have identical hashes, so a cluster holds exact copies too.

    Args:
        phashes: 64-bit perceptual hashes as 16 hex digits.
        dhashes: 64-bit difference hashes as 16 hex digits, in the same order.
        chashes: 64-bit perceptual hashes of the images' centres, in the same order.

    Returns:
        One id per input (the index of a representative member).
    """
    hashes = [np.array([int(h, 16) for h in column], dtype=np.uint64) for column in (phashes, dhashes, chashes)]
    limits = (PHASH_BITS, DHASH_BITS, CHASH_BITS)
    parent = list(range(len(phashes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    block = 256  # rows compared at once: memory stays ~block x n bytes however many images there are
    for start in range(0, len(parent), block):
        rows = slice(start, start + block)
        near = np.ones((len(parent[rows]), len(parent)), dtype=bool)
        for h, limit in zip(hashes, limits, strict=True):
            near &= np.bitwise_count(h[rows, None] ^ h[None, :]) <= limit
        for i, j in zip(*np.nonzero(near), strict=True):
            a, b = root(int(i) + start), root(int(j))
            if a != b:
                parent[max(a, b)] = min(a, b)
    return [root(i) for i in range(len(parent))]


def deduplicate(records: list[Record], drop_label_conflicts: bool = True) -> tuple[list[Record], list[dict]]:
    """Keep each distinct image once: identical bytes, and near-duplicates (re-encoded or resized copies).

    Copies of one image with the same label: one is kept (a given test/val copy first, then by path),
    so no image is ever in two splits. Copies under different labels: a label conflict; every copy is
    excluded (the default) or only the first one by path is kept.

    Args:
        records: Valid images (with their perceptual hashes).
        drop_label_conflicts: Exclude every copy of conflicting content.

    Returns:
        The kept records and one skip entry (path, reason, detail) per dropped copy.

    """
    clusters: dict[int, list[Record]] = defaultdict(list)
    clusters_of = near_duplicate_clusters(
        [r.phash for r in records], [r.dhash for r in records], [r.chash for r in records]
    )
    for r, cluster in zip(records, clusters_of, strict=True):
        clusters[cluster].append(r)
    kept, skipped = [], []
    for copies in clusters.values():
        copies = sorted(copies, key=lambda r: (_KEEP_PRIORITY[r.given_split], r.path))
        labels = sorted({r.label for r in copies})
        if len(labels) > 1:
            others = "; ".join(f"{r.path} [{r.label}]" for r in copies)
            if drop_label_conflicts:
                skipped += [
                    skip_entry(r.path, "label_conflict", f"same image under labels {labels}: {others}") for r in copies
                ]
                continue
            first = min(copies, key=lambda r: r.path)
            kept.append(first)
            skipped += [
                skip_entry(r.path, "label_conflict", f"kept {first.path} [{first.label}]; {others}")
                for r in copies
                if r is not first
            ]
            continue
        kept.append(copies[0])
        skipped += [_copy_skip(r, copies[0]) for r in copies[1:]]
    return sorted(kept, key=lambda r: r.path), skipped


def _copy_skip(copy: Record, original: Record) -> dict:
    if copy.sha256 == original.sha256:
        return skip_entry(copy.path, "duplicate", f"same bytes as {original.path}")
    return skip_entry(
        copy.path,
        "near_duplicate",
        f"perceptual hashes within {PHASH_BITS}/{DHASH_BITS}/{CHASH_BITS} bits of {original.path} "
        "(a re-encoded or resized copy)",
    )


def skip_entry(path: str, reason: str, detail: str) -> dict:
    """One row of ``skipped.csv``: a file left out, why (one of the split's skip reasons), and the details."""
    return {"path": path, "reason": reason, "detail": detail}


def copies_in(reference: list[Record], records: list[Record]) -> list[Record | None]:
    """For each of ``records``, an image of ``reference`` it is a copy of (same bytes or near-duplicate), or None.

    The same rule as :func:`deduplicate`: identical bytes, or all three perceptual hashes within their
    thresholds. Used to keep an external test set free of the images the model was trained, tuned or tested on.

    Args:
        reference: Images already used (the training, validation and test splits).
        records: Images to check.

    Returns:
        One entry per record: a matching reference image, or None.
    """
    by_bytes = {r.sha256: r for r in reference}
    columns = ("phash", "dhash", "chash")
    limits = (PHASH_BITS, DHASH_BITS, CHASH_BITS)
    ref = [np.array([int(getattr(r, c), 16) for r in reference], dtype=np.uint64) for c in columns]
    out: list[Record | None] = []
    for r in records:
        if r.sha256 in by_bytes:
            out.append(by_bytes[r.sha256])
            continue
        near = np.ones(len(reference), dtype=bool)
        for hashes, column, limit in zip(ref, columns, limits, strict=True):
            near &= np.bitwise_count(hashes ^ np.uint64(int(getattr(r, column), 16))) <= limit
        hits = np.flatnonzero(near)
        out.append(reference[int(hits[0])] if len(hits) else None)
    return out
