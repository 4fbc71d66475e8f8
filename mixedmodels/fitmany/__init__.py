"""Many responses, one design: ``fit_many`` and its result (see docs/many-responses.md)."""

from .api import fit_many
from .result import ManyFits

__all__ = ["fit_many", "ManyFits"]
