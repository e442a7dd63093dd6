"""Choosing a tf.distribute strategy from ``[train] strategy`` and knowing who the chief is."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from segkit.errors import ProjectError


@dataclass(frozen=True)
class Placement:
    """The strategy, how many replicas it runs, and whether this process writes the run's files."""

    strategy: Any
    name: str
    replicas: int
    chief: bool
    multi_worker: bool

    def describe(self) -> str:
        role = "" if not self.multi_worker else (", this process is the chief" if self.chief else ", this process is a worker")
        return f"strategy {self.name}: {self.replicas} replica(s){role}"


def _devices(tf: Any) -> list[str]:
    """All GPUs, else all (logical) CPUs: what a mirrored strategy should span."""
    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


def _chief(resolver: Any) -> bool:
    return is_chief_task(resolver.task_type, resolver.task_id, resolver.cluster_spec().jobs)


def is_chief_task(task_type: object, task_id: object, jobs: Any) -> bool:
    """The TF_CONFIG chief, or worker 0 in a cluster without one (TensorFlow's own convention)."""
    return task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in jobs)


def writes_run_folder(strategy: str) -> bool:
    """Whether this process writes the run folder: all but the non-chief workers of a multi-worker run.

    Read from TF_CONFIG without TensorFlow, so that only the chief claims and locks the folder
    (which may be shared by every worker); a TF_CONFIG that cannot be read is reported by
    :func:`place`, after the folder was claimed as for a chief.
    """
    if strategy != "multi_worker":
        return True
    try:
        config = json.loads(os.environ.get("TF_CONFIG", ""))
        task = config["task"]
        return is_chief_task(task.get("type"), task.get("index"), config["cluster"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return True


def _multi_worker(tf: Any, source: str) -> Placement:
    config = os.environ.get("TF_CONFIG", "")
    try:
        cluster = json.loads(config)["cluster"] if config else None
    except (ValueError, KeyError, TypeError):
        raise ProjectError(source, "train.strategy", "TF_CONFIG is not valid JSON with a 'cluster'",
                           "see the multi-worker recipe in docs/distributed.md") from None
    if not cluster:
        raise ProjectError(source, "train.strategy", "'multi_worker' needs the cluster in the TF_CONFIG "
                           "environment variable", "set TF_CONFIG on every worker, or use 'mirrored'")
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    return Placement(strategy, "multi_worker", strategy.num_replicas_in_sync, _chief(strategy.cluster_resolver), True)


def place(name: str, source: str) -> Placement:
    """The strategy for ``[train] strategy``; ``auto`` mirrors over several GPUs, else one device."""
    import tensorflow as tf

    if name == "multi_worker":
        return _multi_worker(tf, source)
    devices = _devices(tf)
    if name == "mirrored" or (name == "auto" and len(tf.config.list_logical_devices("GPU")) > 1):
        strategy = tf.distribute.MirroredStrategy(devices)
        return Placement(strategy, "mirrored", strategy.num_replicas_in_sync, True, False)
    strategy = tf.distribute.OneDeviceStrategy(devices[0]) if name == "one_device" else tf.distribute.get_strategy()
    return Placement(strategy, "one_device", 1, True, False)
