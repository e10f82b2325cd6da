"""hexsieve's own Beam pipeline options.

Beam collects every `PipelineOptions` subclass that has been defined, so this
module is imported before options are parsed (`pipelines.runner.pipeline_options`).
Kept apart from `pipelines.runner` so the CLI can start a local cluster before
Beam itself is imported.
"""
from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions


class ClusterOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--hexsieve_dask_workers", type=int, default=None,
                            help="workers of a local Dask cluster that may still be starting: sizes the "
                                 "partitions without waiting for them to join")
