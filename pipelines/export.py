"""Buyer bundles: a filtered slice of one dataset, with proofs of what it is.

Determinism is the design constraint: the same query over the same outputs
must give byte-identical files, so a buyer (or an auditor, months later) can
re-run it and compare hashes. Hence: rows ordered by (date, source_uri,
source_record, record_sha256); fixed file and row-group sizes; a Parquet
writer with fixed options; no wall-clock time, host path or random id
anywhere — the bundle's date is the newest run's processing time.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines import bundle_files, region, signing, sqlviews
from transforms import h3util, merkle

FILE_ROWS = 1_000_000
ROW_GROUP = 65_536
BUNDLE_FORMAT = "hexsieve-bundle/1"
ORDER = ("date", "source_uri", "source_record", "record_sha256")


class ExportError(ValueError):
    pass


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    cell: str | None          # uint64 H3 column that locates a row
    lat: tuple[str, ...]      # candidate names of the point columns (first present wins)
    lng: tuple[str, ...]
    geo: bool                 # write GeoParquet with a point geometry


DATASETS = {
    "witness": DatasetSpec("witness", "witness_cell", (), (), False),
    "imagery": DatasetSpec("imagery", "cell", ("lat", "latitude"), ("lon", "lng", "longitude"), True),
    "sensor": DatasetSpec("sensor", None, ("lat", "latitude"), ("lon", "lng", "longitude"), True),
}


@dataclass
class ExportOptions:
    out: str
    dataset: str
    to: str
    date_from: str | None = None
    date_until: str | None = None
    region: str | None = None
    valid_only: bool = False
    min_qod: float | None = None
    columns: list[str] | None = None
    licence: str = "CC-BY-4.0"
    sign_key: str | None = None
    region_res: int | None = None
    notes: list[str] = field(default_factory=list)


def _date(s: str | None, what: str) -> dt.date | None:
    if s is None:
        return None
    try:
        return dt.date.fromisoformat(s)
    except ValueError:
        raise ExportError(f"{what}: not a date (YYYY-MM-DD): {s!r}") from None


def _arrow(con, sql: str) -> pa.Table:
    rel = con.sql(sql)
    return rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.arrow()


def _one(con, sql: str):
    return con.execute(sql).fetchall()[0][0]


def _pick(cols: list[str], names: tuple[str, ...]) -> str | None:
    return next((n for n in names if n in cols), None)


# ---------------------------------------------------------------- selection

def _filters(con, o: ExportOptions, spec: DatasetSpec, cols: list[str]) -> dict:
    """Create temp views _win (date window) and _q (quality); count exclusions."""
    lo, hi = _date(o.date_from, "--from"), _date(o.date_until, "--until")
    if lo and hi and lo > hi:
        raise ExportError("--from is after --until")
    conds = ["true"]
    if lo:
        conds.append(f"date >= DATE '{lo.isoformat()}'")
    if hi:
        conds.append(f"date <= DATE '{hi.isoformat()}'")
    con.execute(f"CREATE OR REPLACE TEMP VIEW _win AS SELECT * FROM {spec.name} WHERE {' AND '.join(conds)}")
    excluded: dict = {}
    q = ["true"]
    if o.valid_only:
        q.append("verdict = 'valid'")
        n = _one(con, "SELECT count(*) FROM _win WHERE verdict IS DISTINCT FROM 'valid'")
        reasons = con.execute(
            "SELECT r, count(*) FROM (SELECT unnest(reasons) AS r FROM _win "
            "WHERE verdict IS DISTINCT FROM 'valid') GROUP BY r ORDER BY 2 DESC, 1").fetchall()
        excluded["invalid"] = {"rows": n, "reasons": {r: c for r, c in reasons}}
    if o.min_qod is not None:
        if spec.name != "sensor":
            raise ExportError("--min-qod applies to --dataset sensor only")
        if "qod_score" in cols:
            q.append(f"qod_score >= {float(o.min_qod)!r}")
        else:
            q.append("EXISTS (SELECT 1 FROM sensor_daily d WHERE d.station_id = _win.station_id "
                     f"AND d.date = _win.date AND d.qod_score >= {float(o.min_qod)!r})")
    con.execute(f"CREATE OR REPLACE TEMP VIEW _q AS SELECT * FROM _win WHERE {' AND '.join(q)}")
    if o.min_qod is not None:
        before = _one(con, f"SELECT count(*) FROM _win WHERE {' AND '.join(q[:-1])}")
        excluded["below_min_qod"] = {"rows": before - _one(con, "SELECT count(*) FROM _q")}
    return {"window_rows": _one(con, "SELECT count(*) FROM _win"),
            "from": lo.isoformat() if lo else None, "until": hi.isoformat() if hi else None,
            "excluded": excluded}


def _locate(con, spec: DatasetSpec, cols: list[str]) -> tuple[str | None, str | None]:
    """Temp view _loc = _q plus __cell (and __lat/__lng when rows carry points)."""
    lat, lng = _pick(cols, spec.lat), _pick(cols, spec.lng)
    extra = []
    if spec.cell:
        extra.append(f"NULLIF({sqlviews.ident(spec.cell)}, 0) AS __cell")
    elif lat and lng:
        extra.append(f"h3_latlng_to_cell({sqlviews.ident(lat)}, {sqlviews.ident(lng)}, 15) AS __cell")
    else:
        extra.append("CAST(NULL AS UBIGINT) AS __cell")
    if lat and lng:
        extra += [f"CAST({sqlviews.ident(lat)} AS DOUBLE) AS __lat",
                  f"CAST({sqlviews.ident(lng)} AS DOUBLE) AS __lng"]
    con.execute(f"CREATE OR REPLACE TEMP VIEW _loc AS SELECT *, {', '.join(extra)} FROM _q")
    return lat, lng


def _select_region(con, o: ExportOptions, spec: DatasetSpec, has_points: bool) -> dict:
    geom = region.load(o.region)
    located = "__cell IS NOT NULL" + (" AND __lat IS NOT NULL AND __lng IS NOT NULL" if has_points else "")
    n_loc = _one(con, f"SELECT count(*) FROM _loc WHERE {located}")
    n_all = _one(con, "SELECT count(*) FROM _loc")
    min_res = _one(con, f"SELECT min((__cell >> 52) & 15) FROM _loc WHERE {located}")
    max_res = 15 if min_res is None else int(min_res)
    res = o.region_res if o.region_res is not None else region.choose_res(geom, max_res)
    if res > max_res:
        raise ExportError(f"--region-res {res} is finer than the data's cells (res {max_res})")
    cs = region.cover(geom, res)
    con.register("__rc", pa.table({"cell": pa.array(cs.cells, pa.uint64()),
                                   "klass": pa.array(cs.klass, pa.int8())}))
    par = region.parent_sql("l.__cell", res)
    on = f"r.cell = {par}"
    if has_points:
        keys = _arrow(con, f"SELECT DISTINCT l.__lat, l.__lng FROM _loc l JOIN __rc r ON {on} "
                           f"WHERE r.klass = {region.BOUNDARY} AND l.__lat IS NOT NULL AND l.__lng IS NOT NULL")
        lat = keys.column("__lat").to_numpy(zero_copy_only=False)
        lng = keys.column("__lng").to_numpy(zero_copy_only=False)
        ok = region.contains(geom, lat, lng)
        con.register("__acc", pa.table({"__lat": lat[ok], "__lng": lng[ok]}))
        join = "LEFT JOIN __acc a ON a.__lat = l.__lat AND a.__lng = l.__lng"
        hit = "a.__lat IS NOT NULL"
    else:
        keys = _arrow(con, f"SELECT DISTINCT l.__cell FROM _loc l JOIN __rc r ON {on} "
                           f"WHERE r.klass = {region.BOUNDARY}")
        cells = keys.column("__cell").to_numpy(zero_copy_only=False).astype(np.uint64)
        lat, lng = h3util.centers(cells)
        ok = region.contains(geom, lat, lng)
        con.register("__acc", pa.table({"__cell": pa.array(cells[ok], pa.uint64())}))
        join = "LEFT JOIN __acc a ON a.__cell = l.__cell"
        hit = "a.__cell IS NOT NULL"
    con.execute(f"CREATE OR REPLACE TEMP TABLE _sel AS SELECT l.* FROM _loc l JOIN __rc r ON {on} "
                f"{join} WHERE {located.replace('__', 'l.__')} AND "
                f"(r.klass = {region.INTERIOR} OR {hit})")
    n_sel = _one(con, "SELECT count(*) FROM _sel")
    with open(o.region, "rb") as f:
        region_sha = hashlib.sha256(f.read()).hexdigest()
    return {
        "region": {"file": os.path.basename(o.region), "sha256": region_sha,
                   "geometry": json.loads(json.dumps(geom.__geo_interface__)),
                   "h3_resolution": res, "interior_cells": cs.n_interior,
                   "boundary_cells": cs.n_boundary, "boundary_points_tested": int(len(ok))},
        "excluded": {"no_location": {"rows": n_all - n_loc},
                     "outside_region": {"rows": n_loc - n_sel}},
    }


# ---------------------------------------------------------------- writing

def _plain(t: pa.DataType) -> pa.DataType:
    """Arrow types DuckDB may hand back, as the plain types every reader knows."""
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t):
        return pa.list_(_plain(t.value_type))
    if pa.types.is_timestamp(t) and t.tz in ("Etc/UTC", "UTC", "+00:00"):
        return pa.timestamp(t.unit, tz="UTC")
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _plain(f.type), f.nullable) for f in t])
    return t


def target_schema(t: pa.Schema, dataset: str) -> pa.Schema:
    """The written schema: reference types, units and docs from `schemas/` where known."""
    from schemas import SCHEMAS
    ref = SCHEMAS.get(dataset)
    fields = []
    for f in t:
        r = ref.field(f.name) if ref is not None and f.name in ref.names else None
        if r is not None:
            fields.append(r)
        elif f.name == "date":
            fields.append(pa.field("date", pa.date32(), False,
                                   {"description": "partition date (UTC) of the source output"}))
        else:
            fields.append(pa.field(f.name, _plain(f.type), f.nullable))
    return pa.schema(fields, metadata={"description": f"hexsieve {dataset} export"})


def _geo(t: pa.Table, lat: np.ndarray, lng: np.ndarray) -> pa.Table:
    import shapely
    ok = ~np.isnan(lat) & ~np.isnan(lng)
    wkb = np.full(len(lat), None, dtype=object)
    if ok.any():
        wkb[ok] = shapely.to_wkb(shapely.points(lng[ok], lat[ok]), flavor="iso", byte_order=1)
    geo = {"version": "1.1.0", "primary_column": "geometry",
           "columns": {"geometry": {"encoding": "WKB", "geometry_types": ["Point"]}}}
    if ok.any():
        geo["columns"]["geometry"]["bbox"] = [float(lng[ok].min()), float(lat[ok].min()),
                                              float(lng[ok].max()), float(lat[ok].max())]
    t = t.append_column(pa.field("geometry", pa.binary(), True,
                                 {"description": "point (lon, lat) as WKB, OGC:CRS84"}),
                        pa.array(wkb, pa.binary()))
    meta = dict(t.schema.metadata or {})
    meta[b"geo"] = json.dumps(geo, sort_keys=True).encode()
    return t.replace_schema_metadata(meta)


def write_parquet(t: pa.Table, path: str) -> dict:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(t, path, row_group_size=ROW_GROUP, compression="zstd", compression_level=3,
                   use_dictionary=True, write_statistics=True, data_page_size=1 << 20,
                   version="2.6", store_schema=True)
    return bundle_files.describe(path)


def _write_data(con, o: ExportOptions, spec: DatasetSpec, out_cols: list[str],
                has_points: bool, bundle: str) -> tuple[list[dict], list[str], pa.Schema | None]:
    files, leaves, schema = [], [], None
    sel = ", ".join(sqlviews.ident(c) for c in out_cols)
    if has_points:
        sel += ", __lat, __lng"
    order = ", ".join(sqlviews.ident(c) for c in ORDER)
    dates = [r[0] for r in con.execute("SELECT DISTINCT date FROM _sel ORDER BY 1").fetchall()]
    for d in dates:
        t = _arrow(con, f"SELECT {sel} FROM _sel WHERE date = DATE '{d.isoformat()}' ORDER BY {order}")
        lat = lng = None
        if has_points:
            lat = t.column("__lat").to_numpy(zero_copy_only=False).astype(float)
            lng = t.column("__lng").to_numpy(zero_copy_only=False).astype(float)
            t = t.drop_columns(["__lat", "__lng"])
        schema = target_schema(t.schema, spec.name)
        t = t.cast(schema)
        for k, start in enumerate(range(0, t.num_rows, FILE_ROWS)):
            part = t.slice(start, FILE_ROWS)
            if spec.geo and has_points:
                part = _geo(part, lat[start:start + FILE_ROWS], lng[start:start + FILE_ROWS])
            rel = f"data/{spec.name}-{d.isoformat()}-{k:03d}.parquet"
            info = write_parquet(part, os.path.join(bundle, rel))
            files.append({"path": rel, "kind": "data", "date": d.isoformat(),
                          "rows": part.num_rows, **info})
            leaves.extend(part.column("record_sha256").to_pylist())
    if files:
        schema = pq.read_schema(os.path.join(bundle, files[-1]["path"]))
    else:  # nothing selected: still document the columns a buyer would get
        schema = target_schema(_arrow(con, f"SELECT {sel} FROM _sel LIMIT 0").drop_columns(
            ["__lat", "__lng"] if has_points else []).schema, spec.name)
    return files, leaves, schema


# ---------------------------------------------------------------- provenance

def _lineage(con, cols: list[str]) -> dict:
    def grouped(col: str, extra: str = "") -> list[tuple]:
        if col not in cols:
            return []
        return con.execute(f"SELECT {sqlviews.ident(col)}{extra}, count(*) FROM _sel "
                           f"GROUP BY ALL ORDER BY ALL").fetchall()
    sources = [{"uri": u, "sha256": s, "rows": n}
               for u, s, n in grouped("source_uri", ", source_sha256" if "source_sha256" in cols else ", NULL")]
    run_rows = dict(grouped("run_id"))
    runs = []
    if run_rows:
        con.register("__run_ids", pa.table({"run_id": list(run_rows)}))
        meta = {r[0]: r[1:] for r in con.execute(
            "SELECT run_id, source, pipeline_version, now, logical_date FROM runs "
            "WHERE run_id IN (SELECT run_id FROM __run_ids)").fetchall()}
        for rid, n in run_rows.items():
            m = meta.get(rid)
            runs.append({"run_id": rid, "rows": n, "manifest": f"_runs/{rid}.json" if m else None,
                         "source": m[0] if m else None, "pipeline_version": m[1] if m else None,
                         "now": m[2] if m else None, "logical_date": m[3] if m else None})
    return {"sources": sources, "runs": runs,
            "rules_versions": {v: n for v, n in grouped("rules_version")},
            "pipeline_versions": {v: n for v, n in grouped("pipeline_version")},
            "verdicts": {v: n for v, n in grouped("verdict")}}


def _published(lineage: dict, files: list[dict]) -> str:
    """The newest run's processing time: stable across re-exports, unlike now()."""
    nows = sorted(r["now"] for r in lineage["runs"] if r.get("now"))
    if nows:
        return str(nows[-1])[:10]
    dates = sorted(f["date"] for f in files)
    return dates[-1] if dates else "1970-01-01"


