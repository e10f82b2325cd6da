"""Runner choice and Beam options.

`--runner direct|dask` is hexsieve's short form; raw Beam flags pass through
untouched. The DaskRunner is only registered under its full dotted name, so the
short names are mapped here.

Beam is imported only inside the functions that need it: the CLI starts a
local cluster before the driver imports Beam (see `_local_cluster`).
"""
from __future__ import annotations

import contextlib

DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
# Beam's DirectRunner tries Prism (a binary download) before its local engine;
# `direct` is that local engine without the attempt (see local_runner.py).
DIRECT_RUNNER = "pipelines.local_runner.LocalDirectRunner"
ALIASES = {"dask": DASK_RUNNER, "daskrunner": DASK_RUNNER, "direct": DIRECT_RUNNER,
           "directrunner": DIRECT_RUNNER}


def normalise_runner_flags(args: list[str]) -> list[str]:
    out = []
    for a in args:
        if a.startswith("--runner="):
            name = a.split("=", 1)[1]
            a = f"--runner={ALIASES.get(name.lower(), name)}"
        out.append(a)
    return out


# Below this much input, a DirectRunner run left at its default gets one
# in-memory worker instead of two threads (see pipeline_options).
SMALL_INPUT_BYTES = 2 << 20


def pipeline_options(beam_args: list[str], n_tasks: int = 1, input_bytes: int | None = None):
    """PipelineOptions for the run (Beam is imported here, not with this module:
    the CLI starts a local cluster first).

    `input_bytes` under SMALL_INPUT_BYTES (a stream's micro-batch) makes the
    DirectRunner's default one in-memory worker: starting two worker threads
    cost more than they saved. A micro-batch of one witness file pair (~100 KB)
    ran its Beam pipeline in 0.22 s instead of 0.35 s; at 8.9 MB of input
    two threads were already faster (0.47 s against 0.50 s)."""
    from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

    from pipelines.beam_options import ClusterOptions
    args = normalise_runner_flags(list(beam_args))
    opts = PipelineOptions(args)
    std = opts.view_as(StandardOptions)
    if std.runner is None:
        std.runner = DIRECT_RUNNER
    if "Dask" in str(std.runner):
        from apache_beam.runners.dask.dask_runner import DaskOptions  # noqa: F401 (registers flags)
        d = opts.get_all_options()
        if not d.get("npartitions") and not d.get("partition_size"):
            # Create() packs 128 items per Dask partition by default, so one
            # task would read every file. One partition per file was worse
            # too: every ParDo and shuffle multiplies tasks, and the scheduler
            # competes with the workers (2M-row benchmark, 2 workers: 24
            # partitions 73.6k rows/s, 1.6 GB; 4 or 8 partitions 85.7k, 1.1 GB).
            workers = opts.view_as(ClusterOptions).hexsieve_dask_workers or _dask_workers(d.get("address"))
            parts = min(max(1, n_tasks), 4 * workers)
            opts = PipelineOptions(args + [f"--dask_npartitions={parts}"])
    else:
        direct = opts.view_as(DirectOptions)
        if not any(a.startswith("--direct_num_workers") for a in args):
            small = input_bytes is not None and input_bytes < SMALL_INPUT_BYTES
            direct.direct_num_workers = 1 if small else 2
            direct.direct_running_mode = "in_memory" if small else "multi_threading"
    return opts


def parallel_slots(opts) -> tuple[int, bool]:
    """(slots, by_partition) for spreading input files (see
    transforms/beam/spread.py): the DirectRunner's static workers, the
    DaskRunner's partitions, or (0, False) for runners that balance by themselves."""
    from apache_beam.options.pipeline_options import DirectOptions, StandardOptions
    runner = str(opts.view_as(StandardOptions).runner)
    if "Dask" in runner:
        parts = int(opts.get_all_options().get("npartitions") or 0)
        return (parts, True) if parts else (0, False)
    if runner not in (DIRECT_RUNNER, "SwitchingDirectRunner", "BundleBasedDirectRunner"):
        return 0, False
    n = opts.view_as(DirectOptions).direct_num_workers
    if n == 0:  # Beam's "one per CPU"
        import os
        n = os.cpu_count() or 1
    return max(1, n or 1), False


