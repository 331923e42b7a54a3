"""Getting a Dask client: a LocalCluster on this machine, or a running scheduler's address.

Dask stays an optional extra (`pip install 'metta-numba[dist]'`): dask.distributed brings a
dozen packages (tornado, msgpack, cloudpickle, ...) that a single-machine user, who runs
programs and queries KBs in one process, never needs. Only `batch` and the `--workers` /
`--scheduler` options of `snapshot build` import it, and they say what to install.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

DASK_MISSING = (
    "Dask is not installed; `batch` and distributed builds need it: pip install 'metta-numba[dist]' "
    "(or conda install dask distributed)"
)


class DaskMissingError(RuntimeError):
    """dask.distributed cannot be imported."""


def _distributed():
    try:
        import dask.distributed as distributed
    except ImportError:
        raise DaskMissingError(DASK_MISSING) from None
    return distributed


@contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None) -> Iterator[object]:
    """A Client of the scheduler at `scheduler`, or of a new LocalCluster of `workers` worker
    processes (default: one per core), closed on exit."""
    distributed = _distributed()
    cluster = None
    if scheduler:
        client = distributed.Client(scheduler)
    else:
        n = workers or os.cpu_count() or 1
        cluster = distributed.LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
        client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def worker_addresses(client) -> list[str]:
    """The workers connected now, sorted (workers of an adaptive cluster come and go)."""
    return sorted(client.scheduler_info().get("workers", {}))