def _schema_doc(schema: pa.Schema | None) -> list[dict]:
    out = []
    for f in schema or []:
        m = {k.decode(): v.decode() for k, v in (f.metadata or {}).items()}
        out.append({"name": f.name, "type": str(f.type), "nullable": f.nullable,
                    "unit": m.get("unit", ""), "description": m.get("description", "")})
    return out


def _rows_cells(con, spec: DatasetSpec) -> np.ndarray:
    t = _arrow(con, "SELECT DISTINCT __cell FROM _sel WHERE __cell IS NOT NULL")
    return t.column(0).to_numpy(zero_copy_only=False).astype(np.uint64)


# ---------------------------------------------------------------- entry point

def _prepare_dir(path: str) -> None:
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise ExportError(f"bundle directory {path} exists and is not empty")
    os.makedirs(path, exist_ok=True)


def _out_columns(o: ExportOptions, cols: list[str]) -> list[str]:
    if not o.columns:
        return [c for c in cols if c != "date"] + ["date"]
    unknown = [c for c in o.columns if c not in cols]
    if unknown:
        raise ExportError(f"unknown column(s) {', '.join(unknown)}; {o.dataset} has: {', '.join(cols)}")
    want = [c for c in dict.fromkeys(o.columns) if c != "date"]
    if "record_sha256" not in want:
        want.append("record_sha256")  # the Merkle leaves
    return want + ["date"]


