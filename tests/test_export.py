"""`hexsieve export`: region selection exactness, bundle contents, determinism."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import duckdb
import geopandas as gpd
import h3.api.basic_int as h3i
import numpy as np
import pyarrow.parquet as pq
import pytest
import shapely
from click.testing import CliRunner

import _buyer_fixture as F
from pipelines import cli_buyer, croissant, region
from pipelines.export import ExportError, ExportOptions, export

HOLE = {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [
    [[13.25, 52.43], [13.55, 52.45], [13.52, 52.57], [13.30, 52.55], [13.25, 52.43]],
    [[13.35, 52.48], [13.45, 52.48], [13.45, 52.52], [13.35, 52.52], [13.35, 52.48]]]}}


def _edge_polygon():
    """A rectangle straddling an edge of a res-5 cell: rows on both sides of it
    have different coarse parents, and H3 children stick out of their parents."""
    c5 = h3i.latlng_to_cell(52.5, 13.4, 5)
    (a_lat, a_lng), (b_lat, b_lng) = h3i.cell_to_boundary(c5)[:2]
    m_lat, m_lng = (a_lat + b_lat) / 2, (a_lng + b_lng) / 2
    d = 0.03
    ring = [[m_lng - d, m_lat - d], [m_lng + d, m_lat - d * 0.6], [m_lng + d, m_lat + d],
            [m_lng - d * 0.7, m_lat + d], [m_lng - d, m_lat - d]]
    poly = {"type": "Polygon", "coordinates": [ring]}
    box = (m_lat - 1.5 * d, m_lat + 1.5 * d, m_lng - 1.5 * d, m_lng + 1.5 * d)
    return poly, box, c5


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return F.build(str(tmp_path_factory.mktemp("out") / "OUT"))


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    poly, box, c5 = _edge_polygon()
    d = tmp_path_factory.mktemp("edge")
    root = F.build(str(d / "OUT"), n_witness=1500, n_imagery=3000, box=box, n_hotspots=2500,
                   tables=("witness", "imagery", "sensor"))
    path = str(d / "edge.geojson")
    with open(path, "w") as f:
        json.dump(poly, f)
    return root, path, c5


@pytest.fixture(scope="module")
def hole(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("geo") / "hole.geojson")
    with open(path, "w") as f:
        json.dump(HOLE, f)
    return path


def reference(out, dataset, geom, *, valid_only=False, lo=None, hi=None):
    """Plain shapely point-in-polygon over every row: the expected row set."""
    where = ["true"]
    if valid_only:
        where.append("verdict = 'valid'")
    if lo:
        where.append(f"date >= DATE '{lo}'")
    if hi:
        where.append(f"date <= DATE '{hi}'")
    pts = "witness_cell" if dataset == "witness" else "lat, lon"
    rows = duckdb.sql(f"SELECT record_sha256, {pts} FROM read_parquet('{out}/{dataset}/date=*/*.parquet', "
                      f"hive_partitioning=true) WHERE {' AND '.join(where)}").fetchall()
    keep = set()
    for r in rows:
        if dataset == "witness":
            if not r[1]:
                continue
            lat, lng = h3i.cell_to_latlng(r[1])
        else:
            lat, lng = r[1], r[2]
            if lat is None or lng is None:
                continue
        if shapely.contains_xy(geom, lng, lat):
            keep.add(r[0])
    return keep, len(rows)


def exported(bundle):
    t = pq.read_table(os.path.join(bundle, "data"))
    return t.column("record_sha256").to_pylist()


@pytest.mark.parametrize("dataset", ["witness", "imagery", "sensor"])
def test_region_with_hole_equals_point_in_polygon(out, hole, tmp_path, dataset):
    geom = region.load(hole)
    m = export(ExportOptions(out=out, dataset=dataset, to=str(tmp_path / "b"), region=hole,
                             valid_only=True, date_from="2026-11-20"))
    want, n = reference(out, dataset, geom, valid_only=True, lo="2026-11-20")
    got = exported(str(tmp_path / "b"))
    assert len(got) == len(set(got)) and set(got) == want and want
    r = m["query"]["region"]
    assert r["interior_cells"] > 0 and r["boundary_cells"] > 0
    ex = m["excluded"]
    assert m["counts"]["window_rows"] == len(got) + ex["invalid"]["rows"] + \
        ex["outside_region"]["rows"] + ex["no_location"]["rows"]
    # rows inside the hole are excluded
    hole_poly = shapely.Polygon(HOLE["geometry"]["coordinates"][1])
    t = pq.read_table(os.path.join(str(tmp_path / "b"), "data"))
    if dataset != "witness":
        lat, lon = np.array(t.column("lat").to_pylist(), float), np.array(t.column("lon").to_pylist(), float)
        assert not shapely.contains_xy(hole_poly, lon, lat).any()


@pytest.mark.parametrize("res", [None, 5, 6, 9])
@pytest.mark.parametrize("dataset", ["witness", "imagery"])
def test_region_crossing_res_boundary(edge, tmp_path, dataset, res):
    root, path, c5 = edge
    geom = region.load(path)
    # the polygon really straddles the res-5 cell edge
    cell_poly = shapely.Polygon([(b, a) for a, b in h3i.cell_to_boundary(c5)])
    assert geom.intersects(cell_poly) and not cell_poly.contains(geom)
    m = export(ExportOptions(out=root, dataset=dataset, to=str(tmp_path / "b"), region=path, region_res=res))
    want, _ = reference(root, dataset, geom)
    assert set(exported(str(tmp_path / "b"))) == want and len(want) > 100
    if res is None:
        assert m["query"]["region"]["h3_resolution"] >= 9


def test_children_outside_parent_are_handled(edge, tmp_path):
    """Imagery points whose res-15 cell's res-6 parent does not contain them
    geometrically exist in the fixture; the export still matches exactly."""
    root, path, _ = edge
    t = duckdb.sql(f"SELECT lat, lon, cell FROM read_parquet('{root}/imagery/date=*/*.parquet')").fetchall()
    stray = 0
    for lat, lon, c in t[:3000]:
        p = h3i.cell_to_parent(c, 6)
        if not shapely.Polygon([(b, a) for a, b in h3i.cell_to_boundary(p)]).contains(shapely.Point(lon, lat)):
            stray += 1
    assert stray > 0


def test_multipolygon_feature_collection(out, tmp_path):
    fc = {"type": "FeatureCollection", "features": [
        HOLE, {"type": "Feature", "properties": {}, "geometry": {"type": "MultiPolygon", "coordinates": [
            [[[13.56, 52.41], [13.59, 52.41], [13.59, 52.44], [13.56, 52.41]]],
            [[[13.21, 52.57], [13.24, 52.57], [13.24, 52.59], [13.21, 52.59], [13.21, 52.57]]]]}}]}
    path = str(tmp_path / "fc.geojson")
    with open(path, "w") as f:
        json.dump(fc, f)
    export(ExportOptions(out=out, dataset="imagery", to=str(tmp_path / "b"), region=path))
    want, _ = reference(out, "imagery", region.load(path))
    assert set(exported(str(tmp_path / "b"))) == want


def test_region_errors(out, tmp_path):
    bad = tmp_path / "line.geojson"
    bad.write_text(json.dumps({"type": "LineString", "coordinates": [[0, 0], [1, 1]]}))
    with pytest.raises(region.RegionError, match="no Polygon"):
        export(ExportOptions(out=out, dataset="witness", to=str(tmp_path / "b"), region=str(bad)))
    ok = tmp_path / "h.geojson"
    ok.write_text(json.dumps(HOLE))
    with pytest.raises(ExportError, match="finer than the data"):  # witness cells are res 12
        export(ExportOptions(out=out, dataset="witness", to=str(tmp_path / "c"), region=str(ok), region_res=13))


def test_deterministic(out, hole, tmp_path):
    key = tmp_path / "k"
    from pipelines import signing
    signing.keygen(str(key))
    bundles = []
    for i in range(2):
        b = str(tmp_path / f"b{i}")
        export(ExportOptions(out=out, dataset="imagery", to=b, region=hole, valid_only=True,
                             sign_key=str(key) + ".key", licence="CC-BY-4.0"))
        bundles.append(b)
    files = [sorted(os.path.relpath(os.path.join(r, n), b) for r, _, ns in os.walk(b) for n in ns)
             for b in bundles]
    assert files[0] == files[1] and "manifest.sig.json" in files[0]
    for rel in files[0]:
        a = open(os.path.join(bundles[0], rel), "rb").read()
        b = open(os.path.join(bundles[1], rel), "rb").read()
        assert a == b, rel


def test_row_order_and_layout(out, tmp_path):
    b = str(tmp_path / "b")
    m = export(ExportOptions(out=out, dataset="witness", to=b, date_from="2026-11-20", date_until="2026-11-21"))
    assert [f["path"] for f in m["files"] if f["kind"] == "data"] == [
        "data/witness-2026-11-20-000.parquet", "data/witness-2026-11-21-000.parquet"]
    t = pq.read_table(os.path.join(b, "data", "witness-2026-11-20-000.parquet"))
    keys = list(zip(t.column("source_uri").to_pylist(), t.column("source_record").to_pylist()))
    assert keys == sorted(keys) and t.num_rows == 2000
    assert t.schema.field("signal").metadata[b"unit"] == b"ddBm (dBm\xc3\x9710)".decode().encode()
    assert str(t.schema.field("date").type) == "date32[day]"
    md = pq.ParquetFile(os.path.join(b, "data", "witness-2026-11-20-000.parquet")).metadata
    assert md.row_group(0).column(0).compression == "ZSTD"


def test_manifest_lineage_and_exclusions(out, tmp_path):
    b = str(tmp_path / "b")
    m = export(ExportOptions(out=out, dataset="witness", to=b, valid_only=True, date_until="2026-11-19"))
    want = duckdb.sql(f"""SELECT r, count(*) FROM (SELECT unnest(reasons) r FROM
        read_parquet('{out}/witness/date=2026-11-19/*.parquet') WHERE verdict='invalid') GROUP BY r""").fetchall()
    assert m["excluded"]["invalid"]["reasons"] == dict(want)
    assert m["counts"]["window_rows"] == 2000
    assert m["counts"]["exported_rows"] + m["excluded"]["invalid"]["rows"] == 2000
    assert [r["run_id"] for r in m["runs"]] == ["run-2026-11-19"]
    assert m["runs"][0]["manifest"] == "_runs/run-2026-11-19.json" and m["runs"][0]["now"]
    assert m["sources"] == [{"uri": "gs://poc/witness/2026-11-19/reports-run-2026-11-19.jsonl.gz",
                             "sha256": F._sha("gs://poc/witness/2026-11-19/reports-run-2026-11-19.jsonl.gz"),
                             "rows": m["counts"]["exported_rows"]}]
    assert m["rules_versions"] == {"witness-1.0.0": m["counts"]["exported_rows"]}
    assert m["verdicts"] == {"valid": m["counts"]["exported_rows"]}
    assert m["published"] == "2026-11-19"
    assert {f["path"] for f in m["files"]} == {"data/witness-2026-11-19-000.parquet", "croissant.json", "README.md"}
    assert all(len(f["sha256"]) == 64 and f["bytes"] > 0 for f in m["files"])
    assert [c["name"] for c in m["schema"]][-1] == "date"


def test_columns_and_min_qod(out, tmp_path):
    b = str(tmp_path / "b")
    m = export(ExportOptions(out=out, dataset="sensor", to=b, columns=["station_id", "temperature"],
                             min_qod=0.6))
    t = pq.read_table(os.path.join(b, "data"))
    assert t.column_names == ["station_id", "temperature", "record_sha256", "date", "geometry"]
    ok = {f"st{i:03d}" for i in range(30) if round(0.2 + 0.8 * i / 29, 3) >= 0.6}
    assert set(t.column("station_id").to_pylist()) == ok
    assert m["excluded"]["below_min_qod"]["rows"] == 3 * 24 * (30 - len(ok))
    with pytest.raises(ExportError, match="unknown column"):
        export(ExportOptions(out=out, dataset="sensor", to=str(tmp_path / "c"), columns=["nope"]))
    with pytest.raises(ExportError, match="sensor only"):
        export(ExportOptions(out=out, dataset="witness", to=str(tmp_path / "d"), min_qod=0.5))
    with pytest.raises(ExportError, match="not empty"):
        export(ExportOptions(out=out, dataset="sensor", to=b))


def test_geoparquet(out, hole, tmp_path):
    b = str(tmp_path / "b")
    export(ExportOptions(out=out, dataset="imagery", to=b, region=hole, date_from="2026-11-21"))
    g = gpd.read_parquet(os.path.join(b, "data", "imagery-2026-11-21-000.parquet"))
    assert g.crs.to_string() == "OGC:CRS84" and (g.geom_type == "Point").all()
    assert np.allclose(g.geometry.x, g["lon"]) and np.allclose(g.geometry.y, g["lat"])
    geo = json.loads(pq.read_schema(os.path.join(b, "data", "imagery-2026-11-21-000.parquet")).metadata[b"geo"])
    assert geo["primary_column"] == "geometry" and len(geo["columns"]["geometry"]["bbox"]) == 4


def test_croissant_validates(out, hole, tmp_path):
    b = str(tmp_path / "b")
    export(ExportOptions(out=out, dataset="witness", to=b, region=hole, valid_only=True, licence="CC-BY-4.0"))
    path = os.path.join(b, "croissant.json")
    assert croissant.validate(path) == []
    doc = json.load(open(path))
    assert doc["conformsTo"] == "http://mlcommons.org/croissant/1.1"
    assert doc["license"] == "https://spdx.org/licenses/CC-BY-4.0.html" and doc["datePublished"]
    for k in ("rai:dataCollection", "rai:dataBiases", "rai:personalSensitiveInformation",
              "rai:dataLimitations", "rai:dataUseCases", "prov:wasDerivedFrom", "prov:wasGeneratedBy",
              "prov:wasAttributedTo", "geocr:coordinateReferenceSystem"):
        assert doc[k], k
    assert doc["geocr:spatialIndex"] and all(t.startswith("h3:") for t in doc["geocr:spatialIndex"])
    files = [d for d in doc["distribution"] if d["@type"] == "cr:FileObject"]
    assert files and all(len(d["sha256"]) == 64 for d in files)
    cli = os.path.join(os.path.dirname(sys.executable), "mlcroissant")
    if os.path.exists(cli):  # the command-line validator as a buyer would run it
        r = subprocess.run([cli, "validate", "--jsonld", path], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
    # the validator is live: a FileObject without a checksum is rejected
    del files[0]["sha256"]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(doc))
    assert croissant.validate(str(broken))


def test_datasheet_sections(out, tmp_path):
    b = str(tmp_path / "b")
    export(ExportOptions(out=out, dataset="witness", to=b, valid_only=True))
    text = open(os.path.join(b, "README.md")).read()
    for s in ("Motivation", "Composition", "Collection process", "Preprocessing", "Uses",
              "Distribution", "Maintenance"):
        assert f"## {s}" in text, s
    assert "run-2026-11-20" in text and "witness-1.0.0" in text and "stale" in text


def test_empty_selection_still_a_bundle(out, tmp_path):
    far = tmp_path / "far.geojson"
    far.write_text(json.dumps({"type": "Polygon", "coordinates": [[[0, 0], [0.1, 0], [0.1, 0.1], [0, 0]]]}))
    b = str(tmp_path / "b")
    m = export(ExportOptions(out=out, dataset="imagery", to=b, region=str(far)))
    assert m["counts"]["exported_rows"] == 0 and m["schema"]
    from pipelines.bundle_verify import verify
    assert verify(b)["rows"] == 0


def test_cli_export(out, hole, tmp_path):
    r = CliRunner()
    res = r.invoke(cli_buyer.export_cmd, ["--out", out, "--dataset", "witness", "--to", str(tmp_path / "b"),
                                          "--from", "2026-11-20", "--region", hole, "--valid-only",
                                          "--columns", "pub_key,witness_cell,verdict"])
    assert res.exit_code == 0, res.output
    assert "merkle root" in res.output
    res = r.invoke(cli_buyer.export_cmd, ["--out", out, "--dataset", "witness", "--to", str(tmp_path / "c"),
                                          "--from", "20-11-2026"])
    assert res.exit_code == 1 and res.output.strip().startswith("Error: --from: not a date")
    res = r.invoke(cli_buyer.export_cmd, ["--out", out, "--dataset", "witness", "--to", str(tmp_path / "d"),
                                          "--licence", "CC BY 4.0"])
    assert res.exit_code == 1 and "SPDX" in res.output
