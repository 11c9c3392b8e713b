"""Runtime backends: one file per runtime, reached through :mod:`edgekd.backends.registry`.

Importing this package imports no runtime; each backend imports its runtime inside the
functions that need it and raises :class:`BackendUnavailable` naming the pip extra when missing.
"""
from edgekd.backends.base import Backend, BackendUnavailable, ExportRequest, Session
from edgekd.backends.registry import get_backend, list_backends

__all__ = ["Backend", "BackendUnavailable", "ExportRequest", "Session", "get_backend", "list_backends"]
