"""Weather-station telemetry: packet checks, QoD scores and proof of location."""
