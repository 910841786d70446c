"""SQL stores: one set of hand-written queries, a small dialect per backend."""

from .store import SqlStore

__all__ = ["SqlStore"]
