"""User-facing errors: the CLI prints their one-line message and exits non-zero (no traceback)."""


class EdgekdError(ValueError):
    """Bad input or an impossible request; the message names the bad value and the fix."""


def yaml_error_text(path: object, err: BaseException) -> str:
    """One line for a YAML parse error: ``FILE:LINE:COLUMN: problem`` (PyYAML's own text is several
    lines of context naming ``<unicode string>`` instead of the file)."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    problem = getattr(err, "problem", None) or (str(err).splitlines() or [type(err).__name__])[0]
    context = getattr(err, "context", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    return f"{where}: invalid YAML: {problem}" + (f" ({context})" if context else "")
