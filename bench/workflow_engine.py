"""Workflow engine overhead with a no-op step type: a 1,000-step chain, a 1,000-step fan-out, and
100 concurrent workflows. Prints steps/s and whether the target (1,000 steps in under 2 s of
engine overhead, linear in step count) is met.

    python -m bench.workflow_engine            # full run
    python -m bench.workflow_engine --smoke    # a quick check (CI)

Reference: StackStorm's Orquesta took 1,566 s for 101 with-items (its issue #125).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from bench.common import machine, mark, table, throwaway_database
from knm.core.hookspecs import hookimpl
from knm.core.tasks.steps import StepOutcome, StepRun, StepType
from knm.testing.database import TEST_ADMIN_PASSWORD, config_for_tests

NODES = ["n1", "n2", "n3"]


class NoopFields(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class NoopStep(StepType):
    name = "noop"
    params_type = NoopFields

    async def run(self, knm: Any, run: StepRun, cancelled: asyncio.Event) -> StepOutcome:
        return StepOutcome(status="success", message="ok")


class NoopPlugin:
    @hookimpl
    def knm_step_types(self) -> list[StepType]:
        return [NoopStep()]


def chain(n: int) -> list[dict[str, Any]]:
    return [
        {"id": f"s{i}", "type": "noop", **({"depends_on": [f"s{i - 1}"]} if i else {})}
        for i in range(n)
    ]


def fan_out(n: int) -> list[dict[str, Any]]:
    return [{"id": "root", "type": "noop"}] + [
        {"id": f"s{i}", "type": "noop", "depends_on": ["root"]} for i in range(n - 1)
    ]


async def measure(database_url: str, smoke: bool) -> list[list[Any]]:
    from litestar.testing import AsyncTestClient

    from knm.core.app import create_app
    from knm.core.manager import make_plugin_manager
    from knm.core.runtime import Knm

    config = config_for_tests(database_url, lease_seconds=60.0)
    pm = make_plugin_manager(load_entrypoints=False, extra_plugins=[NoopPlugin()])
    app = create_app(knm=Knm(config, pm))
    rows: list[list[Any]] = []
    async with AsyncTestClient(app=app) as client:
        token = (
            await client.post(
                "/api/v1/auth/login", json={"username": "admin", "password": TEST_ADMIN_PASSWORD}
            )
        ).json()["data"]["token"]
        headers = {"Authorization": f"Bearer {token}"}
        await client.put(
            "/api/v1/features/automation/workflows",
            json={"max_steps": 5000, "max_concurrent": 10_000},
            headers=headers,
        )
        nodes = [{"name": n, "address": "127.0.0.2"} for n in NODES]
        await client.post(
            "/api/v1/clusters",
            json={"name": "bench", "kind": "static", "nodes": nodes},
            headers=headers,
        )
        counter = 0

        async def create(steps: list[dict[str, Any]]) -> int:
            nonlocal counter
            counter += 1
            response = await client.post(
                "/api/v1/automation/workflows",
                json={"name": f"bench-{counter}", "definition": {"steps": steps}},
                headers=headers,
            )
            assert response.status_code == 201, response.text
            return response.json()["data"]["id"]

        async def run(workflow_id: int) -> float:
            started = time.perf_counter()
            response = await client.post(
                "/api/v1/automation/workflows/execute",
                json={"workflow_id": workflow_id, "cluster_name": "bench", "target_nodes": NODES},
                headers=headers,
            )
            task_id = response.json()["data"]["task_id"]
            while True:
                status = (await client.get(f"/api/v1/tasks/{task_id}", headers=headers)).json()[
                    "data"
                ]
                if status["status"] not in ("pending", "running"):
                    assert status["status"] == "completed", status
                    return time.perf_counter() - started
                await asyncio.sleep(0.01)

        sizes = [50, 100, 200] if smoke else [250, 500, 1000]
        repeats = 1 if smoke else 3
        for shape, build in (("chain", chain), ("fan-out", fan_out)):
            for n in sizes:
                workflow_id = await create(build(n))
                seconds = statistics.median([await run(workflow_id) for _ in range(repeats)])
                ok = seconds < 2.0 * n / 1000 if n >= 200 else True
                rows.append(
                    [
                        f"{shape} of {n}",
                        n,
                        f"{seconds:.2f}",
                        f"{n / seconds:,.0f}",
                        mark(ok) if n == sizes[-1] else "",
                    ]
                )
        count = 10 if smoke else 100
        workflow_id = await create(chain(10))
        started = time.perf_counter()
        await asyncio.gather(*(run(workflow_id) for _ in range(count)))
        seconds = time.perf_counter() - started
        rows.append(
            [
                f"{count} workflows × 10 steps at once",
                count * 10,
                f"{seconds:.2f}",
                f"{count * 10 / seconds:,.0f}",
                "",
            ]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="small sizes, one run each")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="knm-bench-wf-") as workdir,
        throwaway_database(Path(workdir)) as url,
    ):
        rows = asyncio.run(measure(url, args.smoke))
    print(
        f"workflow engine overhead ({machine()}); no-op steps; time from POST to the terminal state"
    )
    print(
        table(
            ["workload", "steps", "seconds (median)", "steps/s", "target: 1,000 steps < 2 s"], rows
        )
    )


if __name__ == "__main__":
    main()
