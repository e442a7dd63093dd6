"""What ``segkit infer`` will read and write, checked before TensorFlow loads or anything is written.

Masks never replace the images they come from, and never a file segkit did not write: each output
folder keeps a small manifest (:data:`MANIFEST`) of the names infer wrote there, so a rerun replaces
its own masks freely while a user's file of the same name needs ``--overwrite``. A project with
``[instances]`` adds a third folder, the objects (:func:`objects_folder`), planned and checked the same
way, its instancer built here so that a bad key fails before the model loads. Slides among the
inputs (:func:`segkit.slides.listing.is_slide`) are checked by :mod:`segkit.engine.slide_plan` and
write into the masks folder, listed in its manifest like masks, with the call's ``slides.csv``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segkit.data.images import image_size, is_image_name
from segkit.data.names import quoted
from segkit.data.pairing import check_stems, file_stem, scan_image_folder
from segkit.engine.components import build_instancer
from segkit.engine.slide_plan import NO_SLIDE_OPTIONS, PlannedSlide, SlideOptions, plan_slides
from segkit.errors import DataError, ProjectError
from segkit.manifests import listed_names
from segkit.optional import parquet_available
from segkit.plugins import Registry, get_registry
from segkit.project import Project
from segkit.slides.listing import is_slide
from segkit.slides.outputs import slide_stem
from segkit.slides.summary import SUMMARY_NAME
from segkit.specs import Instances
from segkit.toml_io import write_atomic

MANIFEST = ".segkit-outputs.json"
IMAGE_KINDS = ".png .jpg .jpeg .tif .tiff .bmp"
#: what a file given to infer may be besides an image
SLIDE_KINDS = "or a slide an installed reader opens"
SQUASH_FACTOR = 2  # images this much larger than the model input lose their detail when resized
#: the objects folder's one table for the whole call: a row per image
OBJECT_SUMMARY = "summary.csv"


@dataclass(frozen=True)
class ObjectPlan:
    """How infer writes each image's nuclei into ``folder``: the instancer built from ``[instances]``,
    the pixel size of the table's measures, and which files each image gets."""

    folder: Path
    instancer_name: str
    instancer: Callable[[Any, Any], Instances]
    microns_per_pixel: float | None
    compress_geojson: bool
    #: whether the nucleus tables get a Parquet copy beside the CSV (pyarrow is installed)
    parquet: bool

    @property
    def detections_suffix(self) -> str:
        return ".geojson.gz" if self.compress_geojson else ".geojson"

    def names(self, stem: str) -> list[str]:
        """The files one image's nuclei go to: labels, table(s), detections."""
        tables = [f"{stem}.csv", *([f"{stem}.parquet"] if self.parquet else [])]
        return [f"{stem}.tif", *tables, f"{stem}{self.detections_suffix}"]


@dataclass(frozen=True)
class InferPlan:
    """The images and slides to segment, the folders the masks, overlays (and objects) go to, and the
    files of others that ``--overwrite`` allowed to be replaced."""

    images: list[Path]
    masks: Path
    overlays: Path
    replaced: list[Path]
    notes: tuple[str, ...] = ()
    #: None when the project has no ``[instances]``: then infer writes no objects at all
    objects: ObjectPlan | None = None
    #: every name infer writes, per folder (what :func:`record` lists in each manifest)
    outputs: Mapping[Path, tuple[str, ...]] = field(default_factory=dict)
    #: the slides, in argument order; their outputs go into ``masks``
    slides: tuple[PlannedSlide, ...] = ()
    slide_options: SlideOptions = NO_SLIDE_OPTIONS

    @property
    def slide_table(self) -> Path:
        return self.masks / SUMMARY_NAME


def overlay_folder(output: Path) -> Path:
    return output.with_name(f"{output.name}_overlay")


def objects_folder(output: Path) -> Path:
    return output.with_name(f"{output.name}_objects")


