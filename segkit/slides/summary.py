"""One table of slides, a row each: ``segkit infer``'s ``slides.csv`` and a cohort's summary.

Rows are what :meth:`segkit.engine.slide_infer.SlideResult.summary_row` gives (a cohort adds its
``status`` and ``reason`` columns); the columns are the union of the rows' keys in first-seen
order, so slides with different classes of nuclei share one table. Written atomically as CSV, and
as Parquet beside it when pyarrow is installed.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

from segkit.durable import replace_atomically
from segkit.optional import parquet_available

#: the slide table of an output folder
SUMMARY_NAME = "slides.csv"


def summary_columns(rows: Sequence[Mapping[str, object]]) -> list[str]:
    """Every key of ``rows``, in the order first seen."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    return list(columns)


def write_summary(path: Path, rows: Sequence[Mapping[str, object]]) -> list[Path]:
    """``rows`` as CSV at ``path`` (``.csv``) and as Parquet beside it when pyarrow imports; the files written."""
    columns = summary_columns(rows)

    def write_csv(temporary: Path) -> None:
        with temporary.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, columns, restval="")
            writer.writeheader()
            writer.writerows(rows)

    replace_atomically(path, write_csv)
    written = [path]
    if parquet_available():
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist([{column: row.get(column) for column in columns} for row in rows])
        parquet = path.with_suffix(".parquet")
        replace_atomically(parquet, lambda temporary: pq.write_table(table, temporary))
        written.append(parquet)
    return written
