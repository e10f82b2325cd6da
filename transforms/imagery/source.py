"""How frame metadata files are recognised: hexsieve's own form, Hivemapper
frames and Mapillary image descriptions, one JSON object (or Parquet row) per
frame.

Field mapping (input name → canonical column):

| input field              | canonical      | accepted form                                        |
|--------------------------|----------------|------------------------------------------------------|
| `MAPLatitude`            | `lat`          | number, degrees                                      |
| `MAPLongitude`, `lng`    | `lon`          | number, degrees                                      |
| `MAPAltitude`            | `alt`          | number, m                                            |
| `MAPCaptureTime`, `t`    | `captured_at`  | see "Times" below                                    |
| `MAPCompassHeading`      | `heading`      | `{TrueHeading, MagneticHeading}` object (TrueHeading |
|                          |                | wins, MagneticHeading when it is absent) or a number |
| `MAPSequenceUUID`        | `sequence_id`  | text                                                 |
| `MAPDeviceMake`          | `device_make`  | text                                                 |
| `MAPDeviceModel`         | `device_model` | text                                                 |
| `MAPCameraUUID`, `deviceId` | `device_id` | text                                            |
| `MAPPhotoUUID`           | `frame_id`     | text                                                 |
| `MAPGPSAccuracyMeters`   | `eph`          | number, m (horizontal accuracy ≈ EPH)                |
| `md5sum`                 | `image_md5`    | hex text                                             |
| `filesize`               | `bytes`        | integer                                              |
| `filename`               | `image_uri`    | text                                                 |

Canonical names always win over an alias when both are present.

Times (`captured_at`, `received_at`): a JSON number or numeric text is ms
since the Unix epoch; text is ISO 8601 (`YYYY-MM-DD[T ]hh:mm[:ss[.fff…]]`
with `Z`, `±hh`, `±hhmm` or `±hh:mm`; no zone = UTC) or Mapillary's
`YYYY_MM_DD_HH_MM_SS[_fff]` (UTC). Fractions beyond ms are truncated.
Anything else quarantines the record (`bad_value`).

Derived identity: a Mapillary description carries no device id, and each of
its sequences comes from one camera, so a missing `device_id` becomes
`"<make>/<model>/<sequence_id>"` (each sequence judged as its own device);
without a sequence id either, the record is quarantined. A missing
`frame_id` becomes the first of `image_uri`, `image_sha256`, `image_md5`.

`fix` accepts '3D'/'2D'/'none' (any case), 'no fix', or the numeric
u-blox/NMEA fix type (3, 4 → 3D; 2 → 2D; 0, 1, 5 → none); other values are
quarantined.
`heading` is wrapped into [0, 360). Unknown fields are ignored.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.imagery import RAW_FRAME
from transforms.sources import SourceSpec

MAPILLARY_ALIASES = {
    "MAPLatitude": "lat",
    "MAPLongitude": "lon",
    "lng": "lon",
    "MAPAltitude": "alt",
    "MAPCaptureTime": "captured_at",
    "t": "captured_at",
    "MAPCompassHeading": "heading",
    "MAPSequenceUUID": "sequence_id",
    "MAPDeviceMake": "device_make",
    "MAPDeviceModel": "device_model",
    "MAPCameraUUID": "device_id",
    "deviceId": "device_id",
    "MAPPhotoUUID": "frame_id",
    "MAPGPSAccuracyMeters": "eph",
    "md5sum": "image_md5",
    "filesize": "bytes",
    "filename": "image_uri",
}

_HEADING_OBJECT = pa.struct([pa.field("TrueHeading", pa.float64()),
                             pa.field("MagneticHeading", pa.float64())])
_DERIVED_IDS = ("frame_id", "device_id")
# Identity may be derived by `normalize`, so it is not required at parse time.
PARSE_FRAME = pa.schema([f.with_nullable(True) if f.name in _DERIVED_IDS else f for f in RAW_FRAME],
                        metadata=RAW_FRAME.metadata)
# What `normalize` returns: rows it rejects still hold nulls until the parser drops them.
_NORMALIZED = pa.schema([f.with_nullable(True) for f in PARSE_FRAME])


def number_as_text(col: pa.Array) -> pa.Array:
    """A JSON number where text was expected, as text the time parser reads
    back exactly (integral values without an exponent)."""
    x = col.cast(pa.float64())
    whole = pc.and_(pc.equal(pc.round(x), x), pc.less(pc.abs(x), 9e15))
    as_int = pc.if_else(whole, x, 0.0).cast(pa.int64()).cast(pa.string())
    return pc.if_else(whole, as_int, x.cast(pa.string()))


def heading_from_object(col: pa.Array) -> pa.Array:
    return pc.coalesce(pc.struct_field(col, "TrueHeading"), pc.struct_field(col, "MagneticHeading"))



# --- time text → ms --------------------------------------------------------

_NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
_ISO = (r"^(?P<Y>\d{4})-(?P<M>\d{2})-(?P<D>\d{2})[Tt ](?P<h>\d{2}):(?P<m>\d{2})"
        r"(?::(?P<s>\d{2})(?:[.,](?P<f>\d+))?)?"
        r"(?P<z>[Zz]|[+-]\d{2}(?::?\d{2})?)?$")
_MAPILLARY = (r"^(?P<Y>\d{4})_(?P<M>\d{2})_(?P<D>\d{2})_(?P<h>\d{2})_(?P<m>\d{2})_(?P<s>\d{2})"
              r"(?:_(?P<f>\d+))?(?P<z>)$")
_OFFSET = r"^(?P<sign>[+-])(?P<oh>\d{2}):?(?P<om>\d{2})?$"
_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
_MAX_ABS_MS = 8.64e15  # ±273 790 years: the ECMAScript Date range


def _ints(s: pa.StructArray, name: str, digits: int | None = None) -> np.ndarray:
    v = pc.fill_null(pc.struct_field(s, name), "")
    if digits:
        v = pc.utf8_rpad(pc.utf8_slice_codeunits(v, 0, digits), digits, "0")
    v = pc.if_else(pc.equal(v, ""), "0", v)
    return v.cast(pa.int64()).to_numpy(zero_copy_only=False)


def _days_from_civil(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of a proleptic Gregorian date, vectorized."""
    y = y - (m <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    doy = (153 * (m + np.where(m > 2, -3, 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _clock_ms(text: pa.Array, pattern: str) -> tuple[np.ndarray, np.ndarray]:
    """(ms, ok) for text matching a date-time pattern with named parts."""
    n = len(text)
    hit = pc.fill_null(pc.match_substring_regex(text, pattern), False).to_numpy(zero_copy_only=False)
    if not hit.any():
        return np.zeros(n, np.int64), hit
    parts = pc.extract_regex(text, pattern)  # non-matching rows: null struct → zeros
    Y, M, D = _ints(parts, "Y"), _ints(parts, "M"), _ints(parts, "D")
    h, mi, s, f = _ints(parts, "h"), _ints(parts, "m"), _ints(parts, "s"), _ints(parts, "f", 3)
    zone = pc.fill_null(pc.struct_field(parts, "z"), "")
    off = pc.extract_regex(pc.if_else(pc.match_substring_regex(zone, _OFFSET), zone, "+00:00"), _OFFSET)
    sign = np.where(pc.struct_field(off, "sign").to_numpy(zero_copy_only=False) == "-", -1, 1)
    offset_min = sign * (_ints(off, "oh") * 60 + _ints(off, "om"))
    mc = np.clip(M, 1, 12)
    leap = ((Y % 4 == 0) & (Y % 100 != 0)) | (Y % 400 == 0)
    dim = _DAYS[mc - 1] + ((mc == 2) & leap)
    ok = hit & (M >= 1) & (M <= 12) & (D >= 1) & (D <= dim) & (h <= 23) & (mi <= 59) & (s <= 60) \
        & (np.abs(offset_min) <= 18 * 60)
    days = _days_from_civil(Y, mc, np.clip(D, 1, 31))
    ms = (((days * 24 + h) * 60 + mi) * 60 + s) * 1000 + f - offset_min * 60_000
    return np.where(ok, ms, 0), ok


def parse_time_ms(col: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Time text (or numbers) → (ms int64, ok, present). `present` is False for nulls;
    ok is False where a present value is not a time we accept."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if not pa.types.is_string(col.type) and not pa.types.is_large_string(col.type):
        col = number_as_text(col) if (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)) \
            else col.cast(pa.string())
    text = pc.utf8_trim_whitespace(col)
    present = pc.is_valid(col).to_numpy(zero_copy_only=False)
    num = pc.fill_null(pc.match_substring_regex(text, _NUMBER), False).to_numpy(zero_copy_only=False)
    value = pc.if_else(pa.array(num), text, "0").cast(pa.float64()).to_numpy(zero_copy_only=False)
    num_ok = num & np.isfinite(value) & (np.abs(value) < _MAX_ABS_MS)
    ms = np.where(num_ok, np.floor(np.where(num_ok, value, 0)), 0).astype(np.int64)
    ok = num_ok
    for pattern in (_ISO, _MAPILLARY):
        t_ms, t_ok = _clock_ms(text, pattern)
        ms = np.where(t_ok, t_ms, ms)
        ok = ok | t_ok
    return ms, ok & present, present


# --- the normaliser --------------------------------------------------------

# Numeric codes are the NMEA GSA / u-blox fixType: 0 none, 1 dead reckoning
# only, 2 2D, 3 3D, 4 GNSS + dead reckoning, 5 time only.
_FIX_WORDS = {"3D": "3D", "3": "3D", "4": "3D", "3D FIX": "3D", "2D": "2D", "2": "2D", "2D FIX": "2D",
              "NONE": "none", "NO FIX": "none", "NOFIX": "none", "0": "none", "1": "none", "5": "none"}


def _normal_fix(col: pa.Array) -> tuple[pa.Array, np.ndarray]:
    key = pc.utf8_upper(pc.utf8_trim_whitespace(col))
    words = pa.array(list(_FIX_WORDS))
    idx = pc.index_in(key, value_set=words)
    out = pc.take(pa.array(list(_FIX_WORDS.values())), idx)
    bad = pc.and_(pc.is_valid(col), pc.is_null(idx)).to_numpy(zero_copy_only=False)
    return out, bad


def _joined(t: pa.Table, names: list[str], sep: str) -> pa.Array:
    cols = [pc.fill_null(t.column(n), "") for n in names]
    return pc.binary_join_element_wise(*cols, sep)


def normalize_frames(t: pa.Table) -> tuple[pa.Table, np.ndarray, list]:
    """Canonical frames from the coalesced parse table; the mask marks rows to
    quarantine, with one message per row (None for good rows)."""
    n = t.num_rows
    problems: list[tuple[np.ndarray, str]] = []
    cap_ms, cap_ok, cap_present = parse_time_ms(t.column("captured_at"))
    problems.append((cap_present & ~cap_ok, "captured_at is neither ISO 8601, Mapillary time text "
                                            "nor a ms epoch number"))
    rec_ms, rec_ok, rec_present = parse_time_ms(t.column("received_at"))
    problems.append((rec_present & ~rec_ok, "received_at is neither ISO 8601 text nor a ms epoch number"))
    fix, bad_fix = _normal_fix(t.column("fix"))
    problems.append((bad_fix, "fix must be 3D, 2D or none (or numeric fix type 0-3)"))
    heading = t.column("heading").combine_chunks()
    hnp = pc.fill_null(heading, np.nan).to_numpy(zero_copy_only=False)
    wrapped = np.mod(hnp, 360.0)
    heading = pa.array(wrapped, pa.float64(), mask=~np.isfinite(wrapped))

    device = t.column("device_id")
    seq = t.column("sequence_id")
    derived = _joined(t, ["device_make", "device_model", "sequence_id"], "/")
    can_derive = pc.is_valid(seq)
    device = pc.coalesce(device, pc.if_else(can_derive, derived, pa.scalar(None, pa.string())))
    problems.append((pc.is_null(device).to_numpy(zero_copy_only=False),
                     "no device_id, and no MAPSequenceUUID/sequence_id to derive one from"))
    frame = pc.coalesce(t.column("frame_id"), t.column("image_uri"), t.column("image_sha256"),
                        t.column("image_md5"))
    problems.append((pc.is_null(frame).to_numpy(zero_copy_only=False),
                     "no frame_id, and no image_uri/image_sha256/md5sum to use instead"))

    cols = {name: t.column(name) for name in t.column_names}
    cols.update({
        "frame_id": frame, "device_id": device,
        "captured_at": pa.array(cap_ms, pa.int64(), mask=~cap_ok),
        "received_at": pa.array(rec_ms, pa.int64(), mask=~rec_ok),
        "fix": fix, "heading": heading,
    })
    out = pa.table({f.name: cols[f.name] for f in PARSE_FRAME}).cast(_NORMALIZED, safe=False)
    bad = np.zeros(n, dtype=bool)
    msgs: list = [None] * n
    for mask, text in problems:
        for i in np.nonzero(mask & ~bad)[0]:
            msgs[i] = text
        for i in np.nonzero(mask & bad)[0]:
            msgs[i] += "; " + text
        bad |= mask
    return out, bad, msgs


_TEXT_OR_NUMBER = ((pa.float64(), number_as_text),)

FRAME = SourceSpec(
    "frame", PARSE_FRAME, nested_key=None, aliases=MAPILLARY_ALIASES,
    parse_types={"captured_at": pa.string(), "received_at": pa.string()},
    normalize=normalize_frames,
    event_time="captured_at",
    parse_alternatives={"captured_at": _TEXT_OR_NUMBER, "received_at": _TEXT_OR_NUMBER,
                        "fix": _TEXT_OR_NUMBER,
                        "heading": ((_HEADING_OBJECT, heading_from_object),)},
)