def plan_infer(project: Project, paths: Sequence[Path] = (), out: Path | None = None,
               overwrite: bool = False, registry: Registry | None = None,
               slide_options: SlideOptions = NO_SLIDE_OPTIONS) -> InferPlan:
    """Images and slides from ``paths`` (files or folders) or else ``[infer] images``, into ``out`` or
    else ``[infer] output``; the instancer is built, every header read, every slide checked and every
    output name checked here."""
    registry = registry or get_registry()
    masks = (out if out is not None else project.infer.output).absolute()
    folders, images, slide_paths = _from_arguments(paths, registry) if paths else _from_project(project, registry)
    # objects and overlays are of images: a call of slides only writes neither folder
    objects = plan_objects(project, objects_folder(masks), registry)
    objects = objects if images else None
    sizes = [(path, image_size(path, verify=True)) for path in images]
    slides = plan_slides(project, slide_paths, masks, registry, slide_options)
    overlays = overlay_folder(masks)
    key = "--out" if out is not None else f"{project.source}: infer.output"
    _refuse_input_folders([masks, *([overlays] if images else []), *([objects.folder] if objects else [])],
                          folders, key)
    outputs = _outputs(images, slides, masks, overlays, objects)
    targets = [folder / name for folder, names in outputs.items() for name in names]
    _refuse_replacing_inputs(targets, [*images, *slide_paths])
    foreign = foreign_files(outputs)
    if foreign and not overwrite:
        names = ", ".join(quoted(p.name) for p in foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5
                                                                    else "")
        what = "objects" if objects is not None and foreign[0].parent == objects.folder else "masks"
        raise DataError(f"{quoted(foreign[0].parent)}: {what} would replace {len(foreign)} file(s) segkit did not "
                        f"write ({names}); move them, choose another output folder, or pass --overwrite")
    notes = [squash_note(project, sizes), *(f"{quoted(slide.path)}: already segmented by this model; skipped"
                                            for slide in slides if slide.done)]
    return InferPlan(images, masks, overlays, foreign, tuple(note for note in notes if note), objects, outputs,
                     tuple(slides), slide_options)


def plan_objects(project: Project, folder: Path, registry: Registry) -> ObjectPlan | None:
    """The objects of ``[instances]`` (None without it), its instancer built (a rule across its
    keys, a ValueError of the plugin's builder, is one line on ``[instances]``)."""
    section = project.instances
    if section is None:
        return None
    return ObjectPlan(folder, section.name, build_instancer(project, registry), section.microns_per_pixel,
                      section.compress_geojson, parquet_available())


def _from_project(project: Project, registry: Registry) -> tuple[list[Path], list[Path], list[Path]]:
    """The ``[infer] images`` folder, its images and its slides; errors name the key."""
    folder = project.infer.images
    key, source = "infer.images", str(project.source)
    if folder is None:
        raise ProjectError(source, key, "is not set", "add it to [infer] or pass --set infer.images=FOLDER")
    if not folder.is_dir():
        what = f"{folder} is a file, not a folder" if folder.exists() else f"folder {folder} does not exist"
        raise ProjectError(source, key, what, "point it at the folder of images to segment")
    images, slides = _listed(folder, registry)
    if not images and not slides:
        raise ProjectError(source, key, f"{folder} holds no images ({IMAGE_KINDS}) and no slides",
                           "point it at the folder of images to segment")
    return [folder], images, slides


def _from_arguments(paths: Sequence[Path], registry: Registry) -> tuple[list[Path], list[Path], list[Path]]:
    """Image and slide files as given and those directly in each folder given, in argument order."""
    folders: list[Path] = []
    images: list[Path] = []
    slides: list[Path] = []
    for path in paths:
        if path.is_dir():
            found, found_slides = _listed(path, registry)
            if not found and not found_slides:
                raise DataError(f"{quoted(path)}: holds no images ({IMAGE_KINDS}) and no slides; give image or "
                                "slide files or a folder of them")
            folders.append(path)
            images.extend(found)
            slides.extend(found_slides)
        elif path.is_file() and is_slide(path, registry):
            slides.append(path)
        elif path.is_file() and is_image_name(path):
            images.append(path)
        else:
            what = "does not exist" if not path.exists() else f"is not an image ({IMAGE_KINDS}) {SLIDE_KINDS}"
            raise DataError(f"{quoted(path)}: {what}; give image or slide files or folders of them")
    return folders, images, slides


def _listed(folder: Path, registry: Registry) -> tuple[list[Path], list[Path]]:
    """The images and the slides directly in ``folder`` (a pyramidal TIFF is a slide), by name; a
    rejected entry or a stem shared by two of them is an error."""
    listing = scan_image_folder(folder, named=lambda entry: is_image_name(entry) or is_slide(entry, registry))
    if listing.rejected:
        raise listing.rejected[0].error()
    slides = [path for path in listing.files if is_slide(path, registry)]
    check_stems(listing, lambda path: slide_stem(path) if path in slides else file_stem(path))
    return [path for path in listing.files if path not in slides], slides


def squash_note(project: Project, sizes: Sequence[tuple[Path, tuple[int, int]]]) -> str | None:
    """A note when the model meets images by resizing (no ``[augment] crop``) and some are more
    than :data:`SQUASH_FACTOR` times its input on a side: squashed that much, they come out blurred."""
    width, height = project.model.image_width, project.model.image_height
    big = [(path, size) for path, size in sizes if size[0] > SQUASH_FACTOR * width or size[1] > SQUASH_FACTOR * height]
    if project.augment.crop or not big:
        return None
    path, (w, h) = max(big, key=lambda item: item[1][0] * item[1][1])
    return (f"{len(big)} of {len(sizes)} images are more than {SQUASH_FACTOR}x the model input ({width}x{height}) "
            f"on a side (largest {quoted(path.name)}, {w}x{h}); resize mode squashes them to {width}x{height}: "
            "train with [augment] crop = true to segment them at full resolution")