def export(o: ExportOptions) -> dict:
    """Write the bundle to o.to; returns the manifest."""
    from pipelines import croissant, datasheet

    spec = DATASETS.get(o.dataset)
    if spec is None:
        raise ExportError(f"unknown dataset {o.dataset!r}; choose {', '.join(DATASETS)}")
    if o.licence and not all(ch.isalnum() or ch in "-.+" for ch in o.licence):
        raise ExportError(f"--licence must be an SPDX identifier, got {o.licence!r}")
    con, notes = sqlviews.connect(o.out)
    cols = [r[0] for r in con.execute(f"DESCRIBE {spec.name}").fetchall()]
    if "record_sha256" not in cols:
        raise ExportError(f"no {spec.name} data under {o.out} (and no schema for it yet)")
    out_cols = _out_columns(o, cols)
    if o.region and spec.cell is None and not (_pick(cols, spec.lat) and _pick(cols, spec.lng)):
        raise ExportError(f"{spec.name} rows carry no location; --region cannot apply")
    _prepare_dir(o.to)

    query = _filters(con, o, spec, cols)
    lat, lng = _locate(con, spec, cols)
    has_points = bool(lat and lng)
    excluded = dict(query.pop("excluded"))
    region_doc = None
    if o.region:
        r = _select_region(con, o, spec, has_points)
        region_doc = r["region"]
        excluded.update(r["excluded"])
    else:
        con.execute("CREATE OR REPLACE TEMP TABLE _sel AS SELECT * FROM _loc")

    files, leaves, schema = _write_data(con, o, spec, out_cols, has_points, o.to)
    lineage = _lineage(con, cols)
    manifest = {
        "format": BUNDLE_FORMAT,
        "generator": f"hexsieve {bundle_files.version()}",
        "dataset": spec.name,
        "licence": o.licence,
        "query": {"dataset": spec.name, "from": query["from"], "until": query["until"],
                  "valid_only": o.valid_only, "min_qod": o.min_qod,
                  "columns": out_cols if o.columns else None, "region": region_doc},
        "counts": {"window_rows": query["window_rows"], "exported_rows": len(leaves),
                   "files": len(files)},
        "excluded": excluded,
        "date_range": [files[0]["date"], files[-1]["date"]] if files else None,
        "published": _published(lineage, files),
        "schema": _schema_doc(schema),
        "geo": {"geoparquet": bool(spec.geo and has_points), "crs": "OGC:CRS84",
                "point": "witness_cell centre" if spec.cell == "witness_cell" else f"{lat}, {lng}",
                "h3_spatial_index": region.spatial_index(_rows_cells(con, spec))},
        **lineage,
        "merkle": {"algorithm": "sha256", "leaf": "sha256(0x00 || record_sha256 bytes)",
                   "node": "sha256(0x01 || left || right); odd node carried up",
                   "order": "files in manifest order, rows in file order",
                   "leaf_count": len(leaves), "root": merkle.root(leaves)},
        "files": files,
    }
    con.close()
    for name, text in (("croissant.json", croissant.render(manifest)),
                       ("README.md", datasheet.render(manifest))):
        path = os.path.join(o.to, name)
        with open(path, "wb") as f:
            f.write(text)
        manifest["files"].append({"path": name, "kind": "metadata", **bundle_files.describe(path)})
    bundle_files.write_manifest(o.to, manifest)
    if o.sign_key:
        key = signing.load_signing_key(o.sign_key)
        data = open(os.path.join(o.to, bundle_files.MANIFEST), "rb").read()
        with open(os.path.join(o.to, bundle_files.SIGNATURE), "wb") as f:
            f.write(signing.dumps(signing.sign(data, key, bundle_files.MANIFEST)))
    bundle_files.write_sums(o.to)
    manifest["notes"] = notes
    return manifest
