"""The ``ansible`` executor: a stored playbook run against a cluster's nodes.

One run is one ``ansible-runner run`` subprocess as the run user (see ``runner.py``) over a
private directory in ``temp_dir``: the playbook, an inventory of the nodes (``inventory.py``),
host keys (the transport's ``host_keys``), the bastion's ProxyCommand (``bastion.py``), ``extra_vars`` in
``env/extravars`` and the allow-listed ``extra_args`` in ``env/cmdline``. Keys reach it only
through the run's own ssh-agent (``agent.py``), passwords through a pipe or a socket
(``passwords.py``): nothing secret is a file of the run. Its job events give
the live output, progress and the per-node results (``events.py``). A cancelled or timed-out
run is killed locally, then on the nodes (``remote.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from knm.core import policy
from knm.core.content import get_pinned, get_runnable
from knm.core.credentials import load_credential
from knm.core.errors import FeatureUnavailable, Invalid
from knm.core.tasks import Executor, NodeResult, Prepared, TaskContext
from knm.core.transport import HostKeys
from knm.plugins.ansible import bastion, layout, remote, runner, targets_host, toolchain
from knm.plugins.ansible.events import EventReader, PlayState
from knm.plugins.ansible.library import PLAYBOOK, count_tasks, shell_problems
from knm.plugins.ansible.options import RunOptions, check_extra_vars, parse_extra_args
from knm.plugins.ansible.schemas import MAX_FORKS, AnsibleRequest, AnsibleSettings
from knm.plugins.ansible.served import Served

if TYPE_CHECKING:
    from knm.core.state import Knm

IDENT = "run"
POLL = 0.25
_TAIL = 4000


class _Slots:
    """At most ``max_concurrent`` runs at once in this process (the current setting wins)."""

    def __init__(self) -> None:
        self.limit = 0
        self.semaphore: asyncio.Semaphore | None = None

    def get(self, limit: int) -> asyncio.Semaphore:
        if self.semaphore is None or limit != self.limit:
            self.limit, self.semaphore = limit, asyncio.Semaphore(limit)
        return self.semaphore


class AnsibleExecutor(Executor):
    kind = "ansible"
    route = "ansible"
    feature = "ansible"
    request_type = AnsibleRequest
    request_example = {
        "playbook_id": 1, "cluster_name": "production", "target_nodes": ["node1", "node2"],
        "credential_id": 1, "extra_args": "--check", "extra_vars": {"ntp_server": "pool.ntp.org"},
    }  # fmt: skip
    answer_fields = {
        "playbook_id": int,
        "playbook_name": str,
        "playbook_version": int,
        "extra_args": str,
    }
    execute_path = "run"
    node_output_in_status = False
    task_output_in_status = True

    def __init__(self) -> None:
        self.slots = _Slots()

    async def prepare(self, knm: Knm, request: AnsibleRequest, principal: Any) -> Prepared:
        # 503 before anything is stored when Ansible cannot run here.
        settings: AnsibleSettings = await knm.features.settings(self.feature)
        await toolchain.for_app(knm).get(settings)
        playbook = await get_runnable(knm, PLAYBOOK, request.playbook_id)
        # Saved before the setting was turned off, or before this check existed: 422 now.
        targets_host.check(playbook.body, settings.allow_local_plays)
        check_extra_vars(request.extra_vars)
        # The guard-rail again at run, with this run's extra_vars (and the site's rules today).
        context = policy.CommandContext(
            kind=self.kind,
            cluster_name=request.cluster_name,
            username=getattr(principal, "username", None),
            role=getattr(principal, "role", None),
        )
        refused = await shell_problems(knm, playbook.body, context, request.extra_vars)
        if refused:
            raise Invalid(refused[0].message, message="command validation failed")
        prepared = await super().prepare(knm, request, principal)
        jump_host = prepared.cluster.bastion
        if jump_host is not None and prepared.credential is not None:
            credential = prepared.credential
            jump = await _jump(knm, jump_host, credential)
            bastion.check(jump, credential)
            # The bastion's own credential, decrypted once for the whole task.
            prepared.carried["ansible.jump"] = jump
        parse_extra_args(request.extra_args, [node.name for node in prepared.nodes])
        prepared.summary = {
            "playbook_id": playbook.id,
            "playbook_name": playbook.name,
            "playbook_version": playbook.version,
        }
        if request.extra_args:
            prepared.summary["extra_args"] = request.extra_args
        return prepared

    async def run(self, ctx: TaskContext) -> None:
        settings: AnsibleSettings = ctx.settings
        slots = self.slots.get(settings.max_concurrent)
        waiting = asyncio.ensure_future(slots.acquire())
        cancelled = asyncio.ensure_future(ctx.cancelled.wait())
        try:
            await asyncio.wait({waiting, cancelled}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            cancelled.cancel()
        if not waiting.done() or ctx.cancelled.is_set():
            waiting.cancel()
            if waiting.done() and not waiting.cancelled():
                slots.release()
            return
        try:
            await _Run(ctx, settings).execute()
        finally:
            slots.release()


async def _jump(knm: Knm, host: Any, credential: Any) -> bastion.Jump:
    """The cluster's bastion ``host`` with the credential it logs in with."""
    shared = host.credential_id is None or host.credential_id == credential.id
    if not shared:
        credential = await load_credential(knm, host.credential_id)
    return bastion.Jump(address=host.address, port=host.port, credential=credential, shared=shared)


