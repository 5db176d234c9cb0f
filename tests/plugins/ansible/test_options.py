"""What a run may pass to ansible-playbook, and the inventory it gets."""

from __future__ import annotations

import pytest

from knm.core.credentials.models import DecryptedCredential
from knm.core.errors import Invalid
from knm.core.tasks import TargetNode
from knm.plugins.ansible import inventory
from knm.plugins.ansible.options import check_extra_vars, parse_extra_args
from knm.plugins.ansible.schemas import MAX_FORKS

TARGETS = ["node1", "node2", "node3"]


def test_allowed_extra_args_are_rebuilt_from_what_was_understood() -> None:
    options = parse_extra_args("--check --diff --tags=a,b --skip-tags c -vvv --forks 500", TARGETS)
    assert options.argv() == ["--check", "--diff", "--tags", "a,b", "--skip-tags", "c", "-vvv"]
    assert options.forks == MAX_FORKS


def test_limit_takes_a_subset_of_the_targets() -> None:
    assert parse_extra_args("--limit node1:node3", TARGETS).limit == ["node1", "node3"]
    with pytest.raises(Invalid, match="not targets: node9"):
        parse_extra_args("--limit node1,node9", TARGETS)
    with pytest.raises(Invalid, match="target nodes only"):
        parse_extra_args("--limit all", TARGETS)


@pytest.mark.parametrize(
    "text",
    ["-e x=1", "--extra-vars=@/etc/shadow", "--become", "-i /etc/hosts", "--vault-password-file x",
     "--check; rm -rf /", "playbook.yml", "--ssh-common-args=-oProxyCommand=id", "-vvvvv"],
)  # fmt: skip
def test_anything_else_is_refused_naming_it(text: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse_extra_args(text, TARGETS)
    assert "not allowed" in caught.value.error or "cannot be parsed" in caught.value.error


def test_tags_and_forks_need_proper_values() -> None:
    for text in ("--tags", "--tags -x", "--forks 0", "--forks many", "--check 'unclosed"):
        with pytest.raises(Invalid):
            parse_extra_args(text, TARGETS)


def test_extra_vars_may_not_set_ansible_variables() -> None:
    check_extra_vars({"ntp_server": "pool", "reboot_if_needed": True})
    with pytest.raises(Invalid) as caught:
        check_extra_vars({"ansible_ssh_common_args": "x", "ANSIBLE_BECOME": True, "ok": 1})
    assert caught.value.error.endswith("ANSIBLE_BECOME, ansible_ssh_common_args")
    with pytest.raises(Invalid, match="not valid variable names: a-b"):
        check_extra_vars({"a-b": 1})


def test_the_inventory_has_hosts_label_vars_and_role_groups_and_no_secret() -> None:
    nodes = [
        TargetNode(name="cp1", address="10.0.0.1", port=22,
                   labels={"node-role.kubernetes.io/control-plane": "", "zone": "a"}),
        TargetNode(name="w1", address="10.0.0.2", port=2222,
                   labels={"node-role.kubernetes.io/worker": ""}),
    ]  # fmt: skip
    credential = DecryptedCredential(
        id=1, name="c", username="ops", auth_type="password", port=22, password="p{{ x }}'\""
    )
    built = inventory.build(nodes, credential)
    hosts = built.hosts["all"]["hosts"]
    assert hosts["w1"]["ansible_host"] == "10.0.0.2" and hosts["w1"]["ansible_port"] == 2222
    assert hosts["cp1"]["ansible_user"] == "ops"
    assert hosts["cp1"]["label_zone"] == "a"
    assert hosts["cp1"]["node_labels"]["zone"] == "a"
    assert built.hosts["all"]["children"] == {
        "control_plane": {"hosts": {"cp1": None}}, "worker": {"hosts": {"w1": None}}
    }  # fmt: skip
    assert "p{{" not in str(built.hosts)
    # The password is answered at ansible-playbook's prompt, never written: nothing templates it.
    assert built.password == "p{{ x }}'\""
    assert built.agent_key == ""
    assert "p{{" not in repr(built)
