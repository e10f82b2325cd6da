"""Rules as data: a rule is one row of a table, evaluated vectorized.

Each source declares a `RuleSet`: an ordered tuple of `Rule(id, reason,
description, constants, check)`. A check receives the batch (any mapping of
column name → array; usually a `pyarrow.Table`) plus the resolved constants and
returns a boolean mask, True where the row *fails*. Adding a rule is adding one
entry; constants are overridable from TOML without code changes, and the
override is folded into `rules_version` so every output row says exactly which
thresholds judged it.
"""
from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

Check = Callable[[Any, Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Rule:
    id: str
    reason: str
    description: str
    check: Check
    constants: Mapping[str, Any] = field(default_factory=dict)
    side: str = ""  # who the rejection is about (e.g. beaconer / witness)


@dataclass(frozen=True)
class RuleSet:
    name: str
    version: str
    rules: tuple[Rule, ...]
    # Constants that steer verification without being a rejection rule
    # (e.g. how many valid witnesses are selected).
    settings: Mapping[str, Any] = field(default_factory=dict)

    def defaults(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.settings)
        for r in self.rules:
            out.update(r.constants)
        return out

    def reasons(self) -> list[str]:
        return list(dict.fromkeys(r.reason for r in self.rules))

    def resolve(self, overrides: Mapping[str, Any] | None = None) -> "Constants":
        """Merge overrides onto defaults; unknown names are an error, not a no-op."""
        values = self.defaults()
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(values))
        if unknown:
            raise ValueError(
                f"rule set {self.name!r} has no constant(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(values))}")
        for k, v in overrides.items():
            default = values[k]
            if isinstance(default, (int, float)) and not isinstance(default, bool):
                if not isinstance(v, (int, float)) or isinstance(v, bool):
                    raise ValueError(f"constant {self.name}.{k} must be a number, got {v!r}")
            values[k] = v
        changed = {k: v for k, v in overrides.items() if self.defaults()[k] != v}
        version = self.version
        if changed:
            digest = hashlib.sha256(json.dumps(changed, sort_keys=True).encode()).hexdigest()[:8]
            version = f"{self.version}+{digest}"
        return Constants(values=values, version=version)


@dataclass(frozen=True)
class Constants:
    values: Mapping[str, Any]
    version: str

    def __getitem__(self, k: str) -> Any:
        return self.values[k]


def load_overrides(path: str | None, section: str) -> dict[str, Any]:
    """Read `[section]` of a TOML rules file (or `[rules.section]` of hexsieve.toml)."""
    if not path:
        return {}
    from transforms.fileio import read_bytes  # local: keeps this module dependency-light
    try:
        doc = tomllib.loads(read_bytes(path).decode("utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: not valid TOML: {e}") from None
    if "rules" in doc and isinstance(doc["rules"], dict):
        doc = doc["rules"]
    sec = doc.get(section, {})
    if not isinstance(sec, dict):
        raise ValueError(f"{path}: [{section}] must be a table of constants")
    return sec


def as_mask(x: Any, n: int) -> np.ndarray:
    """Normalise a check result (Arrow/numpy/scalar, nulls allowed) to bool[n]; null → pass."""
    if isinstance(x, (pa.Array, pa.ChunkedArray)):
        x = pc.fill_null(x, False)
        x = x.to_numpy(zero_copy_only=False) if isinstance(x, pa.Array) else np.asarray(x)
    arr = np.asarray(x, dtype=bool)
    if arr.ndim == 0:
        arr = np.full(n, bool(arr))
    if arr.shape != (n,):
        raise ValueError(f"check returned shape {arr.shape}, expected ({n},)")
    return arr


def evaluate(ruleset: RuleSet, batch: Any, consts: Constants, n: int,
             only: set[str] | None = None) -> np.ndarray:
    """Failure matrix, rows × rules (rule-table order). `only` limits evaluated rule ids."""
    m = np.zeros((n, len(ruleset.rules)), dtype=bool)
    for j, rule in enumerate(ruleset.rules):
        if only is not None and rule.id not in only:
            continue
        m[:, j] = as_mask(rule.check(batch, consts), n)
    return m


def reasons_from_matrix(ruleset: RuleSet, matrix: np.ndarray,
                        prefix: pa.Array | None = None) -> pa.ListArray:
    """list<string> of failed reason codes per row; duplicates of a code collapse.

    `prefix` (list<string>) holds reasons inherited from upstream (e.g. a
    witness inheriting its beacon's rejection); they come first.
    """
    codes = [r.reason for r in ruleset.rules]
    uniq = list(dict.fromkeys(codes))
    # Collapse rules sharing a reason code into one column per code.
    col_of = np.array([uniq.index(c) for c in codes])
    collapsed = np.zeros((matrix.shape[0], len(uniq)), dtype=bool)
    for j, k in enumerate(col_of):
        collapsed[:, k] |= matrix[:, j]
    rows, cols = np.nonzero(collapsed)
    counts = collapsed.sum(axis=1)
    # Codes taken from a tiny array of the distinct codes: no Python string per failed check.
    values = pa.array(uniq, pa.string()).take(pa.array(cols, pa.int64())) if len(cols) else pa.array([], pa.string())
    offsets = np.zeros(len(counts) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    own = pa.ListArray.from_arrays(pa.array(offsets), values)
    if prefix is None:
        return own
    return concat_lists(prefix, own)


def concat_lists(a: pa.Array, b: pa.Array) -> pa.ListArray:
    """Row-wise concatenation of two list<string> arrays, vectorized."""
    a = a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a
    b = b.combine_chunks() if isinstance(b, pa.ChunkedArray) else b
    la = pc.list_value_length(a).fill_null(0).to_numpy(zero_copy_only=False)
    lb = pc.list_value_length(b).fill_null(0).to_numpy(zero_copy_only=False)
    n = len(la)
    tot = la + lb
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(tot, out=offsets[1:])
    va = pc.list_flatten(a)
    vb = pc.list_flatten(b)
    # positions: row i's a-values go to offsets[i] .. offsets[i]+la[i]
    pos_a = np.repeat(offsets[:-1], la) + _ragged_arange(la)
    pos_b = np.repeat(offsets[:-1] + la, lb) + _ragged_arange(lb)
    order = np.empty(int(tot.sum()), dtype=np.int64)
    order[pos_a] = np.arange(len(pos_a))
    order[pos_b] = len(pos_a) + np.arange(len(pos_b))
    values = pa.concat_arrays([va, vb]).take(pa.array(order)) if len(order) else pa.array([], pa.string())
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def _ragged_arange(lengths: np.ndarray) -> np.ndarray:
    if lengths.sum() == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.arange(int(lengths.sum())) - starts


def verdicts(reasons: pa.ListArray) -> pa.Array:
    bad = pc.greater(pc.list_value_length(reasons), 0)
    return pc.if_else(bad, "invalid", "valid")


def describe(ruleset: RuleSet, consts: Constants | None = None) -> list[dict[str, Any]]:
    """The rule table as plain rows, for manifests, docs and `hexsieve rules`."""
    consts = consts or ruleset.resolve()
    return [{"id": r.id, "reason": r.reason, "description": r.description,
             "constants": {k: consts[k] for k in r.constants}, "side": r.side}
            for r in ruleset.rules]
