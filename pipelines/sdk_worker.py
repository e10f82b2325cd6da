"""The command of Beam's SDK worker processes in `--direct_running_mode=multi_processing`.

It is Beam's own worker (`apache_beam.runners.worker.sdk_worker_main`), started
quiet. The FnApiRunner starts those processes with their own command line, so
the CLI's quieting (`pipelines.cli._quiet_beam`) never reached them. Each one
printed Beam's import warnings ("apitools not found…", logged through
`logging.warning`, which installs a stderr handler on the root logger on first
use) and then, until its options were loaded, its start-up log at INFO: ~20
lines per worker on the terminal of a run that succeeded.

Here the root logger gets its own stderr handler before Beam is imported
(at CRITICAL; ERROR with HEXSIEVE_DEBUG=1), so nothing installs another one.
Records at every level still go to the runner through the Fn API logging
handler the worker adds; the driver shows them at its own level (none of
Beam's in the CLI, whatever a library caller set).
"""
from __future__ import annotations

import logging
import os
import sys
import warnings


def main(argv: list[str]) -> None:
    handler = logging.StreamHandler(sys.stderr)
    # A failed step's error reaches the driver twice anyway (relayed log and
    # raised exception), so the worker itself prints only what may never get
    # there; HEXSIEVE_DEBUG=1 (inherited from the driver) prints its errors.
    handler.setLevel(logging.ERROR if os.environ.get("HEXSIEVE_DEBUG") else logging.CRITICAL)
    logging.getLogger().addHandler(handler)
    warnings.filterwarnings("ignore", module="apache_beam")
    from pipelines import stderr_filter
    stderr_filter.install()  # a failed bundle's traceback: the driver reports it in one line
    from pipelines import beam_import
    beam_import.install(for_good=True)  # as in the driver: a worker process imports Beam at its start
    from apache_beam.runners.worker import sdk_worker_main

    from pipelines.local_runner import use_short_sampler_period
    use_short_sampler_period()  # as in-process workers (see local_runner.SAMPLER_PERIOD_MS)
    sdk_worker_main.main(argv)


if __name__ == "__main__":
    main(sys.argv)
