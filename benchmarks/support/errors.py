"""The one error a benchmark stops on before it measures anything."""

from __future__ import annotations


class SetupError(RuntimeError):
    """The benchmark could not prepare its data or environment (exit code 2)."""
