"""Shutting knm down ends even when a part of it will not let go."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from knm.core import runtime
from knm.core.hookspecs import hookimpl
from knm.core.manager import make_plugin_manager
from knm.core.runtime import Knm
from knm.testing import database

pytestmark = pytest.mark.timeout(60)


class Stubborn:
    """A plugin whose lifespan ignores the first cancellation of its exit."""

    exited = False

    @hookimpl
    def knm_lifespan(self) -> list[Any]:
        @contextlib.asynccontextmanager
        async def lifespan(knm: Knm) -> AsyncIterator[None]:
            yield
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                Stubborn.exited = True
                await asyncio.sleep(3600)

        return [lifespan]


async def test_stop_abandons_a_lifespan_that_never_exits_and_still_closes_the_pool(
    knm_database_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(runtime, "STOP_STEP_TIMEOUT", 0.5)
    config = database.config_for_tests(knm_database_url)
    pm = make_plugin_manager(
        blocked=config.blocked_plugins,
        load_entrypoints=config.load_entrypoints,
        extra_plugins=[Stubborn()],
        named_plugins=config.plugins,
    )
    knm = Knm(config, pm)
    await knm.start()
    pool = knm.pool
    with caplog.at_level(logging.WARNING, logger="knm"):
        await asyncio.wait_for(knm.stop(), 30)
    assert Stubborn.exited
    assert "the plugins' lifespans did not finish" in caplog.text
    assert pool.is_closing()
