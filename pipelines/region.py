"""A GeoJSON region as an H3 cell set, exact at the boundary.

Rows are selected by their cell's parent at resolution R (bit arithmetic, a
hash join in DuckDB), so the polygon is only consulted for the few rows whose
parent is a *boundary* cell; everything else is decided by the cell set.

H3 is not geometrically nested: a fine cell's point can lie a little outside
its index parent's hexagon. So a parent counts as *interior* only when its
hexagon grown by a margin (one edge length of R, conservatively converted to
degrees) lies inside the polygon, and the candidate set is polyfilled from the
polygon grown by the same margin. Both sides err towards "boundary", where
the exact shapely point-in-polygon test decides: the result equals a plain
point-in-polygon filter over every row, only faster.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import h3
import h3.api.basic_int as h3i
import numpy as np
import shapely
from shapely.geometry import shape

TARGET_CELLS = 20000  # cells of the interior fill: fine enough, still a small join side
INTERIOR, BOUNDARY = 1, 2
_RES_MASK = 0xF << 52
_U64 = (1 << 64) - 1


class RegionError(ValueError):
    pass


def load(path: str):
    """(Multi)Polygon from a GeoJSON geometry, Feature or FeatureCollection (unioned)."""
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read())
    except (OSError, ValueError) as e:
        raise RegionError(f"cannot read region {path}: {e}") from None
    geoms = []
    if doc.get("type") == "FeatureCollection":
        geoms = [f.get("geometry") for f in doc.get("features", [])]
    elif doc.get("type") == "Feature":
        geoms = [doc.get("geometry")]
    else:
        geoms = [doc]
    try:
        shapes = [shape(g) for g in geoms if g]
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise RegionError(f"region {path}: invalid GeoJSON geometry: {e}") from None
    shapes = [s for s in shapes if s.geom_type in ("Polygon", "MultiPolygon")]
    if not shapes:
        raise RegionError(f"region {path}: no Polygon or MultiPolygon found")
    geom = shapely.union_all(shapes)
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    if geom.is_empty:
        raise RegionError(f"region {path}: the polygon is empty")
    return geom


def _margin_deg(geom, res: int) -> float:
    lat_max = max(abs(geom.bounds[1]), abs(geom.bounds[3]))
    cos = max(math.cos(math.radians(min(lat_max + 1.0, 89.0))), 0.02)
    return h3.average_hexagon_edge_length(res, "m") / (111_320.0 * cos)


def choose_res(geom, max_res: int) -> int:
    """Finest resolution ≤ max_res whose fill stays around TARGET_CELLS cells."""
    lat_c = (geom.bounds[1] + geom.bounds[3]) / 2
    area_m2 = geom.area * 111_320.0 ** 2 * math.cos(math.radians(lat_c))
    for res in range(max_res, -1, -1):
        if area_m2 / h3.average_hexagon_area(res, "m^2") <= TARGET_CELLS:
            return res
    return 0


@dataclass
class CellSet:
    res: int
    cells: np.ndarray   # uint64, sorted
    klass: np.ndarray   # INTERIOR | BOUNDARY per cell

    @property
    def n_interior(self) -> int:
        return int((self.klass == INTERIOR).sum())

    @property
    def n_boundary(self) -> int:
        return int((self.klass == BOUNDARY).sum())


def _hexagons(cells: list[int]):
    return shapely.polygons([[(lng, lat) for lat, lng in h3i.cell_to_boundary(c)] for c in cells])


def cover(geom, res: int) -> CellSet:
    d = _margin_deg(geom, res)
    grown = geom.buffer(d)
    cand = sorted(h3i.h3shape_to_cells_experimental(h3.geo_to_h3shape(grown), res, "overlap"))
    if not cand:
        return CellSet(res, np.empty(0, np.uint64), np.empty(0, np.int8))
    shapely.prepare(geom)
    inside = shapely.contains(geom, shapely.buffer(_hexagons(cand), d))
    klass = np.where(inside, INTERIOR, BOUNDARY).astype(np.int8)
    return CellSet(res, np.array(cand, np.uint64), klass)


def parent_sql(expr: str, res: int) -> str:
    """SQL for the index parent of a UBIGINT cell expression (same bits as h3)."""
    clear = _U64 & ~_RES_MASK
    setbits = (res << 52) | ((1 << (3 * (15 - res))) - 1)
    return f"(({expr}) & {clear}::UBIGINT | {setbits}::UBIGINT)"


def contains(geom, lat: np.ndarray, lng: np.ndarray) -> np.ndarray:
    """The exact test: shapely point-in-polygon (points on the edge are outside)."""
    shapely.prepare(geom)
    lat = np.asarray(lat, float)
    lng = np.asarray(lng, float)
    ok = ~np.isnan(lat) & ~np.isnan(lng)
    out = np.zeros(len(lat), bool)
    out[ok] = shapely.contains_xy(geom, lng[ok], lat[ok])
    return out


def spatial_index(cells: np.ndarray, max_tokens: int = 256) -> list[str]:
    """H3 tokens covering the given cells at the finest res with ≤ max_tokens parents."""
    cells = np.unique(np.asarray(cells, np.uint64))
    cells = cells[cells != 0]
    if not len(cells):
        return []
    from transforms import h3util
    res = int(h3util.resolution(cells).min())
    for r in range(res, -1, -1):
        par = np.unique(h3util.parent(cells, r))
        if len(par) <= max_tokens:
            return [f"h3:{int(c):x}" for c in par.tolist()]
    return []
