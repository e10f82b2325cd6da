"""Reusable, Beam-free validation logic (and the Beam transforms that wrap it)."""
