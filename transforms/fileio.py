"""All file access goes through Beam `FileSystems`, so local paths, gs:// and
s3:// behave the same on every runner.

`FileSystems.open(...).read()` returns at most 16 MiB of a compressed stream,
so every reader here loops.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import zlib
from dataclasses import dataclass
from typing import Iterator

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from isal import isal_zlib

from transforms.errors import InputError  # defined Beam-free there; callers may catch fileio.InputError

READ_SIZE = 8 << 20


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
    found: dict[object, FileInfo] = {}
    for pat in patterns:
        if not _has_glob(pat) and os.path.isdir(pat):
            raise InputError(f"{what}: {pat} is a directory; give a file or a glob like {pat.rstrip('/')}/*.jsonl")
        try:
            res = FileSystems.match([pat])[0]
        except Exception as e:  # Beam wraps backend errors in BeamIOError
            raise InputError(f"{what}: cannot list {pat}: {e}") from None
        # A glob skips files named "_…" or ".…" (writers' temporary files, by
        # the convention Spark, Beam and this tool follow); a file named
        # explicitly is read whatever its name.
        files = [m for m in res.metadata_list
                 if not _has_glob(pat) or not os.path.basename(m.path).startswith((".", "_"))]
        skipped = unlisted_entry(pat, {m.path for m in files})
        if skipped:
            raise InputError(f"{what}: {skipped[0]} {skipped[1]}; remove it or narrow the glob {pat}")
        if not files:
            kind = "glob matches no file" if _has_glob(pat) else "file not found"
            raise InputError(f"{what}: {kind}: {pat}")
        for m in files:
            key = identity(m.path)
            if key not in found:
                found[key] = FileInfo(m.path, int(m.size_in_bytes))
    return sorted(found.values(), key=lambda f: f.uri)


def unlisted_entry(pat: str, listed: set[str]) -> tuple[str, str] | None:
    """A local entry the glob `pat` names that Beam's match left out, and why.

    Beam's glob skips directories and broken symbolic links without a word;
    an input that silently vanishes from a run is the worst outcome, so the
    caller refuses the run naming it. Entries named "_…" or ".…" are skipped
    on purpose (writers' temporary files) and are not reported."""
    if "://" in pat or not _has_glob(pat):
        return None
    import glob
    for p in sorted(glob.glob(pat)):
        if p in listed or os.path.basename(p).startswith((".", "_")):
            continue
        if os.path.isfile(p):  # listed under another spelling
            continue
        return p, ("is a directory" if os.path.isdir(p) else
                   f"is a broken symbolic link (to {os.readlink(p)})" if os.path.islink(p) else
                   "cannot be listed")
    return None


def identity(uri: str) -> object:
    """What makes two spellings one file: device and inode for a local path
    ("x", "./x", "/abs/x", "d/../x" and symlinks to it are all read once, under
    the first spelling given), the URI itself on an object store."""
    if "://" in uri and not uri.startswith("file://"):
        return uri
    try:
        st = os.stat(uri.removeprefix("file://"))
    except OSError:
        return os.path.abspath(uri)
    return (st.st_dev, st.st_ino)


def compression_of(uri: str) -> str:
    return CompressionTypes.detect_compression_type(uri)


def iter_bytes(uri: str, decompress: bool = True, size: int = READ_SIZE) -> Iterator[bytes]:
    if decompress and compression_of(uri) == CompressionTypes.GZIP:
        yield from _coalesce(_iter_gunzip(uri, size), size)
        return
    ctype = CompressionTypes.AUTO if decompress else CompressionTypes.UNCOMPRESSED
    with FileSystems.open(uri, mime_type="application/octet-stream", compression_type=ctype) as f:
        while True:
            chunk = f.read(size)
            if not chunk:
                return
            yield chunk


def _coalesce(pieces: Iterator[bytes], size: int) -> Iterator[bytes]:
    """Join small decompressed pieces into chunks of about `size` bytes, so
    downstream parsing works on large batches, not on zlib's output pieces."""
    buf: list[bytes] = []
    n = 0
    try:
        for p in pieces:
            buf.append(p)
            n += len(p)
            if n >= size:
                yield b"".join(buf)
                buf, n = [], 0
    except (OSError, EOFError):
        if buf:  # a truncated stream: what was decoded before the cut still counts
            yield b"".join(buf)
        raise
    if buf:
        yield b"".join(buf)


# What the inflater raises on corrupt input (ISA-L's own error, and zlib's
# for its interface); _inflate turns both into OSError.
_GZIP_ERRORS = (zlib.error, isal_zlib.error)


def _iter_gunzip(uri: str, size: int) -> Iterator[bytes]:
    """Gzip decoding that notices truncation: Beam's reader stops quietly at a
    missing end-of-stream marker, which would drop the tail of a cut-off file
    without a trace. Handles multi-member files; output is bounded per step,
    so a compression bomb cannot exhaust memory.

    Inflated with ISA-L (python-isal, the zlib interface): 28 ms per 6.4 MB
    beacon file against 56 ms for zlib."""
    d = isal_zlib.decompressobj(wbits=31)
    fed = False  # the current member has received bytes but not ended
    pending = b""  # input read from the file and not yet given to a member
    with FileSystems.open(uri, mime_type="application/octet-stream",
                          compression_type=CompressionTypes.UNCOMPRESSED) as f:
        while True:
            if not pending:
                pending = f.read(READ_SIZE)
                if not pending:
                    break
            fed = True
            out = _inflate(d, pending, size)
            if out:
                yield out
            pending = d.unconsumed_tail
            # All input taken: output may still wait inside the inflater
            # (the last step filled `size` exactly), and the member may end there.
            while not pending and not d.eof:
                out = _inflate(d, b"", size)
                if not out:
                    break
                yield out
            if d.eof:
                # The bytes after this member start the next one. Checked after
                # every step, draining included: an ended inflater fed the next
                # read (the previous loop here) returned a member's tail twice.
                pending = d.unused_data
                d = isal_zlib.decompressobj(wbits=31)
                fed = False
    if fed:
        raise EOFError("compressed file ended before the end-of-stream marker (truncated gzip)")


def _inflate(d, data: bytes, size: int) -> bytes:
    try:
        return d.decompress(data, size)
    except _GZIP_ERRORS as e:
        raise OSError(f"not a valid gzip stream: {e}") from None


class _Pieces:
    """`readinto` over an iterator of bytes pieces (a decompressor's output,
    or a reader without `readinto`). An error raised after some bytes of a
    call were copied is held back until the next call, so the bytes decoded
    before a cut in a truncated stream still reach the caller."""

    def __init__(self, pieces: Iterator[bytes]):
        self._pieces = pieces
        self._cur = memoryview(b"")
        self._error: BaseException | None = None

    def readinto(self, out: memoryview) -> int:
        if self._error is not None:
            e, self._error = self._error, None
            raise e
        n = 0
        while n < len(out):
            if not len(self._cur):
                try:
                    piece = next(self._pieces, None)
                except Exception as e:
                    if not n:
                        raise
                    self._error = e
                    break
                if piece is None:
                    break
                self._cur = memoryview(piece)
                continue
            k = min(len(out) - n, len(self._cur))
            out[n:n + k] = self._cur[:k]
            self._cur = self._cur[k:]
            n += k
        return n


@contextlib.contextmanager
def open_input(uri: str, decompress: bool = True, size: int = READ_SIZE):
    """A stream of the file's (decompressed) bytes with `readinto`, so a
    reader can fill one reused buffer instead of taking a new bytes object
    per read (see transforms.parse.ReadBuffer)."""
    if decompress and compression_of(uri) == CompressionTypes.GZIP:
        pieces = _iter_gunzip(uri, size)
        try:
            yield _Pieces(pieces)
        finally:
            pieces.close()
        return
    ctype = CompressionTypes.AUTO if decompress else CompressionTypes.UNCOMPRESSED
    with FileSystems.open(uri, mime_type="application/octet-stream", compression_type=ctype) as f:
        if callable(getattr(f, "readinto", None)):
            yield f
        else:  # Beam's CompressedFile (bz2, zstd, deflate) reads, but has no readinto
            yield _Pieces(iter(lambda: f.read(size), b""))


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


def read_range(uri: str, offset: int, length: int) -> "pa.Buffer":
    """Bytes [offset, offset + length) of `uri` in one ranged read: pread on
    a local path; seek and read through Beam `FileSystems` elsewhere, whose
    GCS/S3 readers fetch that range (one request instead of an Arrow file
    reader's footer probes and batch reads). Fails on a short file."""
    import pyarrow as pa
    if "://" not in uri:
        with pa.OSFile(uri) as f:
            f.seek(offset)
            buf = f.read_buffer(length)
    else:
        parts, got = [], 0
        with FileSystems.open(uri, mime_type="application/octet-stream",
                              compression_type=CompressionTypes.UNCOMPRESSED) as f:
            f.seek(offset)
            while got < length:
                piece = f.read(min(length - got, READ_SIZE))
                if not piece:
                    break
                parts.append(piece)
                got += len(piece)
        buf = pa.py_buffer(b"".join(parts))
    if buf.size != length:
        raise OSError(f"{uri}: expected {length} bytes at offset {offset}, got {buf.size} (file truncated?)")
    return buf


def sha256_file(uri: str) -> str:
    return size_and_sha256(uri)[1]


def write_bytes(uri: str, data: bytes) -> None:
    """Write then rename, so no reader ever sees a partial file at `uri`; a
    failed write (disk full) removes its temporary file."""
    with writing(uri) as f:
        f.write(data)


# Bytes gathered before each write(2) of a local file (see writing).
WRITE_BUFFER = 1 << 20


@contextlib.contextmanager
def writing(uri: str) -> Iterator["pa.NativeFile"]:
    """An Arrow output stream onto `uri` that appears there only when whole:
    written under a temporary name, renamed on success, removed on failure.

    Arrow writers (IPC, Parquet) write straight into it. Building a file in
    memory first and then copying it out touches every byte's memory twice,
    and fresh memory is dear on this VM (see benchmarks/measure.py,
    fresh_page_cost): writing the 2M-record benchmark's 518 MB of witness
    shards took 1.6 CPU-s built in memory, 0.34 s streamed to the files."""
    import pyarrow as pa
    from transforms import hooks
    tmp = f"{uri}.tmp-{os.getpid()}"
    local = "://" not in uri
    parent = os.path.dirname(uri)
    if parent and local:
        os.makedirs(parent, exist_ok=True)
    try:
        hooks.check_space(uri)
        if local:  # no Beam file object in the way of Arrow's own writes
            # Buffered: an Arrow IPC stream is written a buffer at a time
            # (every column's validity, offsets and data, and their padding),
            # each an unbuffered write(2) into an OSFile, and a shard file
            # holds one stream per bucket. One reused 1 MiB buffer coalesces
            # them: 2M-record run, system time 2.39–2.45 s → 1.87–2.24 s.
            with pa.OSFile(tmp, "wb") as raw, pa.BufferedOutputStream(raw, WRITE_BUFFER) as f:
                yield f
        else:
            # Closing the PythonFile closes Beam's writer, which finishes the upload.
            with pa.PythonFile(FileSystems.create(tmp, compression_type=CompressionTypes.UNCOMPRESSED),
                               mode="w") as f:
                yield f
    except BaseException:
        try:
            if FileSystems.exists(tmp):
                FileSystems.delete([tmp])
        except Exception:
            pass
        raise
    if local:
        os.replace(tmp, uri)  # atomic on POSIX
    else:
        if FileSystems.exists(uri):
            FileSystems.delete([uri])
        FileSystems.rename([tmp], [uri])
    if "/_staging/" in uri and "/data/" in uri:
        hooks.pause("write")


def size_and_sha256(uri: str) -> tuple[int, str]:
    """Size and sha256 of a file's stored bytes (compressed files are not
    decompressed). A local file is read in pieces into one reused buffer, so
    hashing an input or an output just written takes no fresh memory per
    piece (see writing)."""
    h, n = hashlib.sha256(), 0
    if "://" in uri:
        for chunk in iter_bytes(uri, decompress=False):
            h.update(chunk)
            n += len(chunk)
        return n, h.hexdigest()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    with open(uri, "rb", buffering=0) as f:
        while k := f.readinto(buf):
            h.update(view[:k])
            n += k
    return n, h.hexdigest()


def is_special(uri: str) -> str | None:
    """Why a local path can't be read as a file (FIFO, device, directory),
    checked before opening: opening a FIFO would block the run forever."""
    if "://" in uri and not uri.startswith("file://"):
        return None
    try:
        st = os.stat(uri.removeprefix("file://"))
    except OSError:
        return None  # the open reports it
    if stat.S_ISREG(st.st_mode):
        return None
    kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode)
            else "a device or socket")
    return f"{uri} is {kind}, not a regular file"


def join(*parts: str) -> str:
    return FileSystems.join(*parts)
