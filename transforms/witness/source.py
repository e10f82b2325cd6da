"""How beacon and witness files are recognised (flat or Helium's nested form)."""
from schemas.witness import RAW_BEACON, RAW_WITNESS
from transforms.sources import SourceSpec

BEACON = SourceSpec("beacon", RAW_BEACON, event_time="received_timestamp")
WITNESS = SourceSpec("witness", RAW_WITNESS, event_time="received_timestamp")
