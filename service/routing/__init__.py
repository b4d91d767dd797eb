"""Choosing where a request goes."""
