"""All file access goes through Beam `FileSystems`, so local paths, gs:// and
s3:// behave the same on every runner.

`FileSystems.open(...).read()` returns at most 16 MiB of a compressed stream,
so every reader here loops.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Iterator

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

READ_SIZE = 8 << 20


class InputError(Exception):
    """A user-facing problem with an input path: printed as one line, no traceback."""


@dataclass(frozen=True)
class FileInfo:
    uri: str
    size: int


def _has_glob(p: str) -> bool:
    return any(c in p for c in "*?[")


def match(patterns: list[str] | str, what: str = "input") -> list[FileInfo]:
    """Expand paths/globs; a pattern that matches nothing is an error, not an empty run."""
    if isinstance(patterns, str):
        patterns = [patterns]
    found: dict[str, FileInfo] = {}
    for pat in patterns:
        if not _has_glob(pat) and os.path.isdir(pat):
            raise InputError(f"{what}: {pat} is a directory; give a file or a glob like {pat.rstrip('/')}/*.jsonl")
        try:
            res = FileSystems.match([pat])[0]
        except Exception as e:  # Beam wraps backend errors in BeamIOError
            raise InputError(f"{what}: cannot list {pat}: {e}") from None
        files = [m for m in res.metadata_list if not os.path.basename(m.path).startswith((".", "_"))]
        if not files:
            kind = "glob matches no file" if _has_glob(pat) else "file not found"
            raise InputError(f"{what}: {kind}: {pat}")
        for m in files:
            found[m.path] = FileInfo(m.path, int(m.size_in_bytes))
    return sorted(found.values(), key=lambda f: f.uri)


def compression_of(uri: str) -> str:
    return CompressionTypes.detect_compression_type(uri)


def iter_bytes(uri: str, decompress: bool = True, size: int = READ_SIZE) -> Iterator[bytes]:
    ctype = CompressionTypes.AUTO if decompress else CompressionTypes.UNCOMPRESSED
    with FileSystems.open(uri, mime_type="application/octet-stream", compression_type=ctype) as f:
        while True:
            chunk = f.read(size)
            if not chunk:
                return
            yield chunk


def read_bytes(uri: str, decompress: bool = True) -> bytes:
    try:
        return b"".join(iter_bytes(uri, decompress))
    except FileNotFoundError:
        raise InputError(f"file not found: {uri}") from None
    except PermissionError:
        raise InputError(f"permission denied: {uri}") from None
    except OSError as e:
        if "BeamIOError" in type(e).__name__ or "No such file" in str(e):
            raise InputError(f"cannot read {uri}: {e}") from None
        raise


def sha256_file(uri: str) -> str:
    h = hashlib.sha256()
    for chunk in iter_bytes(uri, decompress=False):
        h.update(chunk)
    return h.hexdigest()


def write_bytes(uri: str, data: bytes) -> None:
    """Write then rename, so no reader ever sees a partial file at `uri`."""
    tmp = f"{uri}.tmp-{os.getpid()}"
    parent = os.path.dirname(uri)
    if parent and "://" not in uri:
        os.makedirs(parent, exist_ok=True)
    with FileSystems.create(tmp, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(data)
    if FileSystems.exists(uri):
        FileSystems.delete([uri])
    FileSystems.rename([tmp], [uri])


def join(*parts: str) -> str:
    return FileSystems.join(*parts)
