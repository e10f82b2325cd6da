"""Runnable hexsieve pipelines (batch, streaming) and the `hexsieve` CLI."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hexsieve")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.1.0"
