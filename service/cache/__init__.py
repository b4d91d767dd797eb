"""The response cache: exact (a hash of the normalised request) and semantic (the
built-in MiniLM embeddings and a cosine threshold), per key unless shared (DESIGN §11)."""

from service.cache.cache import HIT, MISS, SEMANTIC_HIT, Hit, Plan, ResponseCache
from service.cache.settings import CacheConfig, ModelCache

__all__ = [
    "HIT",
    "MISS",
    "SEMANTIC_HIT",
    "CacheConfig",
    "Hit",
    "ModelCache",
    "Plan",
    "ResponseCache",
]
