"""Adapter for Jina AI's `rerank` and `embeddings` endpoints."""

from service.providers.jina.client import JinaProvider

__all__ = ["JinaProvider"]
