"""Dashcam imagery metadata: per-frame and per-sequence verification."""
