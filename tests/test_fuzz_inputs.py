"""Fuzzing the file readers: random bytes and damaged real files give a DataError or a clean array.

200 random byte strings (half behind a real PNG/TIFF/JPEG signature, so they get past format
detection) and mutated real files (bit flips, overwritten header bytes, truncation) of the formats
histology exports come in. Each goes through ``read_image``, ``read_mask``, ``FolderDataset.check``
and ``FolderDataset.load``; ``segkit stats`` then reads a folder of them. Seeded, so a failure repeats.
"""

from __future__ import annotations

import io
import json
import random
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from segkit.classes import ClassInfo, ClassTable
from segkit.cli.main import app
from segkit.data.folders import FolderDataset, SplitFolders
from segkit.data.images import read_image, read_mask
from segkit.data.pairing import Pair
from segkit.errors import DataError
from tiny_data import blob_pair

SEED = 20240611
RANDOM_COUNT = 200
MUTANTS_PER_SEED = 12
TABLE = ClassTable((ClassInfo("background", (0, 0, 0)), ClassInfo("benign", (0, 255, 0)),
                    ClassInfo("malignant", (255, 0, 0))))
SIGNATURES = {".png": b"\x89PNG\r\n\x1a\n", ".tif": b"II*\x00", ".jpg": b"\xff\xd8\xff\xe0"}


def _encoded(array: np.ndarray, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **options)
    return buffer.getvalue()


def _real_files() -> list[tuple[str, bytes]]:
    """Valid files of the kinds found in histology folders: RGB, 16-bit, palette, LZW/deflate TIFF."""
    image, mask = blob_pair(11, 32)
    grey16 = image[:, :, 0].astype(np.uint16) * 200
    return [
        (".png", _encoded(image, "PNG")),
        (".png", _encoded(mask, "PNG")),
        (".png", _encoded(grey16, "PNG")),
        (".png", _encoded(np.asarray(Image.fromarray(image).convert("P")), "PNG")),
        (".tif", _encoded(image, "TIFF")),
        (".tif", _encoded(image, "TIFF", compression="tiff_lzw")),
        (".tif", _encoded(grey16, "TIFF", compression="tiff_deflate")),
        (".jpg", _encoded(image, "JPEG", quality=90)),
    ]


def _flip_bits(data: bytes, rng: random.Random) -> bytes:
    raw = bytearray(data)
    for _ in range(rng.randint(1, 12)):
        raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
    return bytes(raw)


def _overwrite_header(data: bytes, rng: random.Random) -> bytes:
    """Random bytes where the sizes, offsets and chunk lengths live."""
    raw = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        raw[rng.randrange(min(len(raw), 160))] = rng.randrange(256)
    return bytes(raw)


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data))]


MUTATIONS: tuple[Callable[[bytes, random.Random], bytes], ...] = (_flip_bits, _overwrite_header, _truncate)


def _png_claiming(data: bytes, width: int, height: int) -> bytes:
    """A PNG whose header (with a valid checksum) claims another size than its pixel data holds."""
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes of fields
    ihdr[4:12] = struct.pack(">II", width, height)
    return data[:12] + bytes(ihdr) + struct.pack(">I", zlib.crc32(ihdr)) + data[33:]


def _fuzz_files(folder: Path) -> list[Path]:
    """The random and the mutated files, written into ``folder``."""
    rng = random.Random(SEED)
    folder.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    suffixes = list(SIGNATURES)
    for i in range(RANDOM_COUNT):
        suffix = suffixes[i % len(suffixes)]
        body = rng.randbytes(rng.randrange(0, 1500))
        data = SIGNATURES[suffix] + body if i % 2 else body
        files.append(folder / f"random_{i:03d}{suffix}")
        files[-1].write_bytes(data)
    for j, (suffix, data) in enumerate(_real_files()):
        for k in range(MUTANTS_PER_SEED):
            mutated = MUTATIONS[k % len(MUTATIONS)](data, rng)
            files.append(folder / f"mutant_{j}_{k:02d}{suffix}")
            files[-1].write_bytes(mutated)
        if suffix == ".png":  # billions of pixels (a decompression bomb), and a few more than there are
            for name, size in (("huge", (70_000, 70_000)), ("taller", (32, 33))):
                files.append(folder / f"{name}_{j}.png")
                files[-1].write_bytes(_png_claiming(data, *size))
    return files


