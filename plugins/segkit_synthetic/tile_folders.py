"""Synthetic tiles as a dataset folder: ``<split>/{images,masks}/tile_NNNN.png`` and the nuclei's
exact ids in ``<split>/instances/tile_NNNN.tif``, and its cache keys.

``write_dataset`` renders every split with ``segkit_synthetic.he_tiles.generate_tile_with_instances`` and writes the
keys it was made with (generator version, seed, counts, settings) to ``settings.json`` last;
``dataset_is_current`` compares them, so a dataset is rendered again only when a key changed or a
file is missing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from segkit.plugin import write_instance_labels, write_png
from segkit_synthetic.he_tiles import GENERATOR_VERSION, TileSettings, generate_tile_with_instances

#: Name of the key file ``write_dataset`` writes into the dataset root (after the tiles).
SETTINGS_FILE = "settings.json"
#: The folders of a split and the suffix of the tiles the generator writes into each.
TILE_SUFFIXES = {"images": ".png", "masks": ".png", "instances": ".tif"}


def _tile_name(index: int, kind: str = "images") -> str:
    return f"tile_{index:04d}{TILE_SUFFIXES[kind]}"


def write_split(folder: Path, *, count: int, first_seed: int, settings: TileSettings) -> None:
    """Write tiles ``first_seed .. first_seed + count - 1`` to ``folder/{images,masks}/tile_NNNN.png``
    and their instance ids to ``folder/instances/tile_NNNN.tif``.

    Tile ``i`` of the split uses seed ``first_seed + i``. Existing files of the same name are
    replaced; others are left alone (``write_dataset`` clears stale ones first).
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    folder = Path(folder)
    for kind in TILE_SUFFIXES:
        (folder / kind).mkdir(parents=True, exist_ok=True)
    for index in range(count):
        image, mask, instances = generate_tile_with_instances(first_seed + index, settings)
        write_png(folder / "images" / _tile_name(index), image)
        write_png(folder / "masks" / _tile_name(index), mask)
        write_instance_labels(folder / "instances" / _tile_name(index, "instances"), instances)


def _keys(counts: Mapping[str, int], seed: int, settings: TileSettings) -> dict[str, Any]:
    """The cache keys, in the JSON form they are stored and compared in."""
    splits: dict[str, dict[str, int]] = {}
    next_seed = int(seed)
    for name in sorted(counts):  # sorted: the seeds do not depend on the mapping's order
        count = int(counts[name])
        splits[name] = {"count": count, "first_seed": next_seed}
        next_seed += count
    keys = {
        "generator": GENERATOR_VERSION,
        "seed": int(seed),
        "counts": {name: int(counts[name]) for name in sorted(counts)},
        "settings": asdict(settings),
        "splits": splits,
    }
    return json.loads(json.dumps(keys))


def _check_counts(counts: Mapping[str, int], seed: int) -> None:
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    for name, count in counts.items():
        if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"split name {name!r} must be a plain folder name")
        if int(count) < 0:
            raise ValueError(f"count of split {name!r} must be >= 0, got {count}")


def _remove_generated(root: Path) -> None:
    """Delete the key file and every generated tile under ``root`` (nothing else)."""
    (root / SETTINGS_FILE).unlink(missing_ok=True)
    if not root.is_dir():
        return
    for split in root.iterdir():
        folders = [split / kind for kind in TILE_SUFFIXES if (split / kind).is_dir()]
        for folder in folders:
            for path in folder.iterdir():
                generated = path.name.startswith("tile_") and path.suffix == TILE_SUFFIXES[folder.name]
                if path.is_file() and (generated or path.name.startswith(".tile_")):
                    path.unlink()
            if not any(folder.iterdir()):
                folder.rmdir()
        if folders and not any(split.iterdir()):
            split.rmdir()


def write_dataset(
    root: Path, *, counts: Mapping[str, int], seed: int, settings: TileSettings
) -> dict[str, Any]:
    """(Re)generate ``root/<split>/{images,masks,instances}`` for every split and write ``root/settings.json``.

    Split ``name`` holds ``counts[name]`` tiles; splits take consecutive, disjoint seed ranges
    starting at ``seed`` in sorted name order. Previously generated tiles and the key file are
    removed first, and the key file is written last, so an interrupted run is never "current".
    Returns the keys written to ``settings.json``.
    """
    _check_counts(counts, seed)
    root = Path(root)
    keys = _keys(counts, seed, settings)
    _remove_generated(root)
    root.mkdir(parents=True, exist_ok=True)
    for name, split in keys["splits"].items():
        write_split(root / name, count=split["count"], first_seed=split["first_seed"], settings=settings)
    tmp = root / f".{SETTINGS_FILE}.tmp"
    tmp.write_text(json.dumps(keys, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(root / SETTINGS_FILE)
    return keys


def dataset_is_current(root: Path, counts: Mapping[str, int], seed: int, settings: TileSettings) -> bool:
    """True when ``root`` was written by this generator version with these keys and is complete."""
    root = Path(root)
    try:
        stored = json.loads((root / SETTINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if stored != _keys(counts, seed, settings):
        return False
    for name, count in counts.items():
        for kind in TILE_SUFFIXES:
            folder = root / name / kind
            if not all((folder / _tile_name(i, kind)).is_file() for i in range(int(count))):
                return False
    return True