def _outputs(images: list[Path], slides: Sequence[PlannedSlide], masks: Path, overlays: Path,
             objects: ObjectPlan | None) -> dict[Path, tuple[str, ...]]:
    """Every name infer writes, per folder, refusing two inputs that would write the same file and
    an image whose nucleus table would be the objects' summary."""
    writers: dict[str, Path] = {}
    for source, names in [*((image, [f"{image.stem}.png"]) for image in images),
                          *((slide.path, [path.name for path in slide.outputs.every()]) for slide in slides)]:
        for name in names:
            other = writers.setdefault(name, source)
            if other != source:
                what = "the mask " if name.endswith(".png") and other in images and source in images else ""
                raise DataError(f"{quoted(other)} and {quoted(source)}: both would write {what}{quoted(name)}; "
                                "segment them into separate output folders")
    _refuse_shared_stems(images, [slide.path for slide in slides])
    masks_names = tuple(f"{image.stem}.png" for image in images)
    slide_names = tuple(name for name in writers if name not in masks_names)
    tables = (SUMMARY_NAME, *([SUMMARY_NAME.replace(".csv", ".parquet")] if parquet_available() else []))
    outputs = {masks: masks_names + slide_names + (tables if slides else ())}
    if images:
        outputs[overlays] = masks_names
    if objects is not None:
        stems = [image.stem for image in images]
        per_image = [name for stem in stems for name in objects.names(stem)]
        if OBJECT_SUMMARY in per_image:
            image = images[stems.index(OBJECT_SUMMARY.removesuffix(".csv"))]
            raise DataError(f"{quoted(image)}: its nucleus table would be the objects folder's {OBJECT_SUMMARY} "
                            f"of every image; rename the image or segment it on its own into another output folder")
        outputs[objects.folder] = (*per_image, OBJECT_SUMMARY)
    return outputs


def _refuse_shared_stems(images: list[Path], slides: list[Path]) -> None:
    """An image and a slide of one stem write ``a.png`` beside ``a.mask.ome.tif``: two results told
    apart by their suffixes alone, and a table or a viewer keyed by stem would take one for the other."""
    stems = {image.stem: image for image in images}
    for slide in slides:
        image = stems.get(slide_stem(slide))
        if image is not None:
            raise DataError(f"{quoted(image)} and {quoted(slide)}: an image and a slide of one stem, "
                            f"{quoted(slide_stem(slide))}; rename one, or segment them into separate output folders")


def _refuse_input_folders(outputs: list[Path], folders: list[Path], key: str) -> None:
    """Outputs never go into (or below) a folder of the images being segmented."""
    for folder in folders:
        inputs = folder.resolve()
        for output in outputs:
            resolved = output.resolve()
            if resolved == inputs or inputs in resolved.parents:
                raise DataError(f"{key}: {quoted(output)} is (or lies inside) the folder of the images to "
                                f"segment, {quoted(folder)}; choose another output folder")


def _refuse_replacing_inputs(targets: list[Path], images: list[Path]) -> None:
    inputs = {image.resolve(): image for image in images}
    for target in targets:
        image = inputs.get(target.resolve())
        if image is not None:
            raise DataError(f"{quoted(target)}: is the input image {quoted(image)}; choose another output folder")


def written_before(folder: Path) -> set[str]:
    """The names :func:`record` listed in ``folder``; an unreadable manifest lists nothing."""
    return set(listed_names(folder / MANIFEST, "written") or ())


def foreign_files(outputs: Mapping[Path, Sequence[str]]) -> list[Path]:
    """The planned ``outputs`` (names per folder) that exist but are not in their folder's manifest:
    files segkit did not write (a link is never ours: infer writes plain files)."""
    known = {folder: written_before(folder) for folder in outputs}
    return [target for folder, names in outputs.items() for target in (folder / name for name in names)
            if target.is_symlink() or (target.exists() and target.name not in known[folder])]


def record(plan: InferPlan) -> None:
    """List the names about to be written in each folder's manifest, before the first of them is."""
    record_outputs(plan.outputs)


def record_outputs(outputs: Mapping[Path, Sequence[str]]) -> None:
    """Add ``outputs`` (names per folder) to each folder's manifest (the folder made if need be)."""
    for folder, planned in outputs.items():
        names = written_before(folder) | set(planned)
        write_atomic(folder / MANIFEST, json.dumps({"written_by": "segkit infer", "written": sorted(names)},
                                                   indent=1) + "\n")
