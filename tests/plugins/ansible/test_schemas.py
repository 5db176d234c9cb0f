"""The Ansible plugin's settings."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from knm.plugins.ansible.schemas import AnsibleSettings


def test_the_default_binary_is_the_ansible_installed_with_knm() -> None:
    beside = Path(sys.executable).parent / "ansible-playbook"
    if not os.access(beside, os.X_OK):
        pytest.skip("ansible-core is not installed beside this interpreter")
    # Not PATH's first: that may be another version, or a shim that runs bash before each run.
    assert AnsibleSettings().binary_path == str(beside)


def test_a_binary_path_given_is_kept() -> None:
    assert AnsibleSettings(binary_path="/opt/ansible/bin/ansible-playbook").binary_path == (
        "/opt/ansible/bin/ansible-playbook"
    )
