"""Deterministic generator of dermoscopy-like images for the embedded demo and the tests.

Each image is a pigmented lesion on a skin background, with hair and ruler artefacts, whose class
shifts the ABCD cues dermatologists read: Asymmetry, Border irregularity, Colour variegation,
Diameter, plus Dots/structures (globules, milia-like cysts, vessels, lacunae, a central scar). Cue
distributions overlap and a share of lesions is atypical (drawn with another class's cues), so no
classifier is trivially perfect. Same seed → byte-identical PNG files.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from skinlesion.core.errors import workers_ignore_interrupt
from skinlesion.core.io import atomic_path


@dataclass(frozen=True)
class LesionClass:
    """Cue distribution of one synthetic class (means; spreads are shared)."""

    name: str
    share: float  # fraction of the data set: a HAM10000-like imbalance, milder so 2-core demos learn
    diameter: float  # lesion radius as a fraction of the image side
    asymmetry: float  # amplitude of low-order (k = 1, 2) radius harmonics
    border: float  # amplitude of high-order (k = 5..11) radius harmonics
    colour: tuple[int, int, int]  # base pigment, RGB
    variegation: int  # number of extra colour zones
    structure: str  # dots/structures drawn inside the lesion


CLASSES: tuple[LesionClass, ...] = (
    LesionClass("nevus", 0.30, 0.26, 0.04, 0.015, (125, 80, 50), 0, "globules"),
    LesionClass("melanoma", 0.20, 0.34, 0.16, 0.06, (85, 55, 40), 3, "irregular_dots"),
    LesionClass("keratosis", 0.16, 0.30, 0.07, 0.03, (165, 125, 85), 1, "milia"),
    LesionClass("basal cell carcinoma", 0.13, 0.28, 0.10, 0.04, (190, 125, 125), 2, "vessels"),
    LesionClass("dermatofibroma", 0.11, 0.20, 0.04, 0.02, (155, 105, 75), 0, "scar"),
    LesionClass("vascular lesion", 0.10, 0.22, 0.05, 0.02, (150, 45, 75), 1, "lacunae"),
)

ATYPICAL_RATE = 0.15  # share of lesions drawn with another class's cues: keeps accuracy below 100 %
SKIN_TONES = ((236, 200, 175), (225, 175, 145), (200, 145, 110), (165, 115, 85), (125, 85, 62))
VARIEGATION_COLOURS = ((95, 105, 135), (35, 25, 25), (170, 60, 55), (200, 170, 150))
STRUCTURE_COLOURS = {
    "globules": (70, 40, 25),
    "irregular_dots": (25, 15, 15),
    "milia": (245, 240, 225),
    "vessels": (175, 30, 40),
    "scar": (240, 225, 215),
    "lacunae": (110, 20, 50),
}


def class_counts(n_images: int) -> list[int]:
    """Split ``n_images`` over :data:`CLASSES` by their shares (largest remainders get the rest)."""
    raw = np.array([c.share for c in CLASSES]) * n_images
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts), kind="stable")[: n_images - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


def render(cls: LesionClass, rng: np.random.Generator, image_size: int) -> Image.Image:
    """Draw one lesion of class ``cls``.

    Args:
        cls: The class whose label the image gets.
        rng: Random source; the image is a pure function of its state.
        image_size: Output side length in pixels.

    Returns:
        The RGB image.

    """
    cues = CLASSES[rng.integers(len(CLASSES))] if rng.random() < ATYPICAL_RATE else cls
    side = image_size * 2  # drawn at twice the size, then downsampled for antialiased edges
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side

    img = _skin(rng, xx, yy)

    # Lesion outline: radius as a function of angle (asymmetry = low harmonics, border = high ones).
    cx, cy = 0.5 + rng.normal(0, 0.05, 2)
    dx, dy = xx - cx, yy - cy
    theta, dist = np.arctan2(dy, dx), np.hypot(dx, dy)
    radius = np.full_like(theta, max(0.08, cues.diameter * rng.lognormal(0, 0.18)))
    base_r = float(radius[0, 0])
    for k in (1, 2):
        radius += base_r * abs(rng.normal(cues.asymmetry, 0.03)) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    for k in range(5, 12):
        amp = abs(rng.normal(cues.border, 0.012)) / np.sqrt(k - 4)
        radius += base_r * amp * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    edge = 0.01 + 0.02 * rng.random()
    mask = 1.0 / (1.0 + np.exp(-(radius - dist) / edge))

    # Pigment with colour variegation zones.
    pigment = np.array(cues.colour, np.float32) * rng.uniform(0.85, 1.15, 3).astype(np.float32)
    lesion = np.broadcast_to(pigment, img.shape).copy()
    n_zones = max(0, cues.variegation + int(rng.integers(-1, 2)))
    for _ in range(n_zones):
        colour = np.array(VARIEGATION_COLOURS[rng.integers(len(VARIEGATION_COLOURS))], np.float32)
        zx, zy = cx + rng.normal(0, base_r / 2), cy + rng.normal(0, base_r / 2)
        zs = base_r * rng.uniform(0.2, 0.5)
        w = rng.uniform(0.5, 0.9) * np.exp(-((xx - zx) ** 2 + (yy - zy) ** 2) / (2 * zs * zs))
        lesion = lesion * (1 - w[..., None]) + colour * w[..., None]
    lesion += rng.normal(0, 6, (side, side, 1)).astype(np.float32)
    img = img * (1 - mask[..., None]) + lesion * mask[..., None]

    canvas = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(canvas)
    _draw_structures(draw, cues.structure, rng, side, (cx, cy), base_r)
    _draw_artefacts(draw, rng, side)
    canvas = canvas.resize((image_size, image_size), Image.Resampling.LANCZOS)
    if rng.random() < 0.4:  # the dark circular rim of a contact dermatoscope
        arr = np.asarray(canvas, np.float32)
        g = np.mgrid[0:image_size, 0:image_size] / image_size - 0.5
        rim = np.clip((np.hypot(*g) - 0.47) / 0.05, 0, 1)
        canvas = Image.fromarray((arr * (1 - rim[..., None])).astype(np.uint8), "RGB")
    return canvas


def _skin(rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """The skin around a lesion: a tone, slow shading and fine texture, on the drawing grid ``xx``, ``yy``."""
    side = len(xx)
    tone = np.array(SKIN_TONES[rng.integers(len(SKIN_TONES))], np.float32) * rng.uniform(0.92, 1.06)
    shade = np.zeros((side, side), np.float32)
    for _ in range(3):
        cx, cy, s = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.2, 0.6)
        shade += rng.uniform(-0.08, 0.08) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))
    return tone[None, None, :] * (1 + shade[..., None]) + rng.normal(0, 4, (side, side, 1)).astype(np.float32)


def _draw_structures(
    draw: ImageDraw.ImageDraw, kind: str, rng: np.random.Generator, side: int, centre, radius: float
) -> None:
    colour = STRUCTURE_COLOURS[kind]
    cx, cy = centre[0] * side, centre[1] * side
    r = radius * side
    if kind == "scar":  # dermatofibroma: central white patch
        s = r * rng.uniform(0.25, 0.45)
        draw.ellipse((cx - s, cy - s * rng.uniform(0.6, 1.0), cx + s, cy + s), fill=colour)
        return
    if kind == "vessels":  # basal cell carcinoma: branching red vessels
        for _ in range(int(rng.integers(2, 5))):
            pts = [(cx + rng.normal(0, r / 3), cy + rng.normal(0, r / 3))]
            for _ in range(4):
                pts.append((pts[-1][0] + rng.normal(0, r / 4), pts[-1][1] + rng.normal(0, r / 4)))
            draw.line(pts, fill=colour, width=max(1, side // 96))
        return
    n = {"globules": (3, 9), "irregular_dots": (6, 20), "milia": (2, 7), "lacunae": (4, 10)}[kind]
    for _ in range(int(rng.integers(*n))):
        a, d = rng.uniform(0, 2 * np.pi), r * np.sqrt(rng.uniform(0, 0.7))
        x, y = cx + d * np.cos(a), cy + d * np.sin(a)
        s = side * (rng.uniform(0.01, 0.03) if kind != "lacunae" else rng.uniform(0.02, 0.05))
        if kind == "irregular_dots":
            s *= rng.uniform(0.4, 1.4)
        draw.ellipse((x - s, y - s, x + s, y + s), fill=colour)


def _draw_artefacts(draw: ImageDraw.ImageDraw, rng: np.random.Generator, side: int) -> None:
    for _ in range(int(rng.poisson(1.5))):  # hairs: dark quadratic curves
        p0, p1, p2 = rng.uniform(0, side, (3, 2))
        t = np.linspace(0, 1, 24)[:, None]
        pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
        shade = int(rng.integers(10, 60))
        draw.line(
            [tuple(p) for p in pts],
            fill=(shade, int(shade * 0.75), int(shade * 0.55)),  # dark brown to black
            width=int(rng.integers(1, 3)),
        )
    if rng.random() < 0.2:  # a ruler along one edge
        y0 = side * rng.uniform(0.85, 0.93)
        draw.rectangle((0, y0, side, y0 + side * 0.06), fill=(235, 235, 225))
        for i, x in enumerate(np.arange(0, side, side / 24)):
            draw.line((x, y0, x, y0 + side * (0.04 if i % 4 == 0 else 0.02)), fill=(20, 20, 20), width=1)


def _render_to_file(job: tuple[int, int, int, int, str]) -> None:
    seed, index, class_index, image_size, path = job
    rng = np.random.default_rng([seed, index])
    image = render(CLASSES[class_index], rng, image_size)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def generate(
    out_dir: str | Path, n_images: int, image_size: int, seed: int, workers: int = 0, progress: bool = True
) -> dict[str, int]:
    """Write ``n_images`` synthetic images as ``out_dir/<class>/syn_<index>.png``.

    Args:
        out_dir: Destination folder (class sub-folders are created).
        n_images: Number of images over all classes.
        image_size: Side length in pixels.
        seed: Random seed; the same seed gives byte-identical files.
        workers: Processes; 0 means one per core.
        progress: Show a progress bar.

    Returns:
        Images written per class name.

    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    jobs, counts, index = [], {}, 0
    for class_index, (cls, count) in enumerate(zip(CLASSES, class_counts(n_images), strict=True)):
        (out_dir / cls.name).mkdir(parents=True, exist_ok=True)
        counts[cls.name] = count
        for _ in range(count):
            jobs.append((seed, index, class_index, image_size, str(out_dir / cls.name / f"syn_{index:05d}.png")))
            index += 1
    pool = ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1)
    try:
        with workers_ignore_interrupt():  # Ctrl-C: this process stops, the workers go quietly
            results = pool.map(_render_to_file, jobs, chunksize=32)
        list(tqdm(results, total=len(jobs), desc="synthetic", disable=None if progress else True, unit="img"))
    except BaseException:  # the workers finish the images they hold, then the caller cleans up
        pool.shutdown(cancel_futures=True)
        raise
    pool.shutdown()
    return counts
