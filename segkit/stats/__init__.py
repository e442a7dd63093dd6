"""Dataset statistics behind ``segkit stats``: counts, class balance, near-duplicates, charts, tables.

Pure numpy/Pillow/matplotlib: importing this package never imports TensorFlow or Keras.
"""

from __future__ import annotations

from segkit.data.folders import SplitFolders
from segkit.stats.charts import write_charts
from segkit.stats.counts import collect_stats
from segkit.stats.dataset_stats import ClassCount, DatasetStats, Problem, Sample, SplitStats
from segkit.stats.near_duplicates import DEFAULT_THRESHOLD, DuplicateCluster, find_near_duplicates
from segkit.stats.tables import render

__all__ = [
    "DEFAULT_THRESHOLD",
    "ClassCount",
    "DatasetStats",
    "DuplicateCluster",
    "Problem",
    "Sample",
    "SplitFolders",
    "SplitStats",
    "collect_stats",
    "find_near_duplicates",
    "render",
    "write_charts",
]
