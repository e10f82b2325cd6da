"""`hexsieve batch imagery` and `hexsieve generate imagery` commands."""
from __future__ import annotations

import click

from pipelines.cli_batch import BEAM_CONTEXT, batch, common_options, generate, run_and_report


@batch.command("imagery", context_settings=BEAM_CONTEXT)
@click.option("--frames", multiple=True, required=True,
              help="frame metadata files: JSON Lines (.gz) or Parquet, hexsieve/Hivemapper/Mapillary "
                   "fields; path or glob (repeatable)")
@click.option("--devices", default=None,
              help="device registry: CSV, JSON Lines or Parquet (device_id, capture_mode, frame_spacing_m)")
@common_options
@click.pass_context
def batch_imagery(ctx, frames, devices, rules_file, **kw):
    """Verify dashcam / street-level imagery frames (Hivemapper / Mapillary rules).

    Extra arguments are Beam pipeline options, e.g. --direct_num_workers=2."""
    def job():  # imported here, after a local cluster has started (see run_and_report)
        from pipelines.imagery_batch import imagery_job
        return imagery_job(devices, rules_file)
    run_and_report(ctx, job, {"frame": list(frames)}, **kw)


@generate.command("imagery")
@click.option("--rows", type=int, default=3000, show_default=True, help="≈ frames to generate")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--files", type=int, default=3, show_default=True,
              help="dashcam upload files (≥ 2; the first .jsonl.gz), plus one Mapillary file")
@click.option("--out", required=True)
def generate_imagery(rows, seed, files, out):
    """Dashcam drives on the street grids of Manhattan, Barcelona and Chicago, a device registry and
    Mapillary image descriptions (day 2026-11-20; use --now 2026-11-21T00:00:00Z)."""
    from pipelines.generate.imagery import generate as gen
    if files < 2:
        raise click.BadParameter("must be ≥ 2", param_hint="--files")
    if rows < 500:
        raise click.BadParameter("must be ≥ 500", param_hint="--rows")
    c = gen(out, rows=rows, seed=seed, files=files)
    click.echo(f"wrote {c['frames']:,} frames of {c['devices']} dashcams and {c['mapillary_sequences']} Mapillary "
               f"sequences in {len(c['files'])} files ({c['split_drives']} drives split across files), "
               f"{c['malformed']} malformed lines, devices.csv to {out}")


commands: list = []  # the commands above attach to the shared `batch` / `generate` groups
