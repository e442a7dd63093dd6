"""One fold of a cross-validation as a project: its own run folder and a dataset whose splits are the fold's.

A fold's project is the project with ``output_dir`` set to ``fold_k`` and ``fold_splits`` to the
plan's stems; :func:`segkit.engine.components.open_dataset` then hands every command the
:class:`FoldSource`, so train, eval, resume and the run checks treat a fold as any other run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from segkit.cv.groups import pooled_pairs, source_splits
from segkit.cv.layout import fold_folder
from segkit.cv.plan import FoldPlan
from segkit.errors import DataError
from segkit.project import Project
from segkit.specs import CheckedSource, DatasetSource

if TYPE_CHECKING:
    from segkit.data.pairing import Pair

#: optional source methods a fold passes through unchanged (``check`` it narrows; ``folders`` it hides:
#: the folders hold the dataset's splits, not the fold's)
_PASSED_ON = frozenset({"notes", "instances", "partial_labels", "group"})


def fold_project(project: Project, plan: FoldPlan, fold: int) -> Project:
    """Fold ``fold`` of ``plan`` as a project of its own (0-based)."""
    return replace(project, output_dir=fold_folder(project.output_dir, fold), fold_splits=plan.folds[fold])


class FoldSource:
    """The dataset source with the fold's train/valid/test stems drawn from the pool of every split.

    Optional methods are the source's own (found by ``isinstance`` against the protocols), so a
    fold of a source without ``instances`` has none either.
    """

    def __init__(self, source: DatasetSource, splits: Mapping[str, tuple[str, ...]]) -> None:
        self._source = source
        self._splits = dict(splits)
        self._pool: dict[str, Pair] | None = None

    def _pooled(self) -> dict[str, Pair]:
        if self._pool is None:
            self._pool = pooled_pairs(self._source)
        return self._pool

    def pairs(self, split: str) -> list[Pair]:
        pool = self._pooled()
        missing = [stem for stem in self._splits.get(split, ()) if stem not in pool]
        if missing:
            raise DataError(f"dataset: image '{missing[0]}' of the fold plan is gone from the dataset; put it back, "
                            "or train every fold again with --overwrite")
        return [pool[stem] for stem in self._splits.get(split, ())]

    def load(self, pair: Pair) -> tuple[Any, Any]:
        return self._source.load(pair)

    def _check(self, split: str) -> list[Pair]:
        """Every split of the source checked (the fold draws on all of them), then the fold's pairs."""
        assert isinstance(self._source, CheckedSource)
        for name in source_splits(self._source):
            self._source.check(name)
        return self.pairs(split)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # looked up before __init__ ran (copy, pickle): no recursion into _source
            raise AttributeError(name)
        if name == "check" and isinstance(self._source, CheckedSource):
            return self._check
        if name in _PASSED_ON:
            return getattr(self._source, name)
        raise AttributeError(name)
