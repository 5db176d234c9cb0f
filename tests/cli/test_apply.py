"""``knm apply -f`` and ``knm get`` against a real server: items created, changed (with a diff,
conditionally on their version) or left alone (their version does not move), ``--dry-run``
changing nothing, a directory read in order, ``get -o yaml`` taken back unchanged, a builtin
refused while the others apply, a bad document named by file and index, clusters created and
changed, and never a secret in the output."""

from __future__ import annotations

from pathlib import Path

import yaml

from knm.client import Client
from knm.testing.k8s_standin import KubeStandin

from .conftest import Knm

LIBRARY = """\
kind: playbook
name: ap-ntp
description: keeps time
content: |
  - hosts: all
    tasks:
      - ansible.builtin.ping:
---
kind: Script
name: ap-disk
language: shell
tags: [disk]
content: |
  df -h
---
kind: workflow
name: ap-roll
definition:
  steps:
    - id: one
      type: test
"""


def version_of(admin: Client, plural: str, name: str) -> int:
    api = getattr(admin, plural)
    return next(i.version for i in api.list(q=name, page_size=100).items if i.name == name)


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_a_multi_document_file_creates_each_item_then_leaves_them_unchanged(
    knm: Knm, admin: Client, tmp_path: Path
) -> None:
    lib = write(tmp_path, "lib.yaml", LIBRARY)
    first = knm("apply", "-f", lib)
    assert first.code == 0, first.err
    assert first.out.splitlines() == [
        "playbook/ap-ntp created",
        "script/ap-disk created",
        "workflow/ap-roll created",
    ]
    before = [version_of(admin, p, n) for p, n in (("playbooks", "ap-ntp"),
              ("scripts", "ap-disk"), ("workflows", "ap-roll"))]  # fmt: skip
    again = knm("apply", "-f", lib)
    assert again.code == 0, again.err
    assert again.out.splitlines() == [
        "playbook/ap-ntp unchanged",
        "script/ap-disk unchanged",
        "workflow/ap-roll unchanged",
    ]
    after = [version_of(admin, p, n) for p, n in (("playbooks", "ap-ntp"),
             ("scripts", "ap-disk"), ("workflows", "ap-roll"))]  # fmt: skip
    assert after == before == [1, 1, 1]
    as_json = knm("apply", "-f", lib, "--dry-run", "--json").json()
    assert as_json["dry_run"] is True
    assert [(i["kind"], i["action"]) for i in as_json["items"]] == [
        ("playbook", "unchanged"),
        ("script", "unchanged"),
        ("workflow", "unchanged"),
    ]


def test_a_changed_field_is_configured_with_a_diff_and_a_new_version(
    knm: Knm, admin: Client, tmp_path: Path
) -> None:
    lib = write(tmp_path, "lib.yaml", LIBRARY.replace("ap-", "ch-"))
    assert knm("apply", "-f", lib).code == 0
    changed = LIBRARY.replace("ap-", "ch-").replace("df -h", "df -h /var")
    result = knm("apply", "-f", write(tmp_path, "lib.yaml", changed))
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == "playbook/ch-ntp unchanged"
    assert lines[1] == "script/ch-disk configured"
    assert "--- script/ch-disk (server, version 1)" in lines
    assert f"+++ script/ch-disk ({lib})" in lines
    assert "-  df -h" in lines and "+  df -h /var" in lines
    assert lines[-1] == "workflow/ch-roll unchanged"
    assert version_of(admin, "scripts", "ch-disk") == 2
    assert version_of(admin, "playbooks", "ch-ntp") == 1


def test_a_dry_run_prints_the_changes_and_makes_none(
    knm: Knm, admin: Client, tmp_path: Path
) -> None:
    lib = write(tmp_path, "lib.yaml", LIBRARY.replace("ap-", "dry-"))
    created = knm("apply", "-f", lib, "--dry-run")
    assert created.code == 0, created.err
    assert created.out.splitlines()[0] == "playbook/dry-ntp created (dry run)"
    assert not [i for i in admin.playbooks.list(q="dry-ntp").items if i.name == "dry-ntp"]
    assert knm("apply", "-f", lib).code == 0
    write(tmp_path, "lib.yaml", LIBRARY.replace("ap-", "dry-").replace("keeps time", "ntp"))
    planned = knm("apply", "-f", lib, "--dry-run")
    assert planned.code == 0, planned.err
    assert "playbook/dry-ntp configured (dry run)" in planned.out
    assert "-description: keeps time\n+description: ntp\n" in planned.out
    playbook = admin.playbooks.get(admin.playbooks.list(q="dry-ntp").items[0].id)
    assert (playbook.description, playbook.version) == ("keeps time", 1)


