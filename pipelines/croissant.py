"""Croissant 1.1 metadata for a bundle, derived only from its manifest.

Derived only from the manifest so it is deterministic and the verifier can
cross-check it. Carries the PROV lineage (source files, pipeline runs, the
export itself), the Responsible-AI answers (rai:), and the geo extension
(CRS plus H3 tokens covering the rows). Validated with `mlcroissant`.
"""
from __future__ import annotations

import json

CONFORMS_TO = "http://mlcommons.org/croissant/1.1"
CONTEXT = {
    "@language": "en", "@vocab": "https://schema.org/", "sc": "https://schema.org/",
    "cr": "http://mlcommons.org/croissant/", "rai": "http://mlcommons.org/croissant/RAI/",
    "dct": "http://purl.org/dc/terms/", "prov": "http://www.w3.org/ns/prov#",
    "geocr": "http://mlcommons.org/croissant/geocr/",
    "arrayShape": "cr:arrayShape", "citeAs": "cr:citeAs", "column": "cr:column",
    "conformsTo": "dct:conformsTo", "containedIn": "cr:containedIn",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "description": {"@container": "@language"}, "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"}, "extract": "cr:extract",
    "field": "cr:field", "fileObject": "cr:fileObject", "fileProperty": "cr:fileProperty",
    "fileSet": "cr:fileSet", "format": "cr:format", "includes": "cr:includes",
    "isArray": "cr:isArray", "isLiveDataset": "cr:isLiveDataset", "jsonPath": "cr:jsonPath",
    "key": "cr:key", "md5": "cr:md5", "name": {"@container": "@language"},
    "parentField": "cr:parentField", "path": "cr:path", "recordSet": "cr:recordSet",
    "references": "cr:references", "regex": "cr:regex", "repeated": "cr:repeated",
    "replace": "cr:replace", "samplingRate": "cr:samplingRate", "separator": "cr:separator",
    "source": "cr:source", "subField": "cr:subField", "transform": "cr:transform",
}
H3_COLUMNS = {"witness_cell", "beaconer_cell", "cell"}


def licence_url(spdx: str) -> str:
    return f"https://spdx.org/licenses/{spdx}.html"


def data_type(arrow_type: str) -> tuple[str, bool]:
    """(Croissant dataType, is array) for an Arrow type string."""
    t = arrow_type
    if t.startswith(("list<", "large_list<")):
        inner = t[t.index(":") + 1:-1].strip() if ":" in t else t[t.index("<") + 1:-1]
        return data_type(inner)[0], True
    if t.startswith(("int", "uint")):
        return "sc:Integer", False
    if t in ("double", "float", "halffloat") or t.startswith("decimal"):
        return "sc:Float", False
    if t == "bool":
        return "sc:Boolean", False
    if t.startswith("timestamp"):
        return "sc:DateTime", False
    if t.startswith("date"):
        return "sc:Date", False
    return "sc:Text", False


def _field(ds: str, col: dict, run_ids: list[str]) -> dict:
    dtype, is_array = data_type(col["type"])
    desc = col["description"] or col["name"]
    if col["unit"]:
        desc += f" [{col['unit']}]"
    f = {"@type": "cr:Field", "@id": f"{ds}/{col['name']}", "name": col["name"],
         "description": desc, "dataType": dtype,
         "source": {"fileSet": {"@id": "parquet-files"}, "extract": {"column": col["name"]}}}
    if is_array:
        f["isArray"] = True
        f["arrayShape"] = "-1"
    if col["name"] in H3_COLUMNS:
        f["description"] += " (H3 cell index as unsigned 64-bit integer)"
        f["geocr:spatialIndex"] = "h3"
    if col["name"] == "geometry":
        f["description"] = "point geometry as WKB (GeoParquet 1.1, OGC:CRS84)"
    f["prov:wasGeneratedBy"] = [{"@id": f"run:{r}"} for r in run_ids]
    return f


def _rai(m: dict) -> dict:
    q, ds = m["query"], m["dataset"]
    ex = "; ".join(f"{k}: {v['rows']} rows" for k, v in sorted(m["excluded"].items())) or "none"
    return {
        "rai:dataCollection": (
            f"{ds} records from DePIN network reports, ingested by hexsieve runs "
            f"({', '.join(r['run_id'] for r in m['runs']) or 'none'}) from "
            f"{len(m['sources'])} source file(s) listed in manifest.json."),
        "rai:dataCollectionType": ["Automated data collection", "Secondary data analysis"],
        "rai:dataCollectionTimeframe": m["date_range"] or [],
        "rai:dataPreprocessingProtocol": [
            "Records parsed to a fixed Arrow schema; malformed records quarantined, not dropped.",
            f"Each row judged by rule sets {', '.join(sorted(m['rules_versions'])) or 'n/a'}; "
            "verdict and reason codes kept on every row.",
            f"Export filters: {json.dumps({k: v for k, v in q.items() if k != 'region'}, sort_keys=True)}"
            + (f"; region {q['region']['file']} (H3 res {q['region']['h3_resolution']}, exact at "
               "the boundary)" if q.get("region") else ""),
            f"Excluded by the export: {ex}."],
        "rai:dataLimitations": (
            "Locations are asserted or device-reported and quantised to H3 cells; rule verdicts "
            "flag but cannot prove fraud; coverage reflects where devices are deployed."),
        "rai:dataBiases": (
            "Hotspots, cameras and stations cluster in dense, wealthier areas; rows are a "
            "convenience sample of deployed devices, not a uniform spatial sample."),
        "rai:personalSensitiveInformation": (
            "Device locations and public keys can locate device owners (homes); imagery may "
            "show people or plates. Aggregate to coarse H3 cells before publishing."),
        "rai:dataUseCases": ["coverage mapping", "network quality analysis",
                             "training and evaluating fraud/anomaly detectors"],
        "rai:dataReleaseMaintenancePlan": (
            "Bundles are immutable snapshots; a new export over newer outputs is a new "
            "version with its own manifest, Merkle root and signature."),
    }


