"""SSH test tooling for knm and its plugins: the one module to import.

- Real OpenSSH nodes on loopback addresses: ``SshFleet`` (and ``start_fleet``, a context
  manager that starts and stops one), with fault nodes (refused, silent) and fault commands.
- pytest fixtures (the knm.testing plugin registers them): ``ssh_fleet`` (session; skips when
  not root or without sshd) and ``ssh_fleet_cluster`` (module; a credential and a static
  cluster of the fleet through the API, a ``FleetCluster``); helpers ``create_fleet_credential``
  (password, key, passphrase-protected key) and ``create_fleet_cluster`` (any nodes, bastion).
- ``FleetServer``: asyncssh (one process, or workers) answering on many loopback addresses,
  for fan-out tests and benchmarks too big for real sshd (``python -m
  knm.testing.fleet_server``).

The modules behind it (``knm.testing.sshfleet``, ``knm.testing.fleet``,
``knm.testing.fleet_server``) stay importable; ``knm.testing.sshfleet`` is what older plugin
docs named.
"""

from knm.testing.fleet import (
    FleetCluster,
    create_fleet_cluster,
    create_fleet_credential,
    fleet_nodes,
    ssh_fleet,
    ssh_fleet_cluster,
)
from knm.testing.fleet_server import FleetServer
from knm.testing.sshfleet import (
    FaultCommands,
    FaultNodes,
    FleetNode,
    FleetStartError,
    SshdNotInstalledError,
    SshFleet,
    find_sshd,
    generate_ssh_key,
    loopback_address,
)
from knm.testing.sshfleet import ssh_fleet as start_fleet

__all__ = [
    "FaultCommands",
    "FaultNodes",
    "FleetCluster",
    "FleetNode",
    "FleetServer",
    "FleetStartError",
    "SshFleet",
    "SshdNotInstalledError",
    "create_fleet_cluster",
    "create_fleet_credential",
    "find_sshd",
    "fleet_nodes",
    "generate_ssh_key",
    "loopback_address",
    "ssh_fleet",
    "ssh_fleet_cluster",
    "start_fleet",
]
