"""Kubernetes plugin settings and request/response structs."""

from __future__ import annotations

from knm.core.features import ExecutorSettings


class K8sSettings(ExecutorSettings, kw_only=True, forbid_unknown_fields=True):
    """``max_concurrent``: node actions in flight at once in one process."""

    timeout: int = 600
    max_concurrent: int = 10
    #: Kubeconfigs whose user runs a command (exec, auth-provider) run code on the knm server.
    allow_kubeconfig_exec: bool = False
