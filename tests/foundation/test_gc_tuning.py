"""shared/gc_tuning.py: what a service holds after start-up is frozen, once per process."""

from __future__ import annotations

import gc

from shared.gc_tuning import freeze_startup_objects
from tests.conftest import Services


def test_startup_objects_are_frozen_once(services: Services) -> None:
    """The apps' start-up froze the models' and libraries' metadata (a full collection no
    longer scans it); a second call freezes nothing more."""
    frozen = gc.get_freeze_count()
    assert frozen > 50_000
    freeze_startup_objects()
    assert gc.get_freeze_count() == frozen
