"""API keys: their format, hashing and verification."""
