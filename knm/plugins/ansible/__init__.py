"""The Ansible executor: stored playbooks run with ansible-runner."""

from __future__ import annotations

from knm.core.features import FeatureSpec
from knm.core.hookspecs import hookimpl
from knm.plugins.ansible.schemas import AnsibleSettings


@hookimpl
def knm_features() -> list[FeatureSpec]:
    return [FeatureSpec("ansible", AnsibleSettings, description="Ansible playbook runs")]
