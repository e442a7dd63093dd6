"""What ``segkit infer`` writes per image for a project with ``[instances]``: the nuclei as objects.

Each image's softmax goes to the instancer the plan built; its objects go to the objects folder as
an instance label TIFF, a nucleus table (CSV, and Parquet with pyarrow) and QuPath detections
(GeoJSON), and one row of the folder's summary, written once every image is done. It runs in infer's
writer threads, beside the PNG encoding, so that post-processing overlaps the model.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from segkit.classes import ClassTable
from segkit.engine.infer_plan import OBJECT_SUMMARY, ObjectPlan
from segkit.objects.classify import checked_instances


class NucleusWriter:
    """Finds and writes the nuclei of one image at a time (from any thread), then the summary."""

    def __init__(self, plan: ObjectPlan, classes: ClassTable) -> None:
        self.plan = plan
        self.classes = classes
        self._summary: dict[Path, dict[str, Any]] = {}
        self._lock = threading.Lock()
        #: nuclei found so far, over every image
        self.count = 0

    def write(self, path: Path, image: np.ndarray, probabilities: np.ndarray) -> None:
        """The objects of ``image`` from its softmax ``(H, W, K)``, written under its stem."""
        from segkit.objects.geojson_out import write_detections
        from segkit.objects.labels import write_instance_labels
        from segkit.objects.measure import nucleus_columns, nucleus_table, summary_row, write_table

        plan, folder, stem = self.plan, self.plan.folder, path.stem
        instances = checked_instances(plan.instancer(probabilities, image), probabilities.shape,
                                      plan.instancer_name, path.name)
        write_instance_labels(folder / f"{stem}.tif", instances.labels)
        rows = nucleus_table(path.name, image, instances, self.classes, plan.microns_per_pixel)
        write_table(folder / stem, rows, nucleus_columns(plan.microns_per_pixel))
        write_detections(folder / f"{stem}{plan.detections_suffix}", instances, self.classes, rows,
                         plan.compress_geojson)
        row = summary_row(path.name, instances, self.classes, image.shape[:2], plan.microns_per_pixel)
        with self._lock:
            self._summary[path] = row
            self.count += instances.count

    def finish(self, images: list[Path]) -> int:
        """Write the summary, one row per image in the order given; the number of nuclei found."""
        from segkit.objects.measure import summary_columns, write_summary

        rows = [self._summary[path] for path in images]
        write_summary(self.plan.folder / OBJECT_SUMMARY, rows, summary_columns(self.classes, self.plan.microns_per_pixel))
        return self.count
