"""The one path every execution takes: what it reads, and how often."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from knm.core.clusters import store as clusters_store
from knm.core.tasks import service


async def test_a_batch_of_fires_reads_each_clusters_default_credential_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads: list[str] = []

    async def default_credential_id(pool: object, cluster_name: str) -> int | None:
        reads.append(cluster_name)
        return {"lab": 7}.get(cluster_name)

    monkeypatch.setattr(clusters_store, "default_credential_id", default_credential_id)
    knm = SimpleNamespace(pool=None)
    with service.default_credentials_read_once():
        found = [await service.default_credential(knm, c) for c in ["lab", "x", "lab", "x"]]  # type: ignore[arg-type]
    assert found == [7, None, 7, None]
    assert reads == ["lab", "x"]
    # Outside a batch every check reads it again: a change shows at once.
    assert await service.default_credential(knm, "lab") == 7  # type: ignore[arg-type]
    assert reads == ["lab", "x", "lab"]
