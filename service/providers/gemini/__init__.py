"""Adapter for the Google Gemini API (generateContent, streaming, batchEmbedContents)."""

from service.providers.gemini.client import GeminiProvider

__all__ = ["GeminiProvider"]
