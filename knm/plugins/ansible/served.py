"""The secrets a run is served while it runs: its ssh-agent (``agent.py``), the FIFO answering
ansible-playbook's password prompts and the bastion's askpass socket (``passwords.py``).

``start`` after ``runner.hand_over`` (what it makes belongs to the run user), ``stop`` in a
``finally``: the agent, and the keys with it, go however the run ended.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from knm.plugins.ansible import agent, layout, passwords, runner


class Served:
    """The run's secrets, served while it runs: the ssh-agent holding its keys, the FIFO
    answering ansible-playbook's password prompts, the bastion's askpass socket."""

    def __init__(self) -> None:
        self.agent: agent.RunAgent | None = None
        self.answers: passwords.PromptAnswers | None = None
        self.askpass: passwords.AskpassServer | None = None

    async def start(
        self, run_dir: Path, laid: layout.Layout, user: runner.RunUser, mark: str
    ) -> None:
        if laid.agent_keys or laid.askpass_socket:
            self.agent = agent.RunAgent(run_dir, user, mark)
            if laid.agent_keys:
                await asyncio.to_thread(self.agent.start)
                for key in laid.agent_keys:
                    await asyncio.to_thread(self.agent.add, key)
            else:
                await asyncio.to_thread(self.agent.make_directory)
        if laid.bastion_password:
            self.askpass = passwords.AskpassServer(
                Path(laid.askpass_socket), laid.bastion_password, user
            )
            await self.askpass.start()
        if laid.password:
            prompts = {passwords.SSH_PROMPT: laid.password, passwords.BECOME_PROMPT: laid.password}
            self.answers = passwords.PromptAnswers(run_dir / "env" / "passwords", prompts)
            self.answers.start(user)

    async def stop(self) -> None:
        if self.answers is not None:
            await asyncio.to_thread(self.answers.stop)
        if self.askpass is not None:
            await self.askpass.stop()
        if self.agent is not None:
            await asyncio.to_thread(self.agent.stop)
