"""The buyer's check of a bundle: trust nothing the seller wrote down.

Every claim in manifest.json that can be recomputed from the files is
recomputed (sizes, hashes, row counts, schema, Merkle root); the manifest's
own bytes are pinned by SHA256SUMS and, when signed, by the ed25519
signature; croissant.json and README.md are pinned by the manifest and also
regenerated and compared when produced by the same hexsieve version. The
first mismatch stops verification with a message naming the file and claim,
so any single changed byte anywhere is reported as exactly that.

Limit: without a signature (or with an unpinned key), someone who rewrites
the data *and* every checksum consistently produces a bundle that verifies;
only `--pubkey` turns "consistent" into "from the seller".
"""
from __future__ import annotations

import json
import os
import re

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines import bundle_files as bf
from pipelines import signing
from transforms import merkle

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CONTROL = {bf.MANIFEST, bf.SUMS, bf.SIGNATURE}


class VerifyError(Exception):
    pass


def _fail(msg: str):
    raise VerifyError(msg)


def _load_manifest(bundle: str) -> tuple[dict, bytes]:
    if not os.path.isdir(bundle):
        _fail(f"{bundle}: not a directory")
    path = os.path.join(bundle, bf.MANIFEST)
    if not os.path.exists(path):
        _fail(f"{bf.MANIFEST}: missing")
    raw = open(path, "rb").read()
    try:
        m = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        _fail(f"{bf.MANIFEST}: not valid JSON ({e})")
    if not isinstance(m, dict) or m.get("format") != "hexsieve-bundle/1":
        _fail(f"{bf.MANIFEST}: not a hexsieve bundle manifest (format {m.get('format')!r})"
              if isinstance(m, dict) else f"{bf.MANIFEST}: not a JSON object")
    return m, raw


def _check_listing(bundle: str, m: dict) -> list[dict]:
    try:
        files = [dict(f) for f in m["files"]]
        paths = [f["path"] for f in files]
    except (KeyError, TypeError):
        _fail(f"{bf.MANIFEST}: malformed 'files' list")
    data = [p for p, f in zip(paths, files) if f.get("kind") == "data"]
    if data != sorted(data) or len(set(paths)) != len(paths):
        _fail(f"{bf.MANIFEST}: data files are out of order or repeated")
    on_disk = set(bf.listed(bundle)) - _CONTROL
    for p in paths:
        if p not in on_disk:
            _fail(f"{p}: listed in {bf.MANIFEST} but missing")
    extra = sorted(on_disk - set(paths))
    if extra:
        _fail(f"{extra[0]}: file not listed in {bf.MANIFEST}")
    return files


def _check_files(bundle: str, files: list[dict]) -> None:
    for f in files:
        got = bf.describe(os.path.join(bundle, f["path"]))
        if got["bytes"] != f.get("bytes"):
            _fail(f"{f['path']}: size {got['bytes']} bytes, manifest says {f.get('bytes')}")
        if got["sha256"] != f.get("sha256"):
            _fail(f"{f['path']}: sha256 {got['sha256']} does not match manifest ({f.get('sha256')})")


def _check_sums(bundle: str, m: dict, raw: bytes) -> None:
    if raw != bf.canonical(m):
        _fail(f"{bf.MANIFEST}: bytes differ from its canonical form (edited by hand?)")
    path = os.path.join(bundle, bf.SUMS)
    if not os.path.exists(path):
        _fail(f"{bf.SUMS}: missing")
    have = open(path, "rb").read()
    want = bf.sums_text(bundle, bf.listed(bundle))
    if have == want:
        return
    lines_have = have.decode("utf-8", "replace").splitlines()
    for line in want.decode().splitlines():
        if line not in lines_have:
            _fail(f"{line.split('  ', 1)[1]}: sha256 does not match {bf.SUMS}")
    _fail(f"{bf.SUMS}: does not match the bundle's files")


def _check_signature(bundle: str, m_raw: bytes, pubkey: str | None) -> dict:
    path = os.path.join(bundle, bf.SIGNATURE)
    if not os.path.exists(path):
        if pubkey:
            _fail(f"{bf.SIGNATURE}: missing, but --pubkey was given (bundle is not signed)")
        return {"signed": False}
    raw = open(path, "rb").read()
    try:
        sig = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        _fail(f"{bf.SIGNATURE}: not valid JSON ({e})")
    if raw != signing.dumps(sig):
        _fail(f"{bf.SIGNATURE}: bytes differ from its canonical form")
    if sig.get("signed_file") != bf.MANIFEST:
        _fail(f"{bf.SIGNATURE}: signs {sig.get('signed_file')!r}, not {bf.MANIFEST}")
    try:
        key = signing.load_verify_key(pubkey) if pubkey else None
    except signing.KeyError_ as e:
        _fail(str(e))
    why = signing.check(m_raw, sig, key)
    if why:
        _fail(f"{bf.SIGNATURE}: {why}")
    return {"signed": True, "signer": sig["public_key"], "pinned": bool(pubkey)}


