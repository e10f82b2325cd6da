"""Synthetic, realistic input generators (sample data and benchmarks)."""
