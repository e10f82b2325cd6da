"""Beam DoFns/PTransforms around the Beam-free logic. Elements are Arrow
tables (or small references to staged Arrow files), never per-record dicts."""
