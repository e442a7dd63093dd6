"""Deterministic synthetic H&E-like tiles with categorized masks (numpy + Pillow only).

Each tile is rendered in optical-density space, the way a bright-field scanner sees a stained
slide: a hematoxylin and an eosin concentration map are turned into RGB by the Beer-Lambert law
with per-tile jittered stain vectors, then blurred a little and given sensor noise.

* Background: pale pink eosin stroma with wavy fibre streaks and irregular white gaps (lumens,
  fat), slightly different stain and brightness per tile.
* Benign nuclei (class 1): small, nearly round, evenly stained light purple, on a jittered
  hexagonal grid (evenly spaced).
* Malignant nuclei (class 2): 1.6-2.2x the benign radius and variable, lobulated/irregular
  outlines, darker hematoxylin with chromatin clumps, a dark rim and often a nucleolus, placed
  in crowded clusters where they touch or overlap.

A tile is benign-only, malignant-only, or (``mixed_fraction`` of the time) split by a wavy
boundary into a benign and a malignant region. The mask holds the class colour of the topmost
nucleus at every pixel where a nucleus is drawn at half coverage or more, and the background
colour elsewhere: anti-aliasing, blur and noise are only in the image.

Everything random comes from ``np.random.default_rng(seed)``, so a seed gives byte-identical
output for a given generator version and numpy/Pillow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from segkit.plugin import RGB, ClassTable

#: Changes whenever the same seed and settings would render different pixels or the dataset folder
#: holds other files (2: ``instances/`` beside ``images/`` and ``masks/``); it is one of the cache
#: keys in ``settings.json``, so bumping it makes every cached dataset regenerate.
GENERATOR_VERSION = "segkit_synthetic.he_tiles/2"

BACKGROUND, BENIGN, MALIGNANT = 0, 1, 2

# Stain vectors (optical density per unit concentration, R G B), near Macenko's reference ones:
# hematoxylin a little bluer and eosin a little pinker (Macenko's render mauve at these levels).
_HEMATOXYLIN = np.array([0.62, 0.72, 0.33], dtype=np.float32)
_EOSIN = np.array([0.13, 0.86, 0.42], dtype=np.float32)


def _color(value: Any, name: str) -> RGB:
    try:
        channels = tuple(int(c) for c in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be three integers 0..255, got {value!r}") from None
    if len(channels) != 3 or any(not 0 <= c <= 255 for c in channels):
        raise ValueError(f"{name} must be three integers 0..255, got {value!r}")
    return channels


@dataclass(frozen=True)
class TileSettings:
    """What a tile looks like; every field is a cache key of ``write_dataset``.

    Attributes:
        size: tile height and width in pixels (at least 32). Nuclei keep their pixel size, so a
            bigger tile shows more of them.
        background_color: mask colour of class 0 (stroma, gaps).
        benign_color: mask colour of class 1 (benign nuclei).
        malignant_color: mask colour of class 2 (malignant nuclei).
        malignant_fraction: among tiles that are not mixed, the probability that a tile is
            malignant-only rather than benign-only. 0 means no malignant nucleus anywhere and 1
            no benign one (mixed tiles then hold only the one kind).
        mixed_fraction: probability that a tile is split into a benign and a malignant region.
        nucleus_radius: mean benign nucleus radius in pixels; malignant nuclei are 1.6-2.2x it.
    """

    size: int = 128
    background_color: RGB = (0, 0, 0)
    benign_color: RGB = (0, 255, 0)
    malignant_color: RGB = (255, 0, 0)
    malignant_fraction: float = 0.5
    mixed_fraction: float = 0.3
    nucleus_radius: float = 4.0

    def __post_init__(self) -> None:
        # Normalise lists (e.g. read back from JSON) to tuples so settings compare and hash.
        for name in ("background_color", "benign_color", "malignant_color"):
            object.__setattr__(self, name, _color(getattr(self, name), name))
        if len(set(self.class_colors)) != 3:
            raise ValueError(f"the three class colours must differ, got {self.class_colors}")
        if isinstance(self.size, bool) or not isinstance(self.size, (int, np.integer)) or self.size < 32:
            raise ValueError(f"size must be an integer >= 32, got {self.size!r}")
        object.__setattr__(self, "size", int(self.size))
        for name in ("malignant_fraction", "mixed_fraction"):
            value = float(getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
            object.__setattr__(self, name, value)
        radius = float(self.nucleus_radius)
        if not 2.0 <= radius <= self.size / 8:
            raise ValueError(f"nucleus_radius must lie in [2, size/8], got {radius}")
        object.__setattr__(self, "nucleus_radius", radius)

    @property
    def class_colors(self) -> tuple[RGB, RGB, RGB]:
        """Mask colours by class index: (background, benign, malignant)."""
        return (self.background_color, self.benign_color, self.malignant_color)

    @classmethod
    def from_colors(cls, colors: Sequence[Sequence[int]], **kwargs: Any) -> TileSettings:
        """Settings whose mask colours are ``colors[0..2]`` (background, benign, malignant)."""
        if len(colors) != 3:
            raise ValueError(f"need 3 class colours (background, benign, malignant), got {len(colors)}")
        background, benign, malignant = (_color(c, f"colors[{i}]") for i, c in enumerate(colors))
        return cls(background_color=background, benign_color=benign, malignant_color=malignant, **kwargs)

    @classmethod
    def from_class_table(cls, table: ClassTable, **kwargs: Any) -> TileSettings:
        """Settings whose mask colours are those of a 3-class table (background, benign, malignant)."""
        return cls.from_colors([c.color for c in table.classes], **kwargs)


# --------------------------------------------------------------------------------------------
# Noise fields


def _smooth_noise(
    rng: np.random.Generator, height: int, width: int, cell_y: float, cell_x: float
) -> np.ndarray:
    """Zero-mean, unit-std noise that varies smoothly over ``cell_y`` x ``cell_x`` pixels."""
    grid_h = int(math.ceil(height / cell_y)) + 3
    grid_w = int(math.ceil(width / cell_x)) + 3
    grid = rng.standard_normal((grid_h, grid_w)).astype(np.float32)
    full_w, full_h = int(round(grid_w * cell_x)), int(round(grid_h * cell_y))
    big = np.asarray(Image.fromarray(grid).resize((full_w, full_h), Image.Resampling.BICUBIC))
    oy, ox = int(cell_y), int(cell_x)
    field = big[oy : oy + height, ox : ox + width]
    field = field - field.mean()
    return field / max(float(field.std()), 1e-6)


def _blur3(field: np.ndarray) -> np.ndarray:
    """Separable [1, 2, 1] / 4 smoothing with edge replication."""
    p = np.pad(field, 1, mode="edge")
    p = (p[:-2] + 2 * p[1:-1] + p[2:]) * 0.25
    return (p[:, :-2] + 2 * p[:, 1:-1] + p[:, 2:]) * 0.25


def _bilinear(field: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Sample ``field`` at float coordinates (clamped to its edges)."""
    h, w = field.shape
    ys = np.clip(ys, 0, h - 1.001)
    xs = np.clip(xs, 0, w - 1.001)
    y0 = ys.astype(np.int32)
    x0 = xs.astype(np.int32)
    fy = ys - y0
    fx = xs - x0
    top = field[y0, x0] * (1 - fx) + field[y0, x0 + 1] * fx
    bottom = field[y0 + 1, x0] * (1 - fx) + field[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _fibres(rng: np.random.Generator, size: int, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Wavy, elongated streaks (collagen bundles) along a random direction, unit std."""
    canvas = int(math.ceil(size * 1.5)) + 8
    streaks = _smooth_noise(rng, canvas, canvas, rng.uniform(2.2, 3.2), rng.uniform(18, 30))
    angle = rng.uniform(0, math.pi)
    cos, sin = math.cos(angle), math.sin(angle)
    warp = _smooth_noise(rng, size, size, 36, 36) * rng.uniform(1.5, 3.0)
    c = size / 2
    u = (xx - c) * cos + (yy - c) * sin + canvas / 2
    v = -(xx - c) * sin + (yy - c) * cos + canvas / 2 + warp
    return _bilinear(streaks, v, u)


# --------------------------------------------------------------------------------------------
# Nucleus placement


def _lookup(field: np.ndarray, y: float, x: float) -> bool:
    h, w = field.shape
    return bool(field[min(max(int(round(y)), 0), h - 1), min(max(int(round(x)), 0), w - 1)])


def _benign_centres(
    rng: np.random.Generator, size: int, radius: float, allowed: np.ndarray
) -> list[tuple[float, float]]:
    """Jittered hexagonal grid at a random angle, kept where ``allowed`` (evenly spaced)."""
    spacing = radius * rng.uniform(4.2, 5.0)
    jitter = 0.14 * spacing
    angle = rng.uniform(0, math.pi / 3)
    cos, sin = math.cos(angle), math.sin(angle)
    row_step = spacing * math.sqrt(3) / 2
    n = int(size * 0.75 / row_step) + 2
    rows, cols = np.mgrid[-n : n + 1, -n : n + 1]
    u = cols * spacing + (rows % 2) * spacing / 2 + rng.uniform(0, spacing)
    v = rows * row_step + rng.uniform(0, row_step)
    xs = (u * cos - v * sin + size / 2).ravel()
    ys = (u * sin + v * cos + size / 2).ravel()
    xs = xs + rng.uniform(-jitter, jitter, xs.shape)
    ys = ys + rng.uniform(-jitter, jitter, ys.shape)
    lo, hi = -0.5 * radius, size - 1 + 0.5 * radius
    keep = (xs >= lo) & (xs <= hi) & (ys >= lo) & (ys <= hi)
    return [(float(y), float(x)) for y, x in zip(ys[keep], xs[keep]) if _lookup(allowed, y, x)]


def _malignant_centres(
    rng: np.random.Generator, size: int, radius: float, allowed: np.ndarray
) -> list[tuple[float, float, float]]:
    """Crowded clusters of large, variably sized nuclei: ``(y, x, r)`` each."""
    area = float(allowed.sum())
    target = area * rng.uniform(0.20, 0.28)
    placed: list[tuple[float, float, float]] = []
    if area < (2 * radius) ** 2:
        return placed
    covered = 0.0
    for _cluster in range(12):
        if covered >= target:
            break
        for _try in range(30):
            cy, cx = rng.uniform(0, size - 1, 2)
            if _lookup(allowed, cy, cx):
                break
        else:
            break
        sigma = radius * rng.uniform(3.0, 5.0)
        members = int(rng.integers(5, 13))
        accepted = 0
        for _try in range(members * 6):
            if accepted >= members or covered >= target:
                break
            r = radius * rng.uniform(1.6, 2.2)
            y, x = rng.normal((cy, cx), sigma)
            if not (-0.4 * r <= y <= size - 1 + 0.4 * r and -0.4 * r <= x <= size - 1 + 0.4 * r):
                continue
            if not _lookup(allowed, y, x):
                continue
            # Crowded: they may touch and overlap a little, but not sit on top of each other.
            if any((y - py) ** 2 + (x - px) ** 2 < (0.78 * (r + pr)) ** 2 for py, px, pr in placed):
                continue
            placed.append((float(y), float(x), float(r)))
            covered += math.pi * r * r
            accepted += 1
    return placed


# --------------------------------------------------------------------------------------------
# Rendering


class _Canvas:
    """Premultiplied nuclear hematoxylin/eosin layers, their coverage, and the class mask."""

    def __init__(self, size: int, texture: np.ndarray) -> None:
        self.h = np.zeros((size, size), np.float32)
        self.e = np.zeros((size, size), np.float32)
        self.alpha = np.zeros((size, size), np.float32)
        self.labels = np.zeros((size, size), np.uint8)
        #: which nucleus each pixel belongs to (0 = none), drawn like ``labels``: the topmost wins
        self.instances = np.zeros((size, size), np.int32)
        self.texture = texture
        self.size = size
        self.count = 0

    def nucleus(
        self,
        y: float,
        x: float,
        radius: float,
        harmonics: Sequence[tuple[int, float, float]],
        label: int,
        stain: float,
        texture: float,
        rim: float,
        nucleolus: tuple[float, float, float] | None = None,
    ) -> None:
        """Draw one nucleus whose outline is ``radius * (1 + sum a cos(k theta + phase))``."""
        reach = radius * (1 + sum(abs(a) for _k, a, _p in harmonics)) + 1.5
        y0, y1 = max(int(math.floor(y - reach)), 0), min(int(math.ceil(y + reach)) + 1, self.size)
        x0, x1 = max(int(math.floor(x - reach)), 0), min(int(math.ceil(x + reach)) + 1, self.size)
        if y0 >= y1 or x0 >= x1:
            return
        dy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(y)
        dx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(x)
        rho = np.sqrt(dy * dy + dx * dx)
        theta = np.arctan2(dy, dx)
        outline = np.ones_like(theta)
        for k, a, phase in harmonics:
            outline += np.float32(a) * np.cos(k * theta + np.float32(phase))
        depth = np.float32(radius) * outline - rho  # > 0 inside, ~ distance to the outline in px
        alpha = np.clip(depth + 0.5, 0.0, 1.0)  # anti-aliased coverage; >= 0.5 exactly where depth >= 0
        box = (slice(y0, y1), slice(x0, x1))
        h = stain + texture * self.texture[box] + rim * np.clip(1.0 - depth / 1.6, 0.0, 1.0)
        e = np.full_like(h, 0.08)
        if nucleolus is not None:
            ny, nx, nr = nucleolus
            spot = np.clip(nr + 0.5 - np.sqrt((dy - ny) ** 2 + (dx - nx) ** 2), 0.0, 1.0)
            h += 0.45 * spot
            e += 0.35 * spot
        self.h[box] = h * alpha + self.h[box] * (1 - alpha)
        self.e[box] = e * alpha + self.e[box] * (1 - alpha)
        self.alpha[box] = alpha + self.alpha[box] * (1 - alpha)
        self.labels[box][depth >= 0] = label
        self.count += 1
        self.instances[box][depth >= 0] = self.count


def _tile_kind(rng: np.random.Generator, settings: TileSettings) -> tuple[bool, bool]:
    """(has benign, has malignant) for one tile."""
    mixed = rng.random() < settings.mixed_fraction
    malignant = rng.random() < settings.malignant_fraction
    if settings.malignant_fraction <= 0.0:
        return True, False
    if settings.malignant_fraction >= 1.0:
        return False, True
    if mixed:
        return True, True
    return (not malignant), malignant


def generate_tile(seed: int, settings: TileSettings = TileSettings()) -> tuple[np.ndarray, np.ndarray]:
    """Render one tile: ``(image, mask)``, both ``(size, size, 3)`` uint8.

    The same ``seed`` and ``settings`` give byte-identical arrays; ``seed`` must be >= 0.
    """
    image, mask, _instances = generate_tile_with_instances(seed, settings)
    return image, mask


def generate_tile_with_instances(seed: int, settings: TileSettings = TileSettings()
                                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one tile: ``(image, mask, instances)``; ``instances`` is ``(size, size)`` int32, 0
    off nuclei and ``1..N`` for the N nuclei visible in the tile, in the order they were drawn.

    A nucleus drawn over another takes the pixels they share, as in the mask, so touching and
    overlapping malignant nuclei keep distinct ids where the mask shows one blob. The image and
    the mask are those of :func:`generate_tile` for the same seed and settings.
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    rng = np.random.default_rng(seed)
    size = settings.size
    radius = settings.nucleus_radius
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)

    # Stroma: eosin with fibre streaks and slow variation, a trace of hematoxylin.
    fibres = _fibres(rng, size, yy, xx)
    slow = _smooth_noise(rng, size, size, 40, 40)
    eosin = rng.uniform(0.13, 0.22) * (1 + 0.22 * fibres + 0.12 * slow)
    eosin = np.maximum(eosin, 0.03)
    hema = rng.uniform(0.03, 0.06) * (1 + 0.4 * _smooth_noise(rng, size, size, 12, 12))

    # White gaps (lumens, fat): the top few percent of a smooth, irregular field.
    blobs = _smooth_noise(rng, size, size, 24, 24) + 0.45 * _smooth_noise(rng, size, size, 7, 7)
    gap_fraction = rng.uniform(0.03, 0.14)
    threshold = float(np.quantile(blobs, 1 - gap_fraction))
    gap = np.clip((blobs - threshold) / 0.25, 0.0, 1.0)
    eosin = eosin * (1 - 0.93 * gap)
    hema = hema * (1 - gap)
    tissue = blobs < threshold  # where nuclei may be centred

    # Which kinds of nuclei, and where (a wavy boundary splits mixed tiles).
    has_benign, has_malignant = _tile_kind(rng, settings)
    if has_benign and has_malignant:
        angle = rng.uniform(0, 2 * math.pi)
        cy, cx = size / 2 + rng.uniform(-size / 6, size / 6, 2)
        side = (xx - cx) * math.cos(angle) + (yy - cy) * math.sin(angle)
        side = side + 0.08 * size * _smooth_noise(rng, size, size, 32, 32)
        malignant_zone = side > 0
    else:
        malignant_zone = np.full((size, size), has_malignant)

    texture = _blur3(rng.standard_normal((size, size)).astype(np.float32))
    texture = np.clip(texture / max(float(texture.std()), 1e-6), -1.2, 2.5)
    canvas = _Canvas(size, texture)

    malignant = _malignant_centres(rng, size, radius, tissue & malignant_zone) if has_malignant else []
    benign: list[tuple[float, float]] = []
    if has_benign:
        for y, x in _benign_centres(rng, size, radius, tissue & ~malignant_zone):
            if all((y - py) ** 2 + (x - px) ** 2 > (pr + 1.3 * radius + 1) ** 2 for py, px, pr in malignant):
                benign.append((y, x))

    tile_stain = rng.uniform(0.94, 1.06)
    for y, x in benign:
        r = radius * rng.uniform(0.88, 1.12)
        harmonics = [(2, rng.uniform(0.0, 0.10), rng.uniform(0, 2 * math.pi))]
        canvas.nucleus(y, x, r, harmonics, BENIGN, tile_stain * rng.uniform(0.68, 0.80), 0.03, 0.05)
    for y, x, r in malignant:
        harmonics = [
            (k, rng.uniform(0.04, 0.13) * (1.0 if k < 4 else 0.6), rng.uniform(0, 2 * math.pi))
            for k in (2, 3, 4, 5)
        ]
        nucleolus = None
        if rng.random() < 0.6:
            offset = rng.uniform(0, 0.35 * r, 2) * rng.choice([-1, 1], 2)
            nucleolus = (float(offset[0]), float(offset[1]), float(rng.uniform(0.9, 1.5)))
        stain = tile_stain * rng.uniform(1.00, 1.20)
        canvas.nucleus(y, x, r, harmonics, MALIGNANT, stain, rng.uniform(0.22, 0.32), 0.25, nucleolus)

    # Compose in optical density and convert to RGB (Beer-Lambert), with per-tile stain jitter.
    hema = canvas.h + hema * (1 - canvas.alpha)
    eosin = canvas.e + eosin * (1 - canvas.alpha)
    h_vec = _HEMATOXYLIN + rng.normal(0, 0.03, 3).astype(np.float32)
    e_vec = _EOSIN + rng.normal(0, 0.03, 3).astype(np.float32)
    h_vec /= np.linalg.norm(h_vec)
    e_vec /= np.linalg.norm(e_vec)
    density = hema[:, :, None] * h_vec + eosin[:, :, None] * e_vec
    white = rng.uniform(240, 254) + rng.uniform(-3, 3, 3)
    rgb = np.clip(white * np.power(np.float32(10), -density), 0, 255).astype(np.uint8)

    blurred = Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(radius=rng.uniform(0.5, 0.8)))
    noisy = np.asarray(blurred).astype(np.float32) + rng.normal(0, rng.uniform(2.0, 4.0), (size, size, 3))
    image = np.clip(noisy + 0.5, 0, 255).astype(np.uint8)

    palette = np.array(settings.class_colors, dtype=np.uint8)
    return image, palette[canvas.labels], _consecutive(canvas.instances)


def _consecutive(ids: np.ndarray) -> np.ndarray:
    """The same partition with ids 1..N: a nucleus that later ones covered whole leaves no gap."""
    present, relabelled = np.unique(ids, return_inverse=True)
    relabelled = relabelled.reshape(ids.shape).astype(np.int32)
    return relabelled if present[0] == 0 else relabelled + 1
