"""Dask worker preload: import Beam and hexsieve's transforms in the background.

A fresh worker process spends about a second importing Beam when its first
task is unpickled, and on a local cluster that second came after the driver
had finished building and submitting the pipeline. Started at worker start-up
in a daemon thread, the import overlaps with the driver's own work (loading
reference tables, building the graph); the first task then waits only for
whatever is left of it (Python's import lock makes the overlap safe).

Use it on any cluster: `dask worker --preload pipelines.dask_warm SCHEDULER`.
"""
from __future__ import annotations

import importlib
import threading

MODULES = ("apache_beam", "apache_beam.runners.dask.transform_evaluator", "pyarrow.parquet", "pyarrow.json",
           "transforms.beam.witness", "transforms.beam.imagery", "transforms.beam.sensor",
           "transforms.beam.write", "transforms.beam.fuse", "transforms.parse")


def _warm() -> None:
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # a missing optional module only loses the head start
            pass


def dask_setup(worker=None) -> None:
    threading.Thread(target=_warm, name="hexsieve-warm", daemon=True).start()