def test_a_directory_applies_its_yaml_and_json_files_in_order_and_not_its_subdirectories(
    knm: Knm, tmp_path: Path
) -> None:
    lib = tmp_path / "lib"
    (lib / "deeper").mkdir(parents=True)
    (lib / "b.yml").write_text("kind: script\nname: dir-b\ncontent: echo b\n")
    (lib / "a.json").write_text('{"kind": "script", "name": "dir-a", "content": "echo a"}')
    (lib / "notes.txt").write_text("not a document")
    (lib / "deeper" / "c.yaml").write_text("kind: script\nname: dir-c\ncontent: echo c\n")
    flat = knm("apply", "-f", str(lib))
    assert flat.code == 0, flat.err
    assert flat.out.splitlines() == ["script/dir-a created", "script/dir-b created"]
    deep = knm("apply", "-R", "-f", str(lib))
    assert deep.out.splitlines() == [
        "script/dir-a unchanged",
        "script/dir-b unchanged",
        "script/dir-c created",
    ]


def test_get_prints_documents_that_apply_takes_back_unchanged(
    knm: Knm, admin: Client, tmp_path: Path
) -> None:
    assert knm("apply", "-f", write(tmp_path, "lib.yaml", LIBRARY.replace("ap-", "rt-"))).code == 0
    admin.scripts.create(
        "rt-params",
        "echo $WHO\n",
        language="shell",
        parameters=[{"name": "WHO", "description": "who to greet"}],
    )
    for kind, name in (("playbook", "rt-ntp"), ("script", "rt-params"), ("workflow", "rt-roll")):
        got = knm("get", kind, name, "-o", "yaml")
        assert got.code == 0, got.err
        document = yaml.safe_load(got.out)
        assert (document["kind"], document["name"]) == (kind, name)
        assert not {"id", "version", "created_at", "updated_at"} & document.keys()
        back = knm("apply", "-f", "-", stdin=got.out)
        assert back.out == f"{kind}/{name} unchanged\n", back.err
    every = knm("get", "scripts", "-o", "yaml")
    assert every.code == 0 and every.out.count("kind: script\n") >= 2
    assert knm("apply", "-f", "-", stdin=every.out).out.count(" unchanged\n") >= 2
    as_json = knm("get", "playbook/rt-ntp", "-o", "json").json()
    assert as_json["content"].startswith("- hosts: all")
    assert knm("get", "playbook", "rt-ntp", "-o", "name").out == "playbook/rt-ntp\n"
    # The noun's own show keeps printing the API's object.
    shown = yaml.safe_load(knm("playbook", "show", "rt-ntp", "-o", "yaml").out)
    assert "id" in shown and "version" in shown


def test_a_builtin_that_differs_is_refused_while_the_others_still_apply(
    knm: Knm, admin: Client, tmp_path: Path
) -> None:
    builtin = admin.playbooks.list(is_builtin=True).items[0]
    got = yaml.safe_load(knm("get", "playbook", builtin.name, "-o", "yaml").out)
    got["description"] = "mine now"
    other = {"kind": "script", "name": "bi-other", "content": "true"}
    path = write(tmp_path, "mixed.yaml", yaml.safe_dump_all([got, other]))
    result = knm("apply", "-f", path)
    assert result.code == 1
    assert f"playbook/{builtin.name} ({path}, document 1): builtin items are read-only" in (
        result.err
    )
    assert result.out.splitlines() == ["script/bi-other created"]
    assert admin.playbooks.get(builtin.id).version == builtin.version


def test_an_invalid_document_is_named_by_its_file_and_index(knm: Knm, tmp_path: Path) -> None:
    no_kind = write(
        tmp_path, "a.yaml", "kind: script\nname: iv-ok\ncontent: 'true'\n---\nname: x\n"
    )
    refused = knm("apply", "-f", no_kind)
    assert refused.code == 2
    assert f"{no_kind}, document 2: kind '' is not one of" in refused.err
    assert refused.out == ""  # nothing applied before every document was read
    bad = "kind: script\nname: iv-ok\ncontent: 'true'\n---\nkind: script\nname: iv-bad\n"
    bad += "content: 'true'\nlanguage: cobol\n"
    result = knm("apply", "-f", write(tmp_path, "b.yaml", bad))
    assert result.code == 1
    assert result.out == "script/iv-ok created\n"
    assert f"script/iv-bad ({tmp_path / 'b.yaml'}, document 2): " in result.err
    assert "language" in result.err


