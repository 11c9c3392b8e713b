"""User-facing errors: the CLI prints their one-line message and exits non-zero (no traceback)."""


class EdgekdError(ValueError):
    """Bad input or an impossible request; the message names the bad value and the fix."""
