"""The built-in offline provider (DESIGN §8): models from PyPI packages, run in process."""

from service.providers.local.provider import LocalProvider

__all__ = ["LocalProvider"]