@contextlib.contextmanager
def new_pipeline(opts):
    """A Beam Pipeline whose local temp folder goes if building its graph
    fails. Beam makes `beam-pipeline-temp*` in `Pipeline.__init__` and
    removes it only at the end of `run`; a graph step that raises (a
    reference table that cannot be staged: disk full) left one in the
    temp dir per failed run."""
    import shutil

    import apache_beam as beam
    p = beam.Pipeline(options=opts)
    try:
        yield p
    except BaseException:
        shutil.rmtree(p.local_tempdir, ignore_errors=True)
        raise


def _dask_workers(address: str | None) -> int:
    """Workers of the target cluster (the local CPU count when Beam will start its own)."""
    import os
    if not address:
        return os.cpu_count() or 1
    try:
        from dask.distributed import Client
        with Client(address, timeout=10) as c:
            return max(1, len(c.scheduler_info().get("workers", {})))
    except Exception:  # unreachable now: the run itself will report it
        return os.cpu_count() or 1


def runner_name(opts) -> str:
    from apache_beam.options.pipeline_options import StandardOptions
    r = str(opts.view_as(StandardOptions).runner)
    return "dask" if "Dask" in r else ("direct" if "Direct" in r else r)


# Modules every local worker preloads, and how long the driver waits for its
# local workers to join before it gives up (module constants, not state: the
# tests point them at a failing preload).
WORKER_PRELOAD = ["pipelines.dask_worker"]
WORKER_START_TIMEOUT_S = 120.0
# What the fork server local workers are forked from imports once (see _start_fork_server).
FORK_SERVER_PRELOAD = ["pipelines.dask_forkserver", "distributed"]


# How often the local scheduler and workers wake for housekeeping; Dask's
# defaults (event-loop tick 20 ms, system monitor 500 ms, worker memory check
# 100 ms) are for long-lived clusters with a dashboard. Each wake-up takes the
# GIL from the task thread (workers) and from graph submission (driver). On
# the 2M-record run, 2 workers, alternating runs: 8.4–8.7 s instead of
# 8.9–9.3 s, the driver 1.1–1.2 CPU-s instead of 1.3–1.4 (1 worker: no
# change, 14.1 s). Work stealing stays on: off, it gained nothing here. A
# memory check each second is still many per run, and a worker's limit (RAM
# ÷ workers) is far above what one holds (~0.55 GB at 2M records).
HOUSEKEEPING_INTERVALS = {"distributed.admin.tick.interval": "200ms",
                          "distributed.admin.system-monitor.interval": "2s",
                          "distributed.worker.memory.monitor-interval": "1s"}


class ClusterError(Exception):
    """The local Dask cluster could not run the job (its workers did not start)."""