@pytest.fixture(scope="module")
def fuzz_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return _fuzz_files(tmp_path_factory.mktemp("fuzz"))


def _only_data_errors(read: Callable[[], object], path: Path) -> object | None:
    """Run ``read``; a DataError must name the file and say what to do, anything else fails the test."""
    try:
        return read()
    except DataError as exc:
        message = str(exc)
        assert path.name in message and "\n" not in message, message
        hints = ("remove it", "re-export", "copy it again", "masks must have their image's size")
        assert any(hint in message for hint in hints), message
        return None


def test_random_and_mutated_files_through_the_readers(fuzz_files: list[Path]) -> None:
    assert len(fuzz_files) >= RANDOM_COUNT + 3 * len(MUTATIONS)
    decoded = 0
    for path in fuzz_files:
        image = _only_data_errors(lambda: read_image(path), path)
        if image is not None:
            assert isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
            assert image.shape[2] == 3
            decoded += 1
        gray = _only_data_errors(lambda: read_image(path, channels=1), path)
        assert gray is None or gray.shape[2] == 1
        mask = _only_data_errors(lambda: read_mask(path, TABLE), path)
        if mask is not None:
            indices, far = mask
            assert indices.dtype == np.uint8 and indices.ndim == 2 and far >= 0
    # a bit flip in pixel data often still decodes: the fuzzing reached the decoders, not just the headers
    assert decoded > 0


def test_random_and_mutated_files_through_the_dataset(fuzz_files: list[Path], tmp_path: Path) -> None:
    """Each fuzz file as an image (with a good mask) and as a mask (with a good image)."""
    image, mask = blob_pair(12, 32)
    good_image, good_mask = tmp_path / "good_image.png", tmp_path / "good_mask.png"
    Image.fromarray(image).save(good_image)
    Image.fromarray(mask).save(good_mask)
    dataset = FolderDataset({}, TABLE)
    for path in fuzz_files:
        for pair in (Pair(path.stem, path, good_mask), Pair(path.stem, good_image, path)):
            loaded = _only_data_errors(lambda: dataset.load(pair), path)
            if loaded is not None:
                assert loaded[0].shape[:2] == loaded[1].shape == (32, 32)


def test_header_check_of_a_fuzzed_split(fuzz_files: list[Path], tmp_path: Path) -> None:
    """``check`` (run before training) stops at the first bad file with a DataError naming it."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for path in fuzz_files[::7]:
        (images / f"{path.stem}.png").write_bytes(path.read_bytes())
        (masks / f"{path.stem}.png").write_bytes(path.read_bytes())
    dataset = FolderDataset({"train": SplitFolders(images, masks)}, TABLE)
    with pytest.raises(DataError, match=r"(re-export it|copy it again|remove it)"):
        dataset.check("train")


def test_segkit_stats_on_a_folder_of_fuzz(fuzz_files: list[Path], tmp_path: Path) -> None:
    """Broken files are problems in the report, never a crash; --json stays valid JSON."""
    root = tmp_path / "fuzzed"
    for folder in ("images", "masks"):
        (root / folder).mkdir(parents=True)
    for path in fuzz_files[::3]:
        (root / "images" / path.name).write_bytes(path.read_bytes())
        (root / "masks" / path.name).write_bytes(path.read_bytes())
    report = tmp_path / "stats.json"
    result = CliRunner().invoke(app, ["stats", str(root), "--json", str(report), "--plots", str(tmp_path / "plots")])
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    figures = json.loads(report.read_text())
    split = figures["splits"][0]
    assert split["images"] == len(fuzz_files[::3])
    assert split["problems"] and all(problem["reason"] for problem in split["problems"])
