"""What runs on a maintenance lab's nodes: an upgrade and a reboot, as the SSH steps see them.

The lab's SSH fleet shares nothing with the Kubernetes stand-in, so the commands its steps run
ask this agent (an HTTP server in the test process) to act on the stand-in node behind the SSH
address they run on (``SSH_CONNECTION``). It behaves as the real thing does:

- ``reboot`` returns at once and the node goes down :data:`REBOOT_DELAY` seconds later, as
  the builtin ``nohup sh -c 'sleep 2; sudo systemctl reboot' &`` does: knm must not give the
  node back before that reboot and a new boot id;
- ``upgrade`` does nothing, fails, or reboots the node and waits until it is back (an upgrade
  playbook's ``reboot_if_needed``), as the machine asked for that node's next upgrade;
- both fail on a node that is down (an SSH command cannot run on a rebooting node).
"""

from __future__ import annotations

import base64
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

from knm.testing.k8s_standin import KubeStandin

#: Seconds from a reboot command's return until its node goes down: the builtin's ``sleep 2``.
#: (With 1 s, under a load of 15 on two cores, the steps after the reboot could take longer than
#: the delay plus the stand-in's reboot, and a node given back too early went unseen.)
REBOOT_DELAY = 2.0
#: How long an upgrade that reboots waits for its node to come back.
UPGRADE_REBOOT_WAIT = 20.0

Upgrade = Literal["ok", "fail", "reboot"]


class NodeAgent:
    def __init__(self, kube: KubeStandin, addresses: dict[str, str]) -> None:
        self.kube = kube
        #: SSH address → stand-in node name.
        self.addresses = addresses
        #: What each node's next upgrade does (once); ``ok`` when absent.
        self.next_upgrade: dict[str, Upgrade] = {}
        #: The next upgrade on any of these nodes fails (once; a node's own entry above first).
        self.fail_next_on: set[str] = set()
        #: The node whose upgrade that made fail, until :meth:`fail_next_upgrade` again.
        self.failed_on: str | None = None
        #: Reboots asked for and not yet begun (the node is still up).
        self.pending: dict[str, threading.Timer] = {}
        #: Counts of what the commands did, for the soak's report.
        self.done: dict[str, int] = {}
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> NodeAgent:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            for timer in self.pending.values():
                timer.cancel()
            self.pending.clear()

    def command(self, action: str) -> str:
        """The shell command a step runs for ``action`` on whichever node it runs on."""
        code = (
            "import os, sys, urllib.request as u, urllib.error as e\n"
            "ip = os.environ['SSH_CONNECTION'].split()[2]\n"
            "try:\n"
            f"    u.urlopen(u.Request('{self.url}/{action}/' + ip, method='POST'), timeout=60)\n"
            "except e.HTTPError as x:\n"
            "    sys.exit(x.read().decode() or str(x.code))\n"
        )
        encoded = base64.b64encode(code.encode()).decode()
        return f"python3 -c 'import base64; exec(base64.b64decode(\"{encoded}\"))'"

    def fail_next_upgrade(self, nodes: set[str]) -> None:
        """The next upgrade on any of ``nodes`` fails (wherever it comes first)."""
        with self.lock:
            self.fail_next_on = set(nodes)
            self.failed_on = None

    def forget_upgrades(self) -> None:
        """Nothing asked of upgrades still to come holds any more."""
        with self.lock:
            self.next_upgrade.clear()
            self.fail_next_on = set()

    def settled(self) -> bool:
        """No reboot asked for is still to begin."""
        with self.lock:
            return not self.pending

    # --- on the node ------------------------------------------------------------------------

    def _count(self, what: str) -> None:
        self.done[what] = self.done.get(what, 0) + 1

    def _down(self, node: str) -> bool:
        return self.kube.node(node).rebooting

    def reboot(self, node: str) -> tuple[int, str]:
        with self.lock:
            if self._down(node):
                return 503, f"ssh: node {node} is down"
            if node not in self.pending:
                boot = self.kube.node(node).info.boot_id
                timer = threading.Timer(REBOOT_DELAY, self._go_down, (node, boot))
                timer.daemon = True
                self.pending[node] = timer
                timer.start()
            self._count("reboot")
        return 200, "rebooting"

    def _go_down(self, node: str, boot: str) -> None:
        with self.lock:
            self.pending.pop(node, None)
            current = self.kube.node(node)
            # A node the test rebooted meanwhile (down still, or up on a new boot) took the
            # sleeping ``systemctl reboot`` down with it, as a real node does: that reboot was
            # the one asked for. (The lab once rebooted such a node again, knm's by its record,
            # after knm had rightly given it back on its new boot id.)
            if current.rebooting or current.info.boot_id != boot:
                return
            self.kube.reboot(node, by="node")

    def upgrade(self, node: str) -> tuple[int, str]:
        with self.lock:
            if self._down(node):
                return 503, f"ssh: node {node} is down"
            if node not in self.next_upgrade and node in self.fail_next_on:
                self.next_upgrade[node] = "fail"
                self.fail_next_on = set()
                self.failed_on = node
            what = self.next_upgrade.pop(node, "ok")
            self._count(f"upgrade {what}")
            if what == "fail":
                return 500, f"upgrade failed on {node}"
            if what == "ok":
                return 200, "upgraded"
            before = self.kube.node(node).info.boot_id
            self.kube.reboot(node, by="node")
        # reboot_if_needed: the playbook waits until the node is back.
        until = time.monotonic() + UPGRADE_REBOOT_WAIT
        while time.monotonic() < until:
            current = self.kube.node(node)
            if current.info.boot_id != before and not current.rebooting:
                return 200, "upgraded and rebooted"
            time.sleep(0.05)
        return 500, f"node {node} did not come back after the upgrade's reboot"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                parts = self.path.strip("/").split("/")
                node = agent.addresses.get(parts[-1]) if len(parts) == 2 else None
                if node is None or parts[0] not in ("reboot", "upgrade"):
                    code, text = 404, f"no such thing: {self.path}"
                else:
                    code, text = (agent.reboot if parts[0] == "reboot" else agent.upgrade)(node)
                body = text.encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        return Handler