def test_a_static_cluster_is_created_and_updated_by_apply(
    knm: Knm, admin: Client, tmp_path: Path
) -> None:
    spec = {
        "kind": "cluster",
        "name": "ap-lab",
        "provider": "static",
        "description": "the lab",
        "nodes": [{"name": "n1", "address": "127.0.0.2", "labels": {"rack": "a"}}],
    }
    path = write(tmp_path, "lab.yaml", yaml.safe_dump(spec))
    assert knm("apply", "-f", path).out == "cluster/ap-lab created\n"
    assert knm("apply", "-f", path).out == "cluster/ap-lab unchanged\n"
    spec["nodes"].append({"name": "n2", "address": "127.0.0.3"})
    write(tmp_path, "lab.yaml", yaml.safe_dump(spec))
    changed = knm("apply", "-f", path)
    assert changed.code == 0, changed.err
    assert changed.out.startswith("cluster/ap-lab configured\n")
    assert "+- address: 127.0.0.3\n" in changed.out
    assert [n["name"] for n in admin.cluster("ap-lab").extra["nodes"]] == ["n1", "n2"]
    got = knm("get", "cluster", "ap-lab", "-o", "yaml").out
    assert yaml.safe_load(got)["provider"] == "static"
    assert knm("apply", "-f", "-", stdin=got).out == "cluster/ap-lab unchanged\n"


def test_a_kubeconfig_is_write_only_never_printed_and_sent_only_with_changes(
    knm: Knm, kube_standin: KubeStandin, tmp_path: Path
) -> None:
    secret = kube_standin.kubeconfig()
    spec = {"kind": "cluster", "name": "ap-kube", "provider": "kubernetes", "kubeconfig": secret}
    path = write(tmp_path, "kube.yaml", yaml.safe_dump(spec))
    outputs = [knm("apply", "-f", path)]
    assert outputs[0].out == "cluster/ap-kube created\n", outputs[0].err
    outputs.append(knm("apply", "-f", path))
    assert outputs[1].out.startswith("cluster/ap-kube unchanged\n")
    assert "kubeconfig: write-only, not compared, not sent" in outputs[1].out
    outputs.append(knm("apply", "-f", path, "--send-write-only", "--dry-run"))
    assert "cluster/ap-kube configured (dry run)\n  kubeconfig: write-only, sent\n" in (
        outputs[2].out
    )
    spec["description"] = "from a kubeconfig"
    write(tmp_path, "kube.yaml", yaml.safe_dump(spec))
    outputs.append(knm("apply", "-f", path))
    assert outputs[3].out.startswith("cluster/ap-kube configured\n  kubeconfig: write-only, sent\n")
    assert "+description: from a kubeconfig\n" in outputs[3].out
    outputs.append(knm("get", "cluster", "ap-kube", "-o", "yaml"))
    outputs.append(knm("get", "clusters", "-o", "json"))
    token = yaml.safe_load(secret)["users"][0]["user"]["token"]
    for output in outputs:
        assert token not in output.out + output.err
        assert "kubeconfig:" not in output.out.replace("kubeconfig: write-only", "")


def test_the_same_item_twice_is_refused_before_anything_is_sent(knm: Knm, tmp_path: Path) -> None:
    twice = "kind: script\nname: tw-a\ncontent: 'true'\n---\nkind: Script\nname: tw-a\n"
    path = write(tmp_path, "twice.yaml", twice)
    result = knm("apply", "-f", path)
    assert result.code == 2 and result.out == ""
    assert f"{path}, document 2: script/tw-a is also in {path}, document 1" in result.err


def test_apply_stops_with_exit_4_when_no_server_answers(knm: Knm, tmp_path: Path) -> None:
    path = write(tmp_path, "lib.yaml", LIBRARY.replace("ap-", "ns-"))
    result = knm("apply", "-f", path, "--url", "http://127.0.0.1:9")
    assert result.code == 4 and result.out == ""
    assert result.err.count("knm: ") >= 1 and "ns-disk" not in result.err


def test_a_kubeconfig_path_instead_of_its_text_is_refused_before_it_is_sent(
    knm: Knm, tmp_path: Path
) -> None:
    spec = "kind: cluster\nname: ap-path\nprovider: kubernetes\nkubeconfig: ~/.kube/config\n"
    path = write(tmp_path, "kube.yaml", spec)
    result = knm("apply", "-f", path)
    assert result.code == 1 and result.out == ""
    assert f"cluster/ap-path ({path}, document 1): kubeconfig must hold the kubeconfig's text" in (
        result.err
    )


def test_a_file_that_is_not_yaml_is_refused_at_its_line_before_anything_is_sent(
    knm: Knm, tmp_path: Path
) -> None:
    broken = "kind: script\nname: nl-a\ncontent: 'true'\n---\nkind: script\nname: [nl-b\n"
    path = write(tmp_path, "broken.yaml", broken)
    result = knm("apply", "-f", path)
    assert result.code == 2 and result.out == ""
    assert f"{path}, line 7, column 1: not valid YAML or JSON: expected ',' or ']'" in result.err
