"""Workflow step type ``http``: call a URL and succeed when it answers the expected status.

{"id": "health", "type": "http", "url": "https://app.example/healthz",
 "method": "GET", "expect_status": 200, "timeout": 10}
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

import httpx
import msgspec

from knm import hookimpl
from knm.core.tasks.steps import StepOutcome, StepRun, StepType


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


@hookimpl
def knm_step_types() -> list[StepType]:
    return [HttpStep()]
