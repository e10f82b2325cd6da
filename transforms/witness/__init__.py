"""Helium proof-of-coverage: beacon and witness verification."""
