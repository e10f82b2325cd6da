"""Dask worker preload: keep Beam's import chatter out of the user's terminal.

A local cluster's workers share the terminal of the `hexsieve` command, and
importing Beam logs "apitools not found…" warnings on the root logger.

(Importing Beam here in a background thread, to overlap it with the driver's
start-up, saved about 0.1 s but raced with task unpickling: "cannot import
name … from partially initialized module" in 1 of ~15 runs. Not done.)

Use it on any cluster: `dask worker --preload pipelines.dask_worker SCHEDULER`.
"""
from __future__ import annotations

import logging
import warnings


def dask_setup(worker=None) -> None:
    logging.getLogger().setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="apache_beam")