class _Run:
    def __init__(self, ctx: TaskContext, settings: AnsibleSettings) -> None:
        self.ctx = ctx
        self.settings = settings
        self.request: AnsibleRequest = ctx.request
        self.names = [node.name for node in ctx.nodes]
        self.mark = ctx.task_id
        self.jump_host: Any = None
        self.jump: bastion.Jump | None = None

    async def execute(self) -> None:
        ctx = self.ctx
        # The version the task was created with, even if the playbook was edited since.
        playbook = await get_pinned(
            ctx.knm, PLAYBOOK, self.request.playbook_id, ctx.task.summary["playbook_version"]
        )
        # The pinned body, with the setting as it is now.
        targets_host.check(playbook.body, self.settings.allow_local_plays)
        options = parse_extra_args(self.request.extra_args, self.names)
        # Unavailable: every node fails with the reason (the engine's KnmError path).
        tools = await toolchain.for_app(ctx.knm).get(self.settings)
        user = tools.user or await asyncio.to_thread(runner.ensure_run_user, self.settings.run_user)
        self.run_dir = runner.runs_root_of(self.settings, tools) / ctx.task_id
        self.events = EventReader(self.run_dir / "artifacts" / IDENT / "job_events")
        cluster = await ctx.cluster()
        self.jump_host = cluster.bastion
        if self.jump_host is not None:
            self.jump = ctx.carried.get("ansible.jump") or await _jump(
                ctx.knm, self.jump_host, ctx.credential
            )
            ctx.mask.add(*self.jump.credential.secret_values())
            bastion.check(self.jump, ctx.credential)
        keys = await ctx.knm.registry.transport_for(cluster).host_keys(ctx, ctx.nodes, self.jump)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        runner.make_dirs(self.run_dir)
        proc: runner.RunProcess | None = None
        swept = False
        served = Served()
        try:
            # Off the loop: opening a passphrase-protected key runs a deliberately slow KDF.
            laid = await asyncio.to_thread(self._write, playbook.body, options, keys, tools)
            runner.hand_over(self.run_dir, user)
            await served.start(self.run_dir, laid, user, self.mark)
            for name in self.names:
                await ctx.node_started(name)
            state = PlayState(self.names, count_tasks(playbook.body))
            argv = runner.runner_argv(self.settings, self.run_dir, IDENT, tools)
            try:
                proc = await runner.start(argv, laid.env, self.run_dir, user, self._output_path)
            except FeatureUnavailable:
                toolchain.for_app(ctx.knm).forget(self.settings)
                raise
            ended = await self._follow(proc, state)
            # The run's end or its stop: what it left (ssh masters, agents) or all of it.
            await asyncio.to_thread(runner.kill_run, proc.pid, self.mark, user)
            swept = True
            if ended != "exited":
                # Without a terminal (pipelining), remote commands outlive their connection.
                await remote.kill_remote(ctx, ctx.nodes, self.jump_host, self.mark)
            await self._read_events(state, final=True)
            if ended == "cancelled":
                return  # the engine marks every open node cancelled
            await self._finish(state, options, keys, ended, proc.returncode)
        finally:
            if proc is not None:
                if not swept:
                    await asyncio.to_thread(runner.kill_run, proc.pid, self.mark, user)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 10)
            # The keys leave with the agent, however the run ended.
            await served.stop()
            await asyncio.to_thread(self._clean, user)

    @property
    def _output_path(self) -> Path:
        """ansible-runner's own stdout and stderr (the play's output is in its events)."""
        return self.run_dir / "runner.out"

    def _write(
        self,
        content: str,
        options: RunOptions,
        keys: HostKeys,
        tools: toolchain.Toolchain,
    ) -> layout.Layout:
        forks = options.forks or min(len(self.names), MAX_FORKS)
        if self.request.batch_size:
            forks = min(forks, self.request.batch_size)
        args = ["main.yml", *options.argv(), "--forks", str(max(1, forks))]
        if options.limit:
            args += ["--limit", ",".join(options.limit)]
        return layout.lay_out(
            self.run_dir, playbook=content, nodes=self.ctx.nodes, credential=self.ctx.credential,
            keys=keys, jump=self.jump, args=args, extra_vars=self.request.extra_vars,
            settings=self.settings, mark=self.mark, tools=tools,
        )  # fmt: skip

    async def _follow(self, proc: runner.RunProcess, state: PlayState) -> str:
        """Streams events until the run ends: "exited", "cancelled" or "timeout"."""
        exited = asyncio.ensure_future(proc.wait())
        cancel = asyncio.ensure_future(self.ctx.cancelled.wait())
        deadline = self.ctx.node_deadline()
        outcome = "exited"
        try:
            while True:
                await self._read_events(state)
                left = deadline - time.monotonic()
                if left <= 0:
                    outcome = "timeout"
                    break
                done, _ = await asyncio.wait(
                    {exited, cancel}, timeout=min(POLL, left), return_when=asyncio.FIRST_COMPLETED
                )
                if cancel in done:
                    outcome = "cancelled"
                    break
                if exited in done:
                    break
        finally:
            cancel.cancel()
            if outcome != "exited":
                exited.cancel()
        return outcome

    async def _read_events(self, state: PlayState, *, final: bool = False) -> None:
        started = state.tasks_started
        for event in await asyncio.to_thread(self.events.read, time.monotonic(), final=final):
            text = state.feed(event)
            if text:
                self.ctx.output("", "log", text.replace("\r\n", "\n") + "\n")
        if state.tasks_started != started:
            await self.ctx.progress(
                state.percent,
                f"Executing task {state.tasks_started} of {state.expected}: {state.current_task}",
            )

    async def _finish(
        self,
        state: PlayState,
        options: RunOptions,
        keys: HostKeys,
        ended: str,
        returncode: int | None,
    ) -> None:
        ctx = self.ctx
        run_error = ""
        if ended == "timeout":
            run_error = f"the run timed out after {ctx.node_timeout:g} s"
        elif state.stats is None:
            run_error = self._runner_error(returncode)
        for name in self.names:
            if ctx.finished(name):
                continue
            if ended == "timeout" and state.stats is None:
                result = NodeResult.failure("timeout", run_error)
            else:
                excluded = bool(options.limit) and name not in options.limit
                result = state.result(
                    name, excluded=excluded, run_error=run_error, pinned=name in keys.pinned
                )
            await ctx.node_finished(name, result)
        await ctx.progress(100, "finished")

    def _runner_error(self, returncode: int | None) -> str:
        stdout = self.run_dir / "artifacts" / IDENT / "stdout"
        text = runner.read_tail(stdout, _TAIL) or runner.read_tail(self._output_path, _TAIL)
        lines = [line for line in text.splitlines() if line.strip()]
        detail = " ".join(lines[-3:])[-500:]
        return f"ansible-playbook ended with code {returncode}: {detail}".strip()

    def _clean(self, user: runner.RunUser) -> None:
        runner.remove_control_dir(self.run_dir)
        if not self.settings.keep_artifacts:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            return
        # A play may print a secret; kept events and output are masked like the stored output.
        artifacts = self.run_dir / "artifacts" / IDENT
        for path in [artifacts / "stdout", *artifacts.glob("job_events/*.json")]:
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace")
                masked = self.ctx.mask(text)
                if masked != text:
                    path.write_text(masked)
        runner.take_back(self.run_dir, user)
