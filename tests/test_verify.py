"""`hexsieve verify` and the Merkle proofs: every tampering is caught and named."""
from __future__ import annotations

import json
import os
import shutil

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import _buyer_fixture as F
from pipelines import bundle_files, cli_buyer, signing
from pipelines.bundle_verify import VerifyError, verify
from pipelines.export import ExportOptions, export
from transforms import merkle

D1 = "data/witness-2026-11-20-000.parquet"
D2 = "data/witness-2026-11-21-000.parquet"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    signing.keygen(str(d / "seller"))
    signing.keygen(str(d / "other"))
    return {"key": str(d / "seller.key"), "pub": str(d / "seller.pub"), "other": str(d / "other.pub")}


@pytest.fixture(scope="module")
def master(tmp_path_factory, keys):
    d = tmp_path_factory.mktemp("bundle")
    out = F.build(str(d / "OUT"), n_witness=800, tables=("witness",))
    b = str(d / "bundle")
    export(ExportOptions(out=out, dataset="witness", to=b, date_from="2026-11-20", sign_key=keys["key"]))
    return b


@pytest.fixture
def bundle(master, tmp_path):
    b = str(tmp_path / "copy")
    shutil.copytree(master, b)
    return b


def flip(path, offset=None):
    data = bytearray(open(path, "rb").read())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0x01
    open(path, "wb").write(bytes(data))


def fails(b, match, **kw):
    with pytest.raises(VerifyError) as e:
        verify(b, **kw)
    assert match in str(e.value), str(e.value)
    return str(e.value)


def test_clean_bundle_verifies(bundle, keys):
    r = verify(bundle, pubkey=keys["pub"])
    assert r["ok"] and r["signed"] and r["pinned"] and r["rows"] == 1600 and r["files"] == 4


