"""Adapter for Hugging Face text-embeddings-inference (TEI): `/embed` and `/rerank`."""

from service.providers.tei.client import TEIProvider

__all__ = ["TEIProvider"]
