"""knm's pytest plugin gives every suite the `slow` marker and deterministic property tests."""

from __future__ import annotations

import pytest
from hypothesis import settings

from knm.testing.plugin import HYPOTHESIS_PROFILES


def test_the_ci_profile_is_deterministic_and_keeps_no_example_database() -> None:
    ci = settings.get_profile("ci")
    assert ci.derandomize is True
    assert ci.database is None
    assert ci.deadline is None


def test_every_profile_is_registered_with_hypothesis() -> None:
    for name in HYPOTHESIS_PROFILES:
        assert settings.get_profile(name) is not None


def test_the_slow_marker_is_registered(pytestconfig: pytest.Config) -> None:
    assert any(line.startswith("slow:") for line in pytestconfig.getini("markers"))
