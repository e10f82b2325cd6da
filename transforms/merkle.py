"""Merkle tree over exported rows' `record_sha256`, with inclusion proofs.

Why a tree and not one hash of the list: a buyer can prove one row was in a
signed bundle by showing O(log n) hashes, without revealing the others.

Hashing (RFC 6962 style domain separation, so a leaf can never be passed off
as an inner node):
    leaf = sha256(0x00 || bytes.fromhex(record_sha256))
    node = sha256(0x01 || left || right)
Levels are built pairwise left to right; an odd node at the end of a level is
carried up unchanged (never duplicated, which would let two different row
lists share a root). Empty tree: sha256(b"").

Proof JSON: {"leaf_index", "leaf_count", "record_sha256", "root",
"path": [{"side": "L"|"R", "hash": hex}, …]} — `side` is where the sibling
sits; carried-up levels add no step. The verifier re-derives the sides from
leaf_index and leaf_count (checked against the published count), so a proof
cannot claim another position.
"""
from __future__ import annotations

import hashlib

_LEAF = b"\x00"
_NODE = b"\x01"


def leaf_hash(record_sha256: str) -> bytes:
    return hashlib.sha256(_LEAF + bytes.fromhex(record_sha256)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


def _next(level: list[bytes]) -> list[bytes]:
    sha = hashlib.sha256
    up = [sha(_NODE + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        up.append(level[-1])
    return up


def leaves(records) -> list[bytes]:
    sha = hashlib.sha256
    fromhex = bytes.fromhex
    return [sha(_LEAF + fromhex(r)).digest() for r in records]


def root(records) -> str:
    level = leaves(records)
    if not level:
        return hashlib.sha256(b"").hexdigest()
    while len(level) > 1:
        level = _next(level)
    return level[0].hex()


def _shape(index: int, count: int) -> list[tuple[int, str]]:
    """(sibling position, side) per level for leaf `index` of `count`."""
    steps = []
    while count > 1:
        if index % 2:
            steps.append((index - 1, "L"))
        elif index + 1 < count:
            steps.append((index + 1, "R"))
        index //= 2
        count = (count + 1) // 2
    return steps


def prove(records, index: int) -> dict:
    records = list(records)
    if not 0 <= index < len(records):
        raise IndexError(f"leaf index {index} out of range (0..{len(records) - 1})")
    level = leaves(records)
    path, i = [], index
    while len(level) > 1:
        sib = i ^ 1
        if sib < len(level):
            path.append({"side": "L" if i % 2 else "R", "hash": level[sib].hex()})
        level = _next(level)
        i //= 2
    return {"leaf_index": index, "leaf_count": len(records), "record_sha256": records[index],
            "root": level[0].hex(), "path": path}


def verify_proof(proof: dict, expected_root: str | None = None,
                 expected_count: int | None = None) -> str | None:
    """None when the proof holds, else the reason it does not. Pass the
    published leaf count too: some positions share a path shape across counts."""
    try:
        idx, count = int(proof["leaf_index"]), int(proof["leaf_count"])
        if expected_count is not None and count != expected_count:
            return f"proof is for {count} leaves, the bundle has {expected_count}"
        path = proof["path"]
        h = leaf_hash(proof["record_sha256"])
        shape = _shape(idx, count)
        if not 0 <= idx < count:
            return "leaf_index outside leaf_count"
        if len(shape) != len(path) or any(s != p["side"] for (_, s), p in zip(shape, path)):
            return "proof path does not match leaf_index/leaf_count"
        for step in path:
            sib = bytes.fromhex(step["hash"])
            h = node_hash(sib, h) if step["side"] == "L" else node_hash(h, sib)
    except (KeyError, TypeError, ValueError) as e:
        return f"malformed proof: {e}"
    root_hex = expected_root if expected_root is not None else proof.get("root")
    if h.hex() != root_hex:
        return f"proof leads to root {h.hex()}, expected {root_hex}"
    return None
