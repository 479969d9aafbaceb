"""Self-contained HTML report of a full hcctme run."""

from hcctme.report._build import build

__all__ = ["build"]