def build(m: dict) -> dict:
    ds = m["dataset"]
    run_ids = [r["run_id"] for r in m["runs"]]
    data_files = [f for f in m["files"] if f["kind"] == "data"]
    dist = [{"@type": "cr:FileObject", "@id": f["path"], "name": f["path"],
             "contentUrl": f["path"], "encodingFormat": "application/x-parquet",
             "contentSize": f"{f['bytes']} B", "sha256": f["sha256"],
             "prov:wasGeneratedBy": {"@id": "activity:export"}} for f in data_files]
    dist.append({"@type": "cr:FileSet", "@id": "parquet-files", "name": "parquet-files",
                 "description": f"{ds} rows, one file per date (and per {1_000_000} rows)",
                 "encodingFormat": "application/x-parquet", "includes": "data/*.parquet"})
    dr = m["date_range"] or ["", ""]
    title = f"hexsieve {ds} export {dr[0]}..{dr[1]}" if m["date_range"] else f"hexsieve {ds} export"
    doc = {
        "@context": CONTEXT, "@type": "sc:Dataset", "conformsTo": CONFORMS_TO,
        "name": title,
        "description": (f"{m['counts']['exported_rows']} validated {ds} rows with per-row "
                        "verdicts, reason codes and provenance, exported by hexsieve. "
                        f"Merkle root {m['merkle']['root']}."),
        "license": licence_url(m["licence"]),
        "url": f"https://hexsieve.invalid/bundles/{m['merkle']['root']}",
        "creator": {"@type": "sc:Organization", "name": "hexsieve"},
        "publisher": {"@type": "sc:Organization", "name": "hexsieve"},
        "datePublished": m["published"], "dateModified": m["published"],
        "version": "1.0.0",
        "keywords": ["DePIN", "H3", ds, "provenance"],
        "citeAs": f"hexsieve {ds} bundle, Merkle root {m['merkle']['root']}",
        "isLiveDataset": False,
        "geocr:coordinateReferenceSystem": "EPSG:4326",
        "geocr:spatialIndex": m["geo"]["h3_spatial_index"],
        "prov:wasDerivedFrom": [{"@id": s["uri"], "sha256": s["sha256"]} for s in m["sources"]],
        "prov:wasGeneratedBy": [
            {"@type": "prov:Activity", "@id": "activity:export", "name": "hexsieve export",
             "prov:used": [{"@id": f"run:{r}"} for r in run_ids],
             "description": f"query {json.dumps(m['query'], sort_keys=True)[:2000]}"},
            *[{"@type": "prov:Activity", "@id": f"run:{r['run_id']}",
               "name": f"hexsieve run {r['run_id']}",
               "description": f"source {r.get('source')}, pipeline {r.get('pipeline_version')}, "
                              f"processing time {r.get('now')}"} for r in m["runs"]]],
        "prov:wasAttributedTo": {"@type": "prov:SoftwareAgent", "@id": "agent:hexsieve",
                                 "name": m["generator"]},
        **_rai(m),
        "distribution": dist,
        "recordSet": [{
            "@type": "cr:RecordSet", "@id": ds, "name": ds,
            "description": f"one row per validated {ds} record",
            "key": {"@id": f"{ds}/record_sha256"},
            "prov:wasGeneratedBy": [{"@id": f"run:{r}"} for r in run_ids],
            "field": [_field(ds, c, run_ids) for c in m["schema"]],
        }],
    }
    return doc


def render(m: dict) -> bytes:
    return (json.dumps(build(m), indent=2, sort_keys=False, ensure_ascii=False) + "\n").encode()


def validate(path: str) -> list[str]:
    """mlcroissant's errors for the file (empty list = valid)."""
    import logging

    import mlcroissant as mlc
    logging.getLogger("absl").setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging
        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass
    try:
        mlc.Dataset(jsonld=path)
    except mlc.ValidationError as e:
        return [line for line in str(e).splitlines() if line.strip()]
    except Exception as e:  # mlcroissant raises plain errors for unparsable JSON-LD
        return [f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"]
    return []