FILES = [D1, D2, "croissant.json", "README.md", "manifest.json", "SHA256SUMS", "manifest.sig.json"]


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_flip_a_byte_in_each_file(bundle, keys, name, where):
    path = os.path.join(bundle, name)
    size = os.path.getsize(path)
    flip(path, {"start": 0, "middle": size // 2, "end": size - 2}[where])
    msg = fails(bundle, "", pubkey=keys["pub"])
    assert name in msg or (name == "manifest.sig.json" and "signature" in msg), msg


def test_flip_every_byte_of_manifest_is_caught(bundle):
    """Even unsigned: SHA256SUMS pins manifest.json byte for byte."""
    os.remove(os.path.join(bundle, "manifest.sig.json"))
    bundle_files.write_sums(bundle)
    verify(bundle, check_croissant=False)
    path = os.path.join(bundle, "manifest.json")
    orig = open(path, "rb").read()
    for i in range(0, len(orig), max(1, len(orig) // 300)):
        flip(path, i)
        with pytest.raises(VerifyError):
            verify(bundle, check_croissant=False)
        open(path, "wb").write(orig)


def _rewrite_without_a_row(path):
    t = pq.read_table(path)
    t = t.slice(1)
    pq.write_table(t, path, row_group_size=65536, compression="zstd", compression_level=3,
                   use_dictionary=True, write_statistics=True, data_page_size=1 << 20, version="2.6")


def _reseal(bundle, edit):
    """What a careless forger does: fix the checksums after changing data."""
    m = json.load(open(os.path.join(bundle, "manifest.json")))
    edit(m)
    for f in m["files"]:
        f.update(bundle_files.describe(os.path.join(bundle, f["path"])))
    bundle_files.write_manifest(bundle, m)
    sig = os.path.join(bundle, "manifest.sig.json")
    if os.path.exists(sig):
        os.remove(sig)
    bundle_files.write_sums(bundle)


def test_drop_a_row(bundle):
    _rewrite_without_a_row(os.path.join(bundle, D1))
    fails(bundle, f"{D1}: s")  # size or sha256


def test_drop_a_row_and_fix_checksums(bundle):
    _rewrite_without_a_row(os.path.join(bundle, D1))
    _reseal(bundle, lambda m: None)
    fails(bundle, f"{D1}: 799 rows, manifest says 800")


def test_drop_a_row_and_fix_counts(bundle):
    _rewrite_without_a_row(os.path.join(bundle, D1))

    def edit(m):
        m["files"][0]["rows"] -= 1
        m["counts"]["exported_rows"] -= 1
        m["merkle"]["leaf_count"] -= 1
    _reseal(bundle, edit)
    fails(bundle, "merkle root: recomputed")


def test_drop_a_row_and_fix_everything_but_the_signature(bundle, keys, master):
    _rewrite_without_a_row(os.path.join(bundle, D1))
    recs = []
    for p in (D1, D2):
        recs += pq.read_table(os.path.join(bundle, p)).column("record_sha256").to_pylist()

    def edit(m):
        m["files"][0]["rows"] -= 1
        m["counts"]["exported_rows"] -= 1
        m["merkle"]["leaf_count"] -= 1
        m["merkle"]["root"] = merkle.root(recs)
    _reseal(bundle, edit)
    # consistent but unsigned: only the pinned key exposes it
    fails(bundle, "missing, but --pubkey was given", pubkey=keys["pub"], check_croissant=False)
    shutil.copy(os.path.join(master, "manifest.sig.json"), bundle)
    bundle_files.write_sums(bundle)
    fails(bundle, "signature does not match", pubkey=keys["pub"])


def test_reorder_files(bundle):
    a, b = os.path.join(bundle, D1), os.path.join(bundle, D2)
    os.rename(a, a + ".tmp")
    os.rename(b, a)
    os.rename(a + ".tmp", b)
    fails(bundle, D1)


def test_reorder_files_in_manifest(bundle):
    _reseal(bundle, lambda m: m["files"].insert(0, m["files"].pop(1)))
    fails(bundle, "out of order")


def test_reorder_rows(bundle):
    p = os.path.join(bundle, D1)
    t = pq.read_table(p)
    pq.write_table(t.take(list(range(1, t.num_rows)) + [0]), p)
    _reseal(bundle, lambda m: None)
    fails(bundle, "merkle root")


def test_extra_missing_and_renamed_files(bundle):
    open(os.path.join(bundle, "data", "extra.parquet"), "wb").write(b"x")
    fails(bundle, "data/extra.parquet: file not listed")
    os.remove(os.path.join(bundle, "data", "extra.parquet"))
    os.remove(os.path.join(bundle, "README.md"))
    fails(bundle, "README.md: listed in manifest.json but missing")


def test_reformatted_manifest(bundle):
    m = json.load(open(os.path.join(bundle, "manifest.json")))
    open(os.path.join(bundle, "manifest.json"), "w").write(json.dumps(m, sort_keys=True, indent=1) + "\n")
    bundle_files.write_sums(bundle)
    fails(bundle, "canonical form")


def test_regenerated_metadata_must_match(bundle):
    """A forger who edits README.md and fixes its hashes is caught by regeneration."""
    p = os.path.join(bundle, "README.md")
    open(p, "a").write("\nAll rows are verified by a notary.\n")
    _reseal(bundle, lambda m: None)
    fails(bundle, "README.md: differs from what the manifest generates")


def test_invalid_croissant_is_reported(bundle):
    p = os.path.join(bundle, "croissant.json")
    doc = json.load(open(p))
    for d in doc["recordSet"][0]["field"]:
        d.pop("dataType")
    open(p, "w").write(json.dumps(doc))
    m = json.load(open(os.path.join(bundle, "manifest.json")))
    m["generator"] = "hexsieve 0.0.0-other"  # skip regeneration: exercise mlcroissant itself
    bundle_files.write_manifest(bundle, m)
    _reseal(bundle, lambda m: None)
    fails(bundle, "croissant.json: mlcroissant validation failed")


def test_signature_keys(bundle, keys):
    fails(bundle, "different key", pubkey=keys["other"])
    assert verify(bundle)["pinned"] is False
    os.remove(os.path.join(bundle, "manifest.sig.json"))
    bundle_files.write_sums(bundle)
    fails(bundle, "not signed", pubkey=keys["pub"])
    assert verify(bundle)["signed"] is False


# ------------------------------------------------------------------ Merkle proofs

def _recs(n):
    return [F._sha("r", i) for i in range(n)]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33])
def test_merkle_proofs_for_every_leaf(n):
    recs = _recs(n)
    root = merkle.root(recs)
    for i in range(n):
        p = merkle.prove(recs, i)
        assert p["root"] == root and merkle.verify_proof(p, root) is None
    assert len(merkle.prove(recs, 0)["path"]) <= max(1, (n - 1).bit_length())


def test_merkle_rejects_forgeries():
    recs = _recs(9)
    root = merkle.root(recs)
    p = merkle.prove(recs, 4)
    assert merkle.verify_proof(dict(p, record_sha256=recs[5]), root)
    assert merkle.verify_proof(dict(p, leaf_index=5), root)
    assert merkle.verify_proof(dict(p, leaf_count=10), root, 9)
    assert merkle.verify_proof(dict(merkle.prove(recs, 8), leaf_count=10), root)
    bad = json.loads(json.dumps(p))
    bad["path"][0]["hash"] = "00" * 32
    assert merkle.verify_proof(bad, root)
    assert merkle.verify_proof(p, "11" * 32)
    assert merkle.verify_proof({"path": []}, root).startswith("malformed")
    # odd nodes are carried, not duplicated: [a, b, c] and [a, b, c, c] differ
    assert merkle.root(recs[:3]) != merkle.root(recs[:3] + recs[2:3])
    # a leaf is never an inner node (domain separation)
    two = merkle.node_hash(merkle.leaf_hash(recs[0]), merkle.leaf_hash(recs[1]))
    assert merkle.root(recs[:2]) == two.hex() != merkle.root([two.hex()])
    assert merkle.root([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_row_proof_via_cli(bundle, keys, tmp_path):
    rec = pq.read_table(os.path.join(bundle, D2)).column("record_sha256")[7].as_py()
    r = CliRunner()
    res = r.invoke(cli_buyer.verify_cmd, [bundle, "--pubkey", keys["pub"], "--row-proof", rec])
    assert res.exit_code == 0, res.output
    proof = json.loads(res.stdout)
    assert proof["record_sha256"] == rec and proof["leaf_index"] == 807 and proof["leaf_count"] == 1600
    pf = tmp_path / "proof.json"
    pf.write_text(json.dumps(proof))
    res = r.invoke(cli_buyer.verify_cmd, [bundle, "--row-proof", str(pf), "--skip-croissant"])
    assert res.exit_code == 0 and "row proof holds" in res.output
    proof["path"][1]["hash"] = "ab" * 32
    pf.write_text(json.dumps(proof))
    res = r.invoke(cli_buyer.verify_cmd, [bundle, "--row-proof", str(pf), "--skip-croissant"])
    assert res.exit_code == 1 and "row proof" in res.output
    res = r.invoke(cli_buyer.verify_cmd, [bundle, "--row-proof", "ff" * 32, "--skip-croissant"])
    assert res.exit_code == 1 and "not in this bundle" in res.output


def test_verify_cli_exit_codes(bundle, keys):
    r = CliRunner()
    res = r.invoke(cli_buyer.verify_cmd, [bundle, "--pubkey", keys["pub"]])
    assert res.exit_code == 0 and res.output.startswith("OK:")
    flip(os.path.join(bundle, D2))
    res = r.invoke(cli_buyer.verify_cmd, [bundle, "--pubkey", keys["pub"]])
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [res.output.strip()]  # one line
    assert f"verification failed: {D2}: sha256" in res.output


def test_keygen_cli(tmp_path):
    r = CliRunner()
    res = r.invoke(cli_buyer.keygen_cmd, [str(tmp_path / "k")])
    assert res.exit_code == 0 and oct(os.stat(tmp_path / "k.key").st_mode & 0o777) == "0o600"
    res = r.invoke(cli_buyer.keygen_cmd, [str(tmp_path / "k")])
    assert res.exit_code == 1 and "not overwriting" in res.output
