"""Adapter for upstreams that speak OpenAI's REST dialect (OpenAI, vLLM, Groq, Ollama, ...)."""

from service.providers.openai_compat.client import OpenAICompatProvider

__all__ = ["OpenAICompatProvider"]
