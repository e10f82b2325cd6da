"""Dask worker preload: quiet Beam's import chatter and import Beam up front.

A local cluster's workers share the terminal of the `hexsieve` command, and
importing Beam logs "apitools not found…" warnings on the root logger.

Beam is imported here, while the worker starts, rather than when the first
task is unpickled: a local cluster's workers start while the driver is still
importing and building the graph (see `pipelines.cli_batch.run_and_report`),
so the import overlaps it. Synchronously: importing in a background thread
raced with task unpickling ("cannot import name … from partially initialized
module" in 1 of ~15 runs).

Use it on any cluster: `dask worker --preload pipelines.dask_worker SCHEDULER`.
"""
from __future__ import annotations

import logging
import warnings


def dask_setup(worker=None) -> None:
    logging.getLogger().setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="apache_beam")
    from pipelines import beam_import
    beam_import.install()
    import apache_beam  # noqa: F401
