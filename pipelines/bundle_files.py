"""The bundle's fixed file names and the byte-exact way its JSON is written.

Export and verify share this so the verifier can demand the exact bytes the
exporter would have produced (any reformatting of manifest.json is a change).
"""
from __future__ import annotations

import hashlib
import json
import os

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig.json"
SUMS = "SHA256SUMS"


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def describe(path: str) -> dict:
    return {"sha256": sha256_file(path), "bytes": os.path.getsize(path)}


def canonical(doc) -> bytes:
    return (json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def write_manifest(bundle: str, manifest: dict) -> None:
    with open(os.path.join(bundle, MANIFEST), "wb") as f:
        f.write(canonical(manifest))


def listed(bundle: str) -> list[str]:
    """Every file SHA256SUMS must cover: all files but itself, sorted."""
    out = []
    for root, dirs, names in os.walk(bundle):
        dirs.sort()
        for n in names:
            rel = os.path.relpath(os.path.join(root, n), bundle).replace(os.sep, "/")
            if rel != SUMS:
                out.append(rel)
    return sorted(out)


def sums_text(bundle: str, paths: list[str]) -> bytes:
    """`sha256sum -c` format, so a buyer without hexsieve can check the files."""
    return "".join(f"{sha256_file(os.path.join(bundle, p))}  {p}\n" for p in paths).encode()


def write_sums(bundle: str) -> None:
    text = sums_text(bundle, listed(bundle))
    with open(os.path.join(bundle, SUMS), "wb") as f:
        f.write(text)


def version() -> str:
    try:
        from importlib.metadata import version as v
        return v("hexsieve")
    except Exception:  # running from a source tree without metadata
        return "0+unknown"
