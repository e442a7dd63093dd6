"""Where a cohort runs (``--scheduler``): a local cluster, a running scheduler, or a batch system's jobs.

- ``local`` starts a ``distributed.LocalCluster`` of ``--workers`` processes on this machine, one
  thread each (a slide is one task; the model's own threads do the parallel work).
- ``tcp://host:port`` (or ``tls://``) connects to a scheduler the user started (``dask scheduler``),
  with whatever workers joined it; one that does not answer is one line within seconds.
- ``slurm``, ``pbs``, ``lsf``, ``sge`` start a ``dask-jobqueue`` cluster of ``--workers`` jobs, configured
  the ecosystem's way, by Dask's configuration (``~/.config/dask/jobqueue.yaml``: queue, account,
  cores, memory, walltime); untested here, where no batch system runs.

How often a task is tried again is Dask's too: ``retries`` for an exception, and the scheduler's
``distributed.scheduler.allowed-failures`` for a worker that died with the slide (set here for a
local cluster; a running scheduler keeps its own setting).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from segkit.errors import DataError, PluginError

#: seconds a scheduler address has to answer
CONNECT_TIMEOUT = 5
#: how many times a slide is tried again after its task failed or its worker died
RETRIES = 2
#: the batch systems dask-jobqueue drives, by the name ``--scheduler`` takes
JOB_QUEUES = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "lsf": "LSFCluster", "sge": "SGECluster"}
_ADDRESS_SCHEMES = ("tcp://", "tls://")
INSTALL_HINT = 'pip install "segkit[cluster]"'


@dataclass(frozen=True)
class Scheduler:
    """What ``--scheduler`` named: ``kind`` is ``local``, ``address`` or a key of :data:`JOB_QUEUES`."""

    kind: str
    address: str = ""

    def describe(self, workers: int) -> str:
        if self.kind == "local":
            return f"a local cluster of {workers} worker process(es)"
        if self.kind == "address":
            return f"the scheduler at {self.address}"
        return f"{workers} {self.kind} job(s) (dask-jobqueue)"


def parse_scheduler(text: str) -> Scheduler:
    value = text.strip()
    if value == "local":
        return Scheduler("local")
    if value.startswith(_ADDRESS_SCHEMES) and len(value) > len("tcp://"):
        return Scheduler("address", value)
    if value.lower() in JOB_QUEUES:
        return Scheduler(value.lower())
    raise DataError(f"--scheduler: {text!r} is not local, a scheduler address (tcp://host:8786) or one of "
                    f"{', '.join(JOB_QUEUES)}")


def require_distributed(kind: str = "local") -> None:
    """The cluster extra is installed (dask-jobqueue too for a batch system), or one line saying how."""
    try:
        import distributed  # noqa: F401
        if kind in JOB_QUEUES:
            import dask_jobqueue  # noqa: F401
    except ImportError as missing:
        raise PluginError(f"--scheduler: running a cohort needs {missing.name}, which is not installed "
                          f"({INSTALL_HINT})") from None


@contextmanager
def cohort_client(scheduler: Scheduler, workers: int) -> Iterator[Any]:
    """A ``distributed.Client`` of ``scheduler``; the cluster it started (if any) is closed afterwards."""
    require_distributed(scheduler.kind)
    import dask
    from distributed import Client

    with dask.config.set({"distributed.scheduler.allowed-failures": RETRIES}):
        if scheduler.kind == "address":
            client = _connected(scheduler.address)
            with client:
                yield client
            return
        with _started_cluster(scheduler, workers) as cluster, Client(cluster) as client:
            yield client


def _connected(address: str) -> Any:
    from distributed import Client

    try:
        return Client(address, timeout=f"{CONNECT_TIMEOUT}s")
    except (OSError, TimeoutError) as failure:
        detail = " ".join(str(failure).split())[:160]
        raise DataError(f"--scheduler: no Dask scheduler answered at {address} within {CONNECT_TIMEOUT} s ({detail}); "
                        "start one with `dask scheduler` and workers with `dask worker ADDRESS`, or check the "
                        "address and port") from None


@contextmanager
def _started_cluster(scheduler: Scheduler, workers: int) -> Iterator[Any]:
    if scheduler.kind == "local":
        from distributed import LocalCluster

        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.ERROR)
    else:
        import dask_jobqueue

        cluster = getattr(dask_jobqueue, JOB_QUEUES[scheduler.kind])()
        cluster.scale(jobs=workers)
    with cluster:
        yield cluster
