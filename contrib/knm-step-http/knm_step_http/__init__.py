"""Workflow step type ``http``: call a URL and succeed when it answers the expected status.

{"id": "health", "type": "http", "url": "https://app.example/healthz",
 "method": "GET", "expect_status": 200, "timeout": 10}

And ``uptime``, an executor (so also a step type) that runs shell on nodes through knm's public
contract: the command policy in ``prepare``, ``ctx.run_shell`` in ``run`` — no import of another
plugin. ``POST /api/v1/automation/uptime/execute`` or ``{"id": "up", "type": "uptime"}``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

import httpx
import msgspec

from knm import (
    CommandContext,
    ExecRequest,
    Executor,
    ExecutorSettings,
    FeatureSpec,
    NodeResult,
    Prepared,
    StepOutcome,
    StepRun,
    StepType,
    TaskContext,
    hookimpl,
)
from knm.core import policy


class HttpFields(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    url: str
    method: Literal["GET", "HEAD", "POST", "PUT"] = "GET"
    expect_status: int = 200
    #: Keep trying until this many seconds have passed (0: one try).
    wait: float = 0.0


class HttpStep(StepType):
    name = "http"
    params_type = HttpFields

    def problems(self, knm: Any, params: HttpFields) -> list[str]:
        found = []
        if not params.url.startswith(("http://", "https://")):
            found.append("url must start with http:// or https://")
        if not 100 <= params.expect_status <= 599:
            found.append("expect_status must be an HTTP status")
        return found

    async def run(self, knm: Any, run: StepRun, cancelled: asyncio.Event) -> StepOutcome:
        fields = msgspec.convert(run.params, HttpFields, strict=False)
        deadline = time.monotonic() + fields.wait
        last = "not tried"
        async with httpx.AsyncClient(timeout=run.timeout or 30) as client:
            while not cancelled.is_set():
                try:
                    response = await client.request(fields.method, fields.url)
                    last = f"{fields.method} {fields.url} answered {response.status_code}"
                    if response.status_code == fields.expect_status:
                        return StepOutcome(
                            status="success",
                            message=last,
                            result={"status_code": response.status_code},
                        )
                except httpx.HTTPError as exc:
                    last = f"{fields.method} {fields.url} failed: {exc}"
                if time.monotonic() >= deadline:
                    break
                await asyncio.sleep(1)
        if cancelled.is_set():
            return StepOutcome(status="cancelled", message="cancelled")
        return StepOutcome(status="failed", message=f"{last}; expected {fields.expect_status}")


class UptimeRequest(ExecRequest, kw_only=True, forbid_unknown_fields=True):
    """No fields of its own: cluster, nodes, credential and timeout are every request's."""


UPTIME = "cat /proc/uptime"


def _uptime(result: NodeResult, stderr: str) -> NodeResult:
    if result.status == "success" and stderr:
        result.message += f" ({stderr.strip()[:200]})"
    return result


class UptimeExecutor(Executor):
    kind = "uptime"
    route = "uptime"
    feature = "uptime"
    request_type = UptimeRequest

    async def prepare(self, knm: Any, request: UptimeRequest, principal: Any) -> Prepared:
        context = CommandContext(
            kind=self.kind,
            cluster_name=request.cluster_name,
            username=getattr(principal, "username", None),
            role=getattr(principal, "role", None),
        )
        await policy.check(knm, UPTIME, context)  # the site's rules and every plugin's checks
        prepared = await super().prepare(knm, request, principal)  # nodes, credential, cluster
        prepared.summary = {"command": UPTIME}
        return prepared

    async def run(self, ctx: TaskContext) -> None:
        # Batches, max_failures, timeouts, cancel, streamed output and node results: the core's.
        await ctx.run_shell(None, UPTIME, judge=_uptime)


@hookimpl
def knm_step_types() -> list[StepType]:
    return [HttpStep()]


@hookimpl
def knm_executors() -> list[Executor]:
    return [UptimeExecutor()]


@hookimpl
def knm_features() -> list[FeatureSpec]:
    return [FeatureSpec("uptime", ExecutorSettings, description="Uptime of nodes over SSH")]
