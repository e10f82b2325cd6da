"""README.md datasheet (Gebru et al., "Datasheets for Datasets") for a bundle.

Every answer is filled from the manifest, so the datasheet can never drift
from the data it describes, and is byte-identical across re-exports.
"""
from __future__ import annotations

import json


def _table(rows: list[tuple], head: tuple) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return out


def _filters(q: dict) -> list[str]:
    out = [f"- dataset: `{q['dataset']}`",
           f"- dates: {q['from'] or 'first'} .. {q['until'] or 'last'} (UTC partition dates)",
           f"- valid rows only: {'yes' if q['valid_only'] else 'no (invalid rows kept with reasons)'}"]
    if q.get("min_qod") is not None:
        out.append(f"- minimum station QoD score: {q['min_qod']}")
    if q.get("columns"):
        out.append(f"- columns: {', '.join(q['columns'])}")
    r = q.get("region")
    if r:
        out.append(f"- region: `{r['file']}` (sha256 `{r['sha256']}`), H3 res {r['h3_resolution']} "
                   f"({r['interior_cells']} interior + {r['boundary_cells']} boundary cells, "
                   f"{r['boundary_points_tested']} boundary points tested exactly)")
    return out


def render(m: dict) -> bytes:
    ds, c, q = m["dataset"], m["counts"], m["query"]
    dr = " .. ".join(m["date_range"]) if m["date_range"] else "no rows"
    L = [f"# hexsieve {ds} bundle", "",
         f"{c['exported_rows']} rows in {c['files']} Parquet file(s), dates {dr}. "
         f"Licence: {m['licence']}. Merkle root: `{m['merkle']['root']}`.",
         "Verify with `hexsieve verify <this folder> [--pubkey KEY.pub]`, or `sha256sum -c SHA256SUMS`.",
         "", "## Motivation", "",
         f"Buyers of DePIN {ds} data need rows they can trust and trace: every row carries the "
         "verdict of the validation rules, the reasons it failed, and the source file and run "
         "that produced it. This bundle is a reproducible slice: the same query over the same "
         "outputs yields byte-identical files.",
         "", "## Composition", "",
         f"One row per {ds} record (`record_sha256` is the key). Verdicts in this bundle:", ""]
    L += _table(sorted(m["verdicts"].items()), ("verdict", "rows")) if m["verdicts"] else ["(none)"]
    L += ["", "Columns:", ""]
    L += _table([(f["name"], f["type"], f["unit"], f["description"]) for f in m["schema"]],
                ("column", "type", "unit", "meaning"))
    if m["geo"]["geoparquet"]:
        L += ["", "Files are GeoParquet 1.1 with a WKB point `geometry` (OGC:CRS84)."]
    L += ["", f"Row location: {m['geo']['point']}; H3 cells are uint64 indexes.",
          "", "## Collection process", "",
          f"Rows come from {len(m['sources'])} source file(s) processed by {len(m['runs'])} "
          "hexsieve run(s):", ""]
    L += _table([(r["run_id"], r["source"], r["pipeline_version"], r["now"], r["rows"])
                 for r in m["runs"]], ("run", "source", "pipeline", "processed at", "rows"))
    L += ["", "Every source file and its sha256 is listed in `manifest.json` (`sources`).",
          "", "## Preprocessing / cleaning / labeling", "",
          "Records are parsed to a fixed schema (malformed ones are quarantined upstream) and "
          "judged by versioned rule sets:", ""]
    L += _table(sorted(m["rules_versions"].items()), ("rules version", "rows"))
    L += ["", "Export filters:", ""] + _filters(q)
    L += ["", "Excluded by this export:", ""]
    ex = m["excluded"]
    L += [f"- {k}: {v['rows']} rows" for k, v in sorted(ex.items())] or ["- nothing"]
    reasons = ex.get("invalid", {}).get("reasons", {})
    if reasons:
        L += ["", "Reason codes of the excluded invalid rows:", ""]
        L += _table(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])), ("reason", "rows"))
    L += ["", "## Uses", "",
          "Suited to coverage mapping, network-quality analysis and training or evaluating "
          "anomaly/fraud detectors (use `verdict`/`reasons` as labels, mindful that rules flag "
          "rather than prove). Not suited to locating or profiling individual device owners.",
          "", "## Distribution", "",
          f"Licence {m['licence']} (https://spdx.org/licenses/{m['licence']}.html). Contents: "
          "`data/*.parquet`, `manifest.json` (query, counts, per-file sha256/size, schema, "
          "lineage, Merkle root), `croissant.json` (Croissant 1.1 with RAI and PROV), this "
          "README, `SHA256SUMS`, and `manifest.sig.json` when signed (ed25519 over manifest.json).",
          "", "## Maintenance", "",
          "A bundle is an immutable snapshot. Corrections arrive as a new export over newer "
          "outputs, with a new Merkle root. Prove a row's inclusion with "
          "`hexsieve verify <folder> --row-proof <record_sha256>`.",
          "", "## Query", "", "```json",
          json.dumps({k: v for k, v in q.items() if k != "region"}, sort_keys=True, indent=2), "```", ""]
    return "\n".join(L).encode()
