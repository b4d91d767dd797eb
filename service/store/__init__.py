"""Persistent state behind small interfaces (SQLite by default)."""
