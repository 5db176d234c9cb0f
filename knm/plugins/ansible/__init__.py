"""The Ansible executor: stored playbooks run with ansible-runner as an unprivileged user."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from knm.core.content import BuiltinContent, ContentKind
from knm.core.features import FeatureSpec
from knm.core.hookspecs import hookimpl
from knm.plugins.ansible.executor import AnsibleExecutor
from knm.plugins.ansible.library import PLAYBOOK, builtin_playbooks
from knm.plugins.ansible.schemas import AnsibleSettings

# ``GET /plugins`` asks a plugin module's ``unavailable(knm)`` why it cannot work.
from knm.plugins.ansible.toolchain import lifespan, unavailable  # noqa: F401

_EXECUTOR = AnsibleExecutor()


@hookimpl
def knm_features() -> list[FeatureSpec]:
    return [FeatureSpec("ansible", AnsibleSettings, description="Ansible playbook runs")]


@hookimpl
def knm_executors() -> list[AnsibleExecutor]:
    return [_EXECUTOR]


@hookimpl
def knm_content_kinds() -> list[ContentKind]:
    return [PLAYBOOK]


@hookimpl
def knm_builtin_content() -> list[BuiltinContent]:
    return builtin_playbooks()


@hookimpl
def knm_lifespan() -> list[Callable[[Any], AbstractAsyncContextManager[None]]]:
    return [lifespan]
