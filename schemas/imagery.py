"""Dashcam / street-level imagery metadata: one row per captured frame.

The canonical frame follows what Hivemapper dashcams and Mapillary uploads
both carry (see docs/imagery.md for the field mapping). Times are int64 ms
since the Unix epoch whatever the input form, so sequences sort and subtract
without parsing. GNSS quality fields are optional: a source that does not
report them is judged on what it does report (null passes).
"""
import pyarrow as pa

from schemas._fields import field, schema
from schemas.provenance import PROVENANCE_FIELDS, VERDICT_FIELDS

MS_EPOCH = "ms since Unix epoch"

RAW_FRAME = schema([
    field("frame_id", pa.string(), "frame identifier, unique within its device", nullable=False),
    field("device_id", pa.string(), "camera identifier; frames are sequenced per device",
          nullable=False),
    field("sequence_id", pa.string(), "producer's sequence/drive id (e.g. MAPSequenceUUID)"),
    field("captured_at", pa.int64(), "capture time (input: ISO 8601 text, Mapillary "
          "'YYYY_MM_DD_HH_MM_SS_fff' UTC text, or ms epoch number)", unit=MS_EPOCH,
          nullable=False),
    field("lat", pa.float64(), "latitude, WGS 84", unit="deg", nullable=False),
    field("lon", pa.float64(), "longitude, WGS 84", unit="deg", nullable=False),
    field("alt", pa.float64(), "altitude above the ellipsoid or MSL, as reported", unit="m"),
    field("heading", pa.float64(), "course/compass heading, clockwise from true north, "
          "wrapped into [0, 360)", unit="deg"),
    field("speed", pa.float64(), "speed reported by the device (not used by the rules: "
          "units vary between devices)", unit="m/s"),
    field("hdop", pa.float64(), "horizontal dilution of precision"),
    field("gdop", pa.float64(), "geometric dilution of precision"),
    field("eph", pa.float64(), "estimated horizontal position error (Mapillary: "
          "MAPGPSAccuracyMeters)", unit="m"),
    field("satellites", pa.int32(), "satellites used in the fix"),
    field("fix", pa.string(), "GNSS fix type: '3D', '2D' or 'none'"),
    field("image_uri", pa.string(), "where the image is stored (or its file name)"),
    field("image_sha256", pa.string(), "sha256 (hex) of the image bytes"),
    field("image_md5", pa.string(), "md5 (hex) of the image bytes (Mapillary md5sum)"),
    field("bytes", pa.int64(), "image file size", unit="bytes"),
    field("device_make", pa.string(), "camera make (MAPDeviceMake)"),
    field("device_model", pa.string(), "camera model (MAPDeviceModel)"),
    field("received_at", pa.int64(), "time the frame reached the ingestor", unit=MS_EPOCH),
], "Raw imagery frame metadata (Hivemapper frame / Mapillary image description)")

DEVICE_REGISTRY = schema([
    field("device_id", pa.string(), "camera identifier", nullable=False),
    field("capture_mode", pa.string(), "'distance' (a frame every N m of travel) or "
          "'time' (a frame every N s); unknown when null"),
    field("frame_spacing_m", pa.float64(), "nominal distance between frames in distance mode "
          "(Hivemapper ~8 m); the teleport baseline's floor", unit="m"),
], "Optional device registry: how each camera triggers frames (CSV, JSON Lines or Parquet)")

_IMAGERY_DERIVED = [
    field("cell", pa.uint64(), "H3 cell of (lat, lon) at res 15; null when coordinates are invalid"),
    field("coverage_cell", pa.uint64(), "parent of `cell` at the coverage resolution "
          "(rules constant coverage_res, default 8)"),
    field("distance_prev_m", pa.float64(), "great-circle distance from the device's previous "
          "frame that passed the per-frame checks", unit="m"),
    field("speed_prev_mps", pa.float64(), "implied speed: distance_prev_m / dt_prev_ms",
          unit="m/s"),
    field("dt_prev_ms", pa.int64(), "captured_at − captured_at of that previous frame", unit="ms"),
    field("sequence_index", pa.int32(), "0-based index of the frame's sequence within its "
          "device in this run (split on gaps; frames that failed carry the index of the "
          "sequence they fell in)"),
]

IMAGERY_OUT = schema(
    list(RAW_FRAME) + _IMAGERY_DERIVED + VERDICT_FIELDS + PROVENANCE_FIELDS,
    "Validated imagery frames: OUT/imagery/date=YYYY-MM-DD/ (date of captured_at, UTC)")
