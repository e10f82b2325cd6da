"""`--runner direct`: Beam's local batch engine, always the same one, offline.

Beam's `DirectRunner` (2.77) first tries the Prism runner, which downloads a
Go binary from GitHub at run time, and falls back to the FnApiRunner only when
that fails. On this offline machine every run paid the failed download and
left three empty folders in the temp dir (`beam-temp*` and two `tmp*` from
the job server it started). A streaming process that runs a micro-batch every
few seconds fills `/tmp` with them, and on a connected host the same command
would quietly run on a different engine with different parallelism from the
one the tests and benchmarks measure. hexsieve's batch and micro-batch
pipelines use nothing the FnApiRunner lacks (no TestStream, Pub/Sub,
real-time timers or combiners over deferred side inputs), so `direct` means
the FnApiRunner, set up the way the DirectRunner sets it up after its
fallback: the run's options go into the provision info, where Beam's SDK
workers read them (`multi_processing` mode starts such workers; their
`FileSystems` need the options for object stores). Prism stays available
as `--runner=PrismRunner` for whoever wants it.

In `multi_processing` mode the worker processes run `pipelines.sdk_worker`
(Beam's worker, started quiet) instead of Beam's bare worker module, whose
import warnings and start-up log went to the terminal of every run.
"""
from __future__ import annotations

import copy
import sys

from apache_beam.options.pipeline_options import DirectOptions
from apache_beam.runners.runner import PipelineRunner

# A running mode the FnApiRunner has no branch for, so it keeps the
# environment it was constructed with (ours) instead of building its own.
_OWN_ENVIRONMENT = "hexsieve_subprocess"

# How often Beam's SDK harness samples a bundle's execution state. Its
# sampler thread sleeps up to 200 ms between samples, and every bundle ends
# by joining that thread (`StateSampler.stop`), so each worker's last bundle
# of a stage waited for it, and the stage with it. Measured on the 2M-record
# benchmark (2 threads, 12 bundles a run): 0.44-0.84 s of worker time spent in
# `stop` per run with 200 ms, 0.06-0.08 s with 20 ms. The samples only feed
# Beam's per-step msec counters; a thread waking 50 times a second per
# running bundle costs nothing measurable.
SAMPLER_PERIOD_MS = 20


def use_short_sampler_period() -> None:
    """Make SAMPLER_PERIOD_MS the period of the bundles this process runs.
    Beam takes the period as a constructor default (no option sets it), so
    the default is replaced; left alone if a Beam version changes the
    constructor."""
    import inspect

    from apache_beam.runners.worker import statesampler
    init = statesampler.StateSampler.__init__
    params = list(inspect.signature(init).parameters)
    if params[-1:] == ["sampling_period_ms"] and init.__defaults__ and len(init.__defaults__) == 1:
        init.__defaults__ = (SAMPLER_PERIOD_MS,)


class LocalDirectRunner(PipelineRunner):
    """The FnApiRunner with the run's options provisioned, no Prism attempt."""

    def is_fnapi_compatible(self) -> bool:
        return True

    def run_pipeline(self, pipeline, options):
        from apache_beam.portability.api import beam_provision_api_pb2
        from apache_beam.runners.portability.fn_api_runner import fn_runner
        from apache_beam.runners.portability.portable_runner import JobServiceHandle
        from apache_beam.transforms import environments

        use_short_sampler_period()  # bundles of in-process workers; subprocess workers: pipelines.sdk_worker
        encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
        info = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
        environment = None
        if options.view_as(DirectOptions).direct_running_mode == "multi_processing":
            environment = environments.SubprocessSDKEnvironment.from_command_string(
                command_string=f"{sys.executable} -m pipelines.sdk_worker")
            options = copy.deepcopy(options)
            options.view_as(DirectOptions).direct_running_mode = _OWN_ENVIRONMENT
        runner = fn_runner.FnApiRunner(default_environment=environment, provision_info=info)
        return runner.run_pipeline(pipeline, options)
