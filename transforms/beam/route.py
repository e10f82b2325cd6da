"""Route a stream of (tag, value) pairs into one PCollection per tag.

Beam's multi-output ParDo (`with_outputs`) is the usual tool, but the
DaskRunner hands *every* output of such a ParDo to every consumer, so
hexsieve never relies on it: a step emits (tag, value) and `by_tag` selects.
"""
from __future__ import annotations

import apache_beam as beam


class _Select(beam.DoFn):
    def __init__(self, tag: str):
        self.tag = tag

    def process(self, element):
        tag, value = element
        if tag == self.tag:
            yield value


def by_tag(pcoll, tags, label: str, value_type=None) -> dict:
    """value_type: element type of the selected values (e.g. pa.Table), so
    Beam picks a matching coder."""
    out = {}
    for t in tags:
        step = beam.ParDo(_Select(t))
        if value_type is not None:
            step = step.with_output_types(value_type)
        out[t] = pcoll | f"{label}[{t}]" >> step
    return out