def _schema_doc(schema: pa.Schema) -> list[tuple]:
    return [(f.name, str(f.type)) for f in schema]


def _check_data(bundle: str, m: dict, files: list[dict]) -> list[str]:
    leaves: list[str] = []
    want_schema = [(c["name"], c["type"]) for c in m.get("schema", [])]
    for f in files:
        if f.get("kind") != "data":
            continue
        p = os.path.join(bundle, f["path"])
        try:
            pf = pq.ParquetFile(p)
            schema, n = pf.schema_arrow, pf.metadata.num_rows
            if n != f.get("rows"):
                _fail(f"{f['path']}: {n} rows, manifest says {f.get('rows')}")
            if _schema_doc(schema) != want_schema:
                _fail(f"{f['path']}: schema differs from the manifest's")
            if "record_sha256" not in schema.names:
                _fail(f"{f['path']}: no record_sha256 column")
            recs = pf.read(columns=["record_sha256"]).column(0).to_pylist()
        except (pa.ArrowInvalid, OSError) as e:
            _fail(f"{f['path']}: unreadable Parquet ({str(e).splitlines()[0]})")
        bad = next((r for r in recs if not (isinstance(r, str) and _HEX64.match(r))), False)
        if bad is not False:
            _fail(f"{f['path']}: record_sha256 value {bad!r} is not 64 hex digits")
        leaves.extend(recs)
    mk = m.get("merkle", {})
    if len(leaves) != m.get("counts", {}).get("exported_rows") or len(leaves) != mk.get("leaf_count"):
        _fail(f"{bf.MANIFEST}: {len(leaves)} rows in the data files, manifest says "
              f"{m.get('counts', {}).get('exported_rows')} (leaf_count {mk.get('leaf_count')})")
    root = merkle.root(leaves)
    if root != mk.get("root"):
        _fail(f"merkle root: recomputed {root}, manifest says {mk.get('root')}")
    return leaves


def _check_metadata(bundle: str, m: dict, files: list[dict]) -> list[str]:
    from pipelines import croissant, datasheet

    path = os.path.join(bundle, "croissant.json")
    try:
        doc = json.loads(open(path, "rb").read())
    except (OSError, ValueError, UnicodeDecodeError) as e:
        _fail(f"croissant.json: unreadable ({e})")
    objs = {d.get("contentUrl"): d.get("sha256") for d in doc.get("distribution", [])
            if d.get("@type") == "cr:FileObject"}
    data = {f["path"]: f["sha256"] for f in files if f.get("kind") == "data"}
    if objs != data:
        _fail("croissant.json: file list or checksums differ from the data files")
    for key in ("license", "datePublished", "version"):
        if not doc.get(key):  # mlcroissant only warns about these
            _fail(f"croissant.json: no {key}")
    notes = []
    if m.get("generator") == f"hexsieve {bf.version()}":
        for name, render in (("croissant.json", croissant.render), ("README.md", datasheet.render)):
            meta = dict(m, files=[f for f in m["files"] if f.get("kind") == "data"])
            if open(os.path.join(bundle, name), "rb").read() != render(meta):
                _fail(f"{name}: differs from what the manifest generates")
    else:
        notes.append(f"metadata not regenerated: bundle made by {m.get('generator')}")
    errors = croissant.validate(path)
    if errors:
        _fail(f"croissant.json: mlcroissant validation failed: {errors[0]}")
    return notes


def _row_proof(m: dict, leaves: list[str], arg: str) -> dict:
    root = m["merkle"]["root"]
    if os.path.exists(arg):
        try:
            proof = json.loads(open(arg, "rb").read())
        except ValueError as e:
            _fail(f"row proof {arg}: not JSON ({e})")
        why = merkle.verify_proof(proof, root, m["merkle"]["leaf_count"])
        if why:
            _fail(f"row proof {arg}: {why}")
        return {"verified": True, **proof}
    rec = arg.strip().lower()
    if not _HEX64.match(rec):
        _fail(f"--row-proof: {arg!r} is neither a proof file nor a record_sha256")
    try:
        idx = leaves.index(rec)
    except ValueError:
        _fail(f"--row-proof: record {rec} is not in this bundle")
    return merkle.prove(leaves, idx)


def verify(bundle: str, pubkey: str | None = None, row_proof: str | None = None,
           check_croissant: bool = True) -> dict:
    """Raise VerifyError at the first mismatch; else a short report."""
    m, raw = _load_manifest(bundle)
    files = _check_listing(bundle, m)
    _check_files(bundle, files)
    _check_sums(bundle, m, raw)
    sig = _check_signature(bundle, raw, pubkey)
    leaves = _check_data(bundle, m, files)
    notes = _check_metadata(bundle, m, files) if check_croissant else []
    report = {"ok": True, "bundle": bundle, "files": len(files), "rows": len(leaves),
              "merkle_root": m["merkle"]["root"], **sig, "notes": notes}
    if row_proof:
        report["proof"] = _row_proof(m, leaves, row_proof)
    return report
