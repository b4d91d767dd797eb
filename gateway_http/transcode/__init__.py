"""JSON <-> proto transcoding, by hand: no pydantic or json_format on the hot path."""
