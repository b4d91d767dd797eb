"""Adapter for Anthropic's Messages API (`POST /v1/messages`), a first-class provider.

Anthropic does not speak the OpenAI dialect, so everything is translated here:
`convert.py` maps requests, `answer.py` answers, `stream.py` turns its server-sent events into
OpenAI-shaped deltas, `errors.py` its error bodies into `ProviderError`s, and
`client.py` does the I/O.
"""

from service.providers.anthropic.client import AnthropicProvider

__all__ = ["AnthropicProvider"]
