"""Adapter for Cohere's v2 `embed` and `rerank` endpoints (Cohere chat is not served here)."""

from service.providers.cohere.client import CohereProvider

__all__ = ["CohereProvider"]
