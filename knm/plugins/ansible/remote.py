"""A run's processes on the nodes: marked when they start, killed when the run is cancelled.

With pipelining (the default) modules run without a terminal, so killing the local ssh
processes of a cancelled run does not signal their remote commands: sshd only sends SIGHUP
through a terminal. Instead, every module Ansible starts on a node carries
``KNM_ANSIBLE_RUN=<run id>`` in its environment — the run's own shell plugin (``knm_sh``, the
``sh`` plugin with that variable added to each module's environment prefix, written next to
the playbook) — and its children inherit it. Once the local processes are dead, knm logs in to
each node through its own SSH transport and kills every session holding a marked process: the
module, and the commands it started (``sleep 3600``), which share its session. It does so as
the login user, then through ``sudo`` for what ``become`` started as root.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
from typing import Any

from knm.core.errors import KnmError
from knm.core.tasks import TargetNode
from knm.core.transport import TransportError, sudo_command

log = logging.getLogger("knm.ansible")

#: Ansible's name for the shell plugin below (``ansible_shell_type``).
SHELL_TYPE = "knm_sh"
#: Seconds the whole clean-up may take, every node at once.
CLEANUP_TIMEOUT = 20.0

SHELL_PLUGIN = '''"""knm's shell plugin: the sh shell, marking every module with the run's id."""

from __future__ import annotations

DOCUMENTATION = """
name: knm_sh
short_description: POSIX shell (/bin/sh) marking the modules of a knm run
description:
  - The sh shell plugin, with KNM_ANSIBLE_RUN=<run id> in the environment of each module.
extends_documentation_fragment:
  - shell_common
"""

import os

from ansible.plugins.shell.sh import ShellModule as _ShellModule


class ShellModule(_ShellModule):
    def env_prefix(self, **kwargs):
        mark = os.environ.get("KNM_ANSIBLE_RUN")
        if mark:
            kwargs = {"KNM_ANSIBLE_RUN": mark, **kwargs}
        return super().env_prefix(**kwargs)
'''


def kill_command(mark: str) -> str:
    """A POSIX shell script killing every session holding a process marked ``mark``.

    One ``grep`` over every environment finds the candidates; each is then checked exactly
    (the variable, whole). Sessions 0 and 1 (kernel, init) are never touched."""
    var = shlex.quote(f"KNM_ANSIBLE_RUN={mark}")
    return f"""m={var}
pids=$(grep -l -a -F -e "$m" /proc/[0-9]*/environ 2>/dev/null | while read -r f; do
  tr '\\000' '\\n' <"$f" 2>/dev/null | grep -q -x -F -e "$m" && p=${{f#/proc/}} && echo "${{p%/environ}}"
done)
[ -n "$pids" ] || exit 0
ps -e -o pid= -o sid= | awk -v pids="$pids" '
  BEGIN {{ n = split(pids, list, "\\n"); for (i = 1; i <= n; i++) marked[list[i]] = 1 }}
  {{ pid[NR] = $1; sid[NR] = $2; if (($1 in marked) && $2 > 1) doomed[$2] = 1 }}
  END {{ for (i = 1; i <= NR; i++) if (sid[i] in doomed) print pid[i] }}
' | xargs kill -KILL 2>/dev/null
exit 0
"""


async def kill_remote(ctx: Any, nodes: list[TargetNode], bastion: Any, mark: str) -> None:
    """Kills the run's processes on ``nodes`` (best effort, bounded by ``CLEANUP_TIMEOUT``),
    through the cluster's transport (the core contract, not the ssh plugin's modules)."""
    try:
        transport = ctx.knm.registry.transport_for(await ctx.cluster())
    except KnmError:
        return
    script = kill_command(mark)
    as_root, password = sudo_command(script, ctx.credential)

    async def one(node: TargetNode) -> None:
        try:
            async with transport.session(ctx, node, ctx.credential, bastion=bastion) as conn:
                await transport.run(conn, script, timeout=10)
                # become: root's processes; a login without sudo rights just fails here.
                await transport.run(conn, as_root, stdin=password, timeout=10)
        except TransportError as exc:
            log.info("could not stop run %s on %s: %s", mark, node.name, exc.message)

    try:
        await asyncio.wait_for(asyncio.gather(*(one(node) for node in nodes)), CLEANUP_TIMEOUT)
    except TimeoutError:
        log.warning("stopping run %s on its nodes took over %g s", mark, CLEANUP_TIMEOUT)
    finally:
        with contextlib.suppress(Exception):
            await transport.release_task(ctx.task_id)
