"""Shared fixtures (reference helpers live in reference_data.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def sleepstudy():
    import mixedmodels as mm

    return mm.datasets.load("sleepstudy")
