"""`--runner direct` is Beam's local FnApiRunner, reached without Beam's Prism
attempt (pipelines/local_runner.py): no download try, nothing left in the temp
dir, the run's options in Beam's own worker processes."""
import logging
import os
import shutil
import subprocess
import sys

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.options.value_provider import RuntimeValueProvider
from apache_beam.testing.util import assert_that, equal_to

from pipelines.runner import DIRECT_RUNNER, parallel_slots, pipeline_options

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "sample_data", "witness")
REFS = [f"--registry={SAMPLE}/registry.csv", f"--denylist={SAMPLE}/denylist.csv", f"--entropy={SAMPLE}/entropy.jsonl"]


def _env_with_tmpdir(tmpdir) -> dict:
    os.makedirs(tmpdir)
    return {**os.environ, "TMPDIR": str(tmpdir)}


def test_a_batch_run_leaves_nothing_in_the_temp_dir(tmp_path):
    tmpdir = tmp_path / "tmp"
    r = subprocess.run([sys.executable, "-m", "pipelines.cli", "batch", "witness",
                        f"--beacons={SAMPLE}/beacons-*", f"--witnesses={SAMPLE}/witnesses-*", *REFS,
                        f"--out={tmp_path / 'out'}", "--now=2026-11-21T00:00:00Z"],
                       cwd=ROOT, env=_env_with_tmpdir(tmpdir), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert os.listdir(tmpdir) == []


def test_a_stream_of_micro_batches_leaves_nothing_in_the_temp_dir(tmp_path):
    """A streaming process runs one Beam pipeline per micro-batch, for days:
    Beam's DirectRunner left three folders per pipeline."""
    landing = tmp_path / "landing"
    landing.mkdir()
    for name in sorted(os.listdir(SAMPLE)):
        if name.startswith(("beacons-", "witnesses-")):
            shutil.copy(os.path.join(SAMPLE, name), landing / name)
    tmpdir = tmp_path / "tmp"
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "pipelines.cli", "stream", f"--beacons={landing}/beacons-*",
                        f"--witnesses={landing}/witnesses-*", *REFS, f"--out={out}",
                        "--now=2026-11-21T00:00:00Z", "--poll=0.05s", "--batch-files=2", "--idle-timeout=0.5s"],
                       cwd=ROOT, env=_env_with_tmpdir(tmpdir), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(os.listdir(out / "_runs")) >= 3  # several pipelines ran
    assert os.listdir(tmpdir) == []


def test_direct_never_tries_prism(caplog):
    caplog.set_level(logging.INFO, logger="apache_beam")  # CLI tests in this process quiet it
    with beam.Pipeline(options=pipeline_options([])) as p:
        assert_that(p | beam.Create([1, 2, 3]) | beam.Map(lambda x: x * 2), equal_to([2, 4, 6]))
    messages = [r.getMessage() for r in caplog.records]
    assert messages, "Beam logged nothing at INFO: the check below would prove nothing"
    assert not [m for m in messages if "prism" in m.lower()]


def test_every_spelling_of_direct_is_the_local_engine():
    for args in ([], ["--runner=direct"], ["--runner=DirectRunner"]):
        opts = pipeline_options(args)
        assert opts.view_as(StandardOptions).runner == DIRECT_RUNNER
        assert parallel_slots(opts) == (2, False)
    assert parallel_slots(pipeline_options(["--direct_num_workers=1"])) == (1, False)


def test_beams_worker_processes_get_the_run_options():
    """In `multi_processing` mode Beam starts SDK worker processes that set up
    `FileSystems` from the options they are provisioned with: an object-store
    endpoint given on the command line must reach them."""
    class OptionSeenByWorker(beam.DoFn):  # local, so pickled by value: workers can't import tests/
        def process(self, _):
            yield os.getpid(), RuntimeValueProvider.runtime_options.get("s3_endpoint_url")

    endpoint = "http://objects.example.invalid:9000"
    opts = pipeline_options(["--direct_running_mode=multi_processing", "--direct_num_workers=1",
                             f"--s3_endpoint_url={endpoint}"])
    with beam.Pipeline(options=opts) as p:
        seen = p | beam.Create([0]) | beam.ParDo(OptionSeenByWorker())
        driver = os.getpid()
        assert_that(seen | beam.Map(lambda pv: (pv[0] != driver, pv[1])), equal_to([(True, endpoint)]))


def test_beams_worker_processes_print_nothing_on_a_good_run(tmp_path):
    """`multi_processing` workers are Beam's worker started quiet
    (`pipelines.sdk_worker`): Beam's bare worker printed its import warnings
    and ~20 INFO lines per process to the terminal of a run that succeeded."""
    class WorkerCommand(beam.DoFn):
        def process(self, _):
            yield os.getpid(), os.path.basename(sys.argv[0])

    opts = pipeline_options(["--direct_running_mode=multi_processing", "--direct_num_workers=1"])
    with beam.Pipeline(options=opts) as p:
        seen = p | beam.Create([0]) | beam.ParDo(WorkerCommand())
        driver = os.getpid()
        assert_that(seen | beam.Map(lambda pc: (pc[0] != driver, pc[1])), equal_to([(True, "sdk_worker.py")]))

    r = subprocess.run([sys.executable, "-m", "pipelines.cli", "batch", "witness",
                        f"--beacons={SAMPLE}/beacons-*", f"--witnesses={SAMPLE}/witnesses-*", *REFS,
                        f"--out={tmp_path / 'out'}", "--now=2026-11-21T00:00:00Z",
                        "--direct_num_workers=2", "--direct_running_mode=multi_processing"],
                       cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert "valid" in r.stdout  # the summary table was printed
    assert r.stderr == ""


def test_small_inputs_get_one_in_memory_worker_unless_told():
    """A stream micro-batch of a few files runs on one in-memory worker (two
    threads cost more than they save there); larger inputs and any explicit
    --direct_num_workers keep their setting."""
    from apache_beam.options.pipeline_options import DirectOptions
    from pipelines.runner import SMALL_INPUT_BYTES

    def mode(args, n):
        d = pipeline_options(args, input_bytes=n).view_as(DirectOptions)
        return d.direct_num_workers, d.direct_running_mode
    assert mode([], 100_000) == (1, "in_memory")
    assert mode([], SMALL_INPUT_BYTES) == (2, "multi_threading")
    assert mode([], None) == (2, "multi_threading")
    assert mode(["--direct_num_workers=2", "--direct_running_mode=multi_threading"], 100) == (2, "multi_threading")
    assert parallel_slots(pipeline_options([], input_bytes=100)) == (1, False)



@pytest.mark.parametrize("mode", ["in_memory", "multi_threading", "multi_processing"])
def test_bundles_run_with_the_short_state_sampler_period(mode):
    """A bundle ends by joining Beam's state-sampler thread, which sleeps a
    whole period between samples (200 ms by default): every stage's end
    waited for it. In every running mode, bundles get SAMPLER_PERIOD_MS."""
    from pipelines.local_runner import SAMPLER_PERIOD_MS

    class SamplerPeriod(beam.DoFn):  # local, so pickled by value: workers can't import tests/
        def process(self, _):
            from apache_beam.runners.worker import statesampler
            yield statesampler.get_current_tracker().sampling_period_ms

    opts = pipeline_options([f"--direct_running_mode={mode}", "--direct_num_workers=2"])
    with beam.Pipeline(options=opts) as p:
        seen = p | beam.Create([0, 1]) | beam.ParDo(SamplerPeriod())
        assert_that(seen, equal_to([SAMPLER_PERIOD_MS, SAMPLER_PERIOD_MS]))
