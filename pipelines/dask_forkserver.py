"""Imported once by the fork server that local Dask workers are forked from.

`hexsieve … --runner dask --dask-workers N` starts its workers from a
`multiprocessing` fork server (see `pipelines.runner._start_fork_server`).
The server imports this module when it starts, so Beam, the DaskRunner's
task code and hexsieve's DoFn modules are imported once, and every worker
forked from it starts with them already loaded. Spawned workers each paid
~0.8 s of CPU for these imports, on the same cores as the driver's own
start-up (2M-record benchmark, 2 workers: first row read at ~2.1 s with
spawned workers, ~1.5 s forked).

The import is the point of this module: it quiets Beam's import-time
warnings (workers share the terminal of the `hexsieve` command), leaves
Ctrl-C to the driver, and imports.

Ctrl-C reaches every process of the terminal's process group. The driver
answers it by closing the cluster and committing nothing; workers that also
took it each printed a KeyboardInterrupt traceback. The fork server hands
its SIGINT disposition to the workers it forks, so they ignore it here.

The collector is off while it imports, and what the imports made is frozen
afterwards (see pipelines/startup_gc.py): forked workers inherit that, so
their collections never walk Beam's and Dask's ~200k module objects.
"""
import gc
import signal

gc.disable()

from pipelines import beam_import  # noqa: E402

beam_import.install(for_good=True)  # a local cluster's workers run only hexsieve's pipelines

import distributed  # noqa: E402,F401  (first: its logging set-up, then dask_setup's quieter one)

from pipelines.dask_worker import dask_setup  # noqa: E402

signal.signal(signal.SIGINT, signal.SIG_IGN)
dask_setup()

import apache_beam.runners.dask.dask_runner  # noqa: E402,F401  (the DaskRunner's task code)
import pyarrow.acero  # noqa: E402,F401  (Table.group_by, for receipt counts)
import polars  # noqa: E402,F401  (record hashes: transforms.digests)
import polars_hash  # noqa: E402,F401

import transforms.beam.fuse  # noqa: E402,F401  (the DoFns and steps tasks unpickle)
import transforms.beam.imagery  # noqa: E402,F401
import transforms.beam.read  # noqa: E402,F401
import transforms.beam.route  # noqa: E402,F401
import transforms.beam.sensor  # noqa: E402,F401
import transforms.beam.spread  # noqa: E402,F401
import transforms.beam.witness  # noqa: E402,F401
import transforms.beam.write  # noqa: E402,F401

gc.freeze()
gc.enable()
