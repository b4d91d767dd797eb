"""Attributing, pricing, limiting and recording every call (DESIGN §7)."""