@contextlib.contextmanager
def _local_cluster(n: int):
    """A local cluster of n one-thread worker processes; yields the scheduler address.

    The scheduler starts now and the workers in the background: their start
    (the fork server's imports, see _start_fork_server) overlaps the driver's own
    imports, reference loading and graph building, and tasks queue at the
    scheduler until workers join (2M-record run, 2 workers: about 1 s less
    start-up). A watcher closes the cluster if the workers have not all joined
    within WORKER_START_TIMEOUT_S, so a worker that cannot start fails the run
    with one line instead of leaving it waiting forever.
    """
    import logging
    import threading

    worker_env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                  "POLARS_MAX_THREADS": "1"}
    _start_fork_server(worker_env)
    import dask
    from dask.distributed import LocalCluster

    from transforms.errors import first_line
    # Workers inherit this config: keeps their Beam import chatter out of the terminal.
    # Worker profiling off (it samples the task thread's stack every
    # 10 ms, holding the GIL). No MALLOC_TRIM_THRESHOLD_ (Dask sets
    # 65536 by default): setting it at all freezes glibc's mmap
    # threshold at 128 KiB, so every Arrow buffer above that is a
    # fresh mmap, page-faulted in and unmapped on free. Measured on
    # the 2M-record run, 1 worker: 8.5 s of system time instead of
    # 3.1 s, 28.0 s wall instead of 22.2 s. One Arrow/BLAS thread
    # per worker, as Dask sets by default: a worker is one core.
    # The preload quiets Beam's import warnings in the workers.
    dask.config.set({"distributed.worker.daemon": False,
                     "distributed.worker.profile.enabled": False,
                     **HOUSEKEEPING_INTERVALS,
                     "distributed.nanny.pre-spawn-environ": worker_env,
                     "logging": {"version": 1, "disable_existing_loggers": False,
                                 "root": {"level": "ERROR"},
                                 "loggers": {"distributed": {"level": "ERROR"}}}})
    for name in ("distributed", "distributed.scheduler", "distributed.nanny", "distributed.core",
                 "distributed.http.proxy", "distributed.client"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    with LocalCluster(n_workers=0, threads_per_worker=1, processes=True, preload=list(WORKER_PRELOAD),
                      dashboard_address=":0", silence_logs=logging.CRITICAL) as cluster:
        cluster.scale(n)
        failed: list[str] = []

        def watch():
            try:
                cluster.wait_for_workers(n, timeout=WORKER_START_TIMEOUT_S)
            except Exception as e:  # timed out, or the cluster is closing anyway
                failed.append(first_line(e))
                cluster.close()

        threading.Thread(target=watch, name="hexsieve-dask-start", daemon=True).start()
        try:
            yield cluster.scheduler_address
        except Exception:
            if failed:
                raise ClusterError(f"the local Dask workers did not start ({failed[0]}); "
                                   f"nothing was committed") from None
            raise


def _start_fork_server(worker_env: dict) -> None:
    """Have the local workers forked from a fork server that imports Beam once.

    Spawned workers each started a fresh interpreter and imported Dask, Beam
    and hexsieve's DoFns (~0.8 s of CPU each) while the driver imported Beam
    too: three imports on a 2-core machine. A `multiprocessing` fork server
    is a fresh single-threaded process (so forking it is safe), started
    before the driver even imports Dask so its imports overlap the driver's;
    it imports `pipelines.dask_forkserver` and every worker is a fork of it.
    Measured on the 2M-record benchmark, 2 workers, alternating runs: first
    row read at 1.4–1.5 s instead of 2.0–2.1 s, runs of 11.5–11.9 s instead
    of 12.2–13.0 s.

    The server's environment is the workers' (a fork server does not pass a
    later environment on), so the workers' variables are set first, as Dask's
    nanny sets them anyway. Where there is no fork server (Windows) workers
    are spawned as before."""
    import multiprocessing
    import os
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return
    import multiprocessing.forkserver
    os.environ.update(worker_env)
    multiprocessing.get_context("forkserver").set_forkserver_preload(list(FORK_SERVER_PRELOAD))
    # Started now (a no-op if it already runs), so the preload list Dask sets
    # when its nanny first asks for this context no longer applies.
    multiprocessing.forkserver.ensure_running()

    import dask
    dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"})


def runner_context(runner: str, dask_address: str | None, dask_workers: int | None, beam_args: list[str]):
    """Yield the Beam args for the chosen runner, owning a local dask cluster if asked."""

    @contextlib.contextmanager
    def ctx():
        args = list(beam_args)
        explicit = any(a.startswith("--runner") for a in args)
        if runner == "dask" or any("Dask" in a or a == "--runner=dask" for a in args if a.startswith("--runner")):
            if not explicit:
                args.append("--runner=dask")
            import dask
            # Beam's GroupByKey becomes Bag.groupby, which asks for the default
            # shuffle method and so imports dask.dataframe, pandas and parts of
            # SciPy (0.4 s of driver start-up) only to be told "p2p", which
            # bags do not support, and fall back to "tasks". Say "tasks" up front.
            dask.config.set({"dataframe.shuffle.method": "tasks"})
            if dask_address:
                args.append(f"--dask_client_address={dask_address}")
                yield args
                return
            if not any(a.startswith("--dask_client_address") for a in args):
                n = dask_workers or 2
                with _local_cluster(n) as address:
                    yield args + [f"--dask_client_address={address}", f"--hexsieve_dask_workers={n}"]
                return
            yield args
            return
        if dask_address or dask_workers:
            from transforms.errors import InputError
            raise InputError("--dask-address/--dask-workers need --runner dask")
        yield args
    return ctx()
