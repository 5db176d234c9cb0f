"""The command guard-rail against its corpora: per class, how many destructive commands it
refuses (hand-written and generated variants apart), how many everyday admin commands it refuses
(with every builtin script, playbook task, workflow command and documented example), and how
long a 64 KiB command takes to check.

- Destructive commands: ``tests/core/corpora/destructive.yaml`` (hand-written, by class) plus
  variants generated here by putting a hand-written command behind a wrapper or inside nested
  code (``sudo``, ``chroot /``, ``bash -c '...'``, ``eval``, ``echo '...' | sh`` ...). A class
  gets at most half as many generated variants as it has hand-written commands.
- Everyday commands: ``tests/core/corpora/everyday.txt`` plus every builtin script (checked as at
  save, parameters deferred, and as at run with their defaults), every command line of the
  builtin playbooks and workflows, and every example in ``README.md`` and ``docs/``.
- Timing: the median of ``--repeat`` checks of each 64 KiB command in ``LARGE`` (the shapes
  that cost a checker most: many statements, long pipelines, deep nesting, long here-docs and
  strings, many assignments and functions, the shapes tree-sitter-bash parses in quadratic
  time), with its verdict; ``--timing`` prints only these.

Targets: >= 98 % refused overall, >= 95 % in every class, <= 1 % of everyday commands refused
and none of the builtins; a 64 KiB command in <= 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ROOT / "tests" / "core" / "corpora"
TARGET_OVERALL = 0.98
TARGET_CLASS = 0.95
TARGET_EVERYDAY = 0.01
TARGET_MS = 50.0


@dataclass(frozen=True)
class Case:
    text: str
    generated: bool = False
    source: str = "corpus"
    variables: dict[str, str] = field(default_factory=dict)
    deferred: tuple[str, ...] = ()
    builtin: bool = False


# --- destructive ------------------------------------------------------------------------------

_SIMPLE_WRAPPERS = (
    "sudo {}", "env LC_ALL=C {}", "timeout 60 {}", "nohup {}", "nice -n 5 {}", "ionice -c3 {}",
    "setsid {}", "chroot / {}", "runuser -u root -- {}", "systemd-run --scope -q {}",
    "strace -f -o /dev/null {}", "flock /tmp/knm.lock {}", "unshare -m {}", "doas {}",
    "stdbuf -oL {}", "command {}", "sudo -u root env FOO=1 nice {}", "busybox {}",
    "taskset -c 0 {}", "setpriv --reuid=0 {}", "nsenter -t 1 -m -- {}", "time {}",
)  # fmt: skip
_CODE_WRAPPERS = (
    "bash -c {q}", "sh -c {q}", "eval {q}", "su -c {q}", "su root -c {q}", "echo {q} | bash",
    "bash <<< {q}", "flock /tmp/knm.lock -c {q}", "find /tmp -maxdepth 0 -exec sh -c {q} \\;",
    "parallel ::: {q}", "sudo sh -c {q}", "$BASH -c {q}", "at now <<< {q}", "watch -n 60 {q}",
    "script -qc {q} /dev/null", "( {} )", "{{ {}; }}", "if true; then {}; fi", "true && {}",
    "runuser -l root -c {q}", "printf '%s\\n' {q} | sh", "dash -c {q}",
    "xargs -0 -I{{}} sh -c {q} < /dev/null", "sudo -s {q}",
)  # fmt: skip
_META = re.compile(r"[;&|<>(){}\n`]|^\s*[:>]|\$\(")


def _wrap(command: str, index: int) -> str:
    simple = not _META.search(command)
    wrappers = _SIMPLE_WRAPPERS + _CODE_WRAPPERS if simple else _CODE_WRAPPERS
    wrapper = wrappers[index % len(wrappers)]
    if wrapper.startswith("xargs"):  # xargs needs input to run its command at all
        return f"echo x | xargs -I{{}} sh -c {shlex.quote(command)}"
    # The wrapper's own placeholders first: a command holding ``{}`` (``find -exec``) is put
    # in whole, never substituted into.
    template = wrapper.replace("{{", "\0").replace("}}", "\1")
    pieces = re.split(r"(\{q\}|\{\})", template)
    return "".join(
        shlex.quote(command) if p == "{q}" else command if p == "{}" else
        p.replace("\0", "{").replace("\1", "}")
        for p in pieces
    )  # fmt: skip


def destructive() -> dict[str, list[Case]]:
    """Every destructive case by class: the hand-written ones, then generated variants."""
    raw = yaml.safe_load((CORPORA / "destructive.yaml").read_text())
    out: dict[str, list[Case]] = {}
    for name, commands in raw.items():
        hand = [Case(str(c)) for c in commands]
        count = len(hand) // 2  # at most half of the hand-written count: a third of the class
        step = max(1, len(hand) // max(count, 1))
        generated = [
            Case(_wrap(hand[(i * step) % len(hand)].text, i), generated=True) for i in range(count)
        ]
        out[name] = hand + generated
    return out


# --- everyday ---------------------------------------------------------------------------------


def _lines(text: str) -> list[str]:
    out: list[str] = []
    buffer = ""
    for line in text.splitlines():
        if not buffer and (line.startswith("#") or not line.strip()):
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + "\n"
            continue
        out.append(buffer + line)
        buffer = ""
    return out


def builtin_cases() -> list[Case]:
    """Every builtin script (as at save and as at run), playbook command line and workflow
    command (rendered with the parameters' defaults, quoted as the engine quotes them)."""
    from knm.plugins.ansible.library import BUILTINS, builtin_text
    from knm.plugins.ansible.shell_tasks import play_scripts, shell_tasks
    from knm.plugins.scripts.library import builtin_text as script_text
    from knm.plugins.scripts.library import manifest
    from knm.plugins.workflows.builtins import builtin_workflows
    from knm.plugins.workflows.definition import command_for_check

    cases: list[Case] = []
    for item in manifest():
        if item.language != "shell":
            continue
        body = script_text(item.file)
        names = tuple(p.name for p in item.parameters)
        defaults = {p.name: p.default for p in item.parameters if p.default is not None}
        cases.append(Case(body, source=f"script {item.name} (save)", deferred=names, builtin=True))
        cases.append(Case(body, source=f"script {item.name} (run)", variables=defaults,
                          builtin=True))  # fmt: skip
    for shipped in BUILTINS:
        for task in shell_tasks(builtin_text(shipped.file)):
            cases.append(Case(task.command, source=f"playbook {shipped.name}: {task.where}",
                              builtin=True))  # fmt: skip
        for i, script in enumerate(play_scripts(builtin_text(shipped.file)), start=1):
            cases.append(Case(script, source=f"playbook {shipped.name}: play {i}, all tasks",
                              builtin=True))  # fmt: skip
    for workflow in builtin_workflows():
        body = workflow.body
        parameters = body.get("parameters", []) if isinstance(body, dict) else []
        for step in body.get("steps", []) if isinstance(body, dict) else []:
            command = step.get("command")
            if isinstance(command, str):
                cases.append(Case(command_for_check(command, parameters),
                                  source=f"workflow {workflow.name}: {step.get('id')}",
                                  builtin=True))  # fmt: skip
    return cases


_FENCE = re.compile(r"```(sh|bash|shell|console)\n(.*?)```", re.S)
_JSON_COMMAND = re.compile(r'"command":\s*"((?:[^"\\]|\\.)*)"')


def doc_cases() -> list[Case]:
    """Every shell example in README.md and docs/: fenced blocks whole (a ``console`` block's
    commands, its ``$ `` lines: the rest is what they printed, not shell), the node commands of
    ``knm ssh run ... -- CMD`` lines and the ``"command"`` of JSON examples (except those the
    text shows being refused with 422)."""
    cases: list[Case] = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        for lang, block in _FENCE.findall(text):
            if lang == "console":
                block = "".join(
                    line[2:] + "\n" for line in block.splitlines() if line.startswith("$ ")
                )
            cases.append(Case(block, source=f"{path.name} example"))
            for line in block.splitlines():
                if re.match(r"^\s*knm ssh run .* -- ", line):
                    node = line.split(" -- ", 1)[1].split("#", 1)[0].strip()
                    cases.append(Case(node, source=f"{path.name} knm ssh run"))
        for match in _JSON_COMMAND.finditer(text):
            after = text[match.end() : match.end() + 200]
            if "422" in after.split("\n\n", 1)[0]:
                continue
            cases.append(Case(json.loads(f'"{match.group(1)}"'), source=f"{path.name} JSON"))
    return cases


def everyday() -> list[Case]:
    hand = [Case(line) for line in _lines((CORPORA / "everyday.txt").read_text())]
    return hand + builtin_cases() + doc_cases()


# --- checking ---------------------------------------------------------------------------------


def refused(case: Case) -> list[str]:
    from knm.core.policy import check_script

    found = check_script(case.text, variables=case.variables, deferred=case.deferred)
    return [f"{v.rule}: {v.matched}" for v in found]


def _fit(text: str, tail: str = "") -> str:
    """``text`` cut so that, with ``tail``, it is at most 64 KiB."""
    return text[: 65536 - len(tail)] + tail


def _repeat(head: str, unit: str, tail: str = "") -> str:
    """``head``, ``unit`` as many times as fit in 64 KiB with ``tail``, and ``tail``."""
    return head + unit * ((65536 - len(head) - len(tail)) // len(unit)) + tail


def _near_every_limit(functions: int, redirected: int, plain: int, words: int) -> str:
    """Functions, distinct redirected statements with quotes and expansions, distinct plain
    commands and one command of many quoted words: each limit's costliest unit at once."""
    return (
        "".join(f"f{i}() {{ ls /tmp/d{i}; }}\n" for i in range(functions))
        + "".join(f'echo "a{i}" $x{i} > /tmp/r{i}\n' for i in range(redirected))
        + "".join(f"job{i} --run\n" for i in range(plain))
        + "echo"
        + " 'a'" * words
        + "\n"
    )


#: 64 KiB commands in the shapes that cost a checker most: many statements, long pipelines and
#: and-or lists, deep nesting (to the checker's limit and past it), long here-docs, strings and
#: word lists, many assignments, functions, redirections, what tree-sitter-bash parses in
#: quadratic time, text near every limit at once, and the shapes the lexer once left to the
#: parse of the whole text (here-docs before ``;``, a vertical tab in a word, a trailing ``\``
#: or an unclosed ``'``).
LARGE: dict[str, str] = {
    "plain script": _fit("echo hello world; ls -la /tmp | grep x && rm -rf /tmp/a\n" * 1200),
    "fork-bomb shape": _fit("[[ 1 ]]; f(){ " + "f" * 70000),
    "nested subshells": _fit("(" * 20000 + "ls" + ")" * 20000),
    "one long word list": _fit("echo " + "a " * 40000),
    "pipes": _fit("cat x | " * 9000, "cat"),
    "short statements": _fit("ls\n" * 30000),
    "distinct short statements": _fit("".join(f"a{i};" for i in range(20000))),
    "one huge pipeline": _fit("a|" * 40000, "b"),
    "quoted words pipeline": _repeat("", '"a"|', '"b"'),
    "and-or chain": _repeat("", "a && ", "b"),
    "nested groups": _fit("{ " * 10000 + "ls; " + "}; " * 10000),
    "nested $( )": _fit("echo " + "$(" * 8000 + "ls" + ")" * 8000),
    "nested if": _fit("if true; then " * 3000 + "ls; " + "fi; " * 3000),
    "nested to the limit": "if true; then " * 110 + "ls -la /tmp; " * 4000 + "fi; " * 110,
    "long here-doc": _repeat("cat <<'EOF'\n", "some text line here\n", "EOF\n"),
    "here-doc into sh": _repeat("sh <<'EOF'\n", "echo hello; ls -la /tmp\n", "EOF\n"),
    "long quoted string": 'echo "' + "a" * 65520 + '"',
    "quoted expansions": _fit('echo "' + "$a" * 40000, '"'),
    "sh -c script": "sh -c '" + ("echo hi; ls /tmp; " * 4000)[:65500] + "'",
    "many assignments": _fit("".join(f"v{i}=x{i}; " for i in range(10000))),
    "many functions": _fit("".join(f"f{i}() {{ ls /tmp; }}; " for i in range(5000))),
    "functions calling functions": _fit(
        "f0() { ls; }; " + "".join(f"f{i}() {{ f{i - 1}; f{i - 1}; }}; " for i in range(1, 5000))
    ),
    "many words with $": _fit("echo " + "$x " * 30000),
    "many redirections": _fit("echo a > /tmp/x; " * 6000),
    "arithmetic commands": _fit("((1)) " * 12000),
    # 37 KB, just under each of the four limits of #18's first round (1,881 commands, 286
    # parsed, 95 functions, 4,306 words and parts): ~60 ms then, the budget refuses it now.
    "every limit at once": _near_every_limit(95, 190, 1500, 2500),
    # 12 KB, just under the budget (4,467 units: 291 parsed statements, 95 functions).
    "under the budget": _near_every_limit(95, 195, 100, 500),
    "here-docs before ;": _repeat("", "cat <<E; echo a\nsome body text\nE\n"),
    "here-doc before ; then quoted pipeline": _repeat("cat <<E; ", '"a"|', '"b"\nx\nE\n'),
    "here-doc before ; then rm": _repeat("cat <<E; rm -rf /etc\n", "some body text\n", "E\n"),
    "vertical tab in words": _repeat(
        "echo", " abcdefghijklmnop\v#bcdefghijklmnop", "; rm -rf /etc"
    ),
    "case arm with errors": _repeat("case x in a) ", "echo " + "a" * 80 + " @(a); ", ";; esac"),
    "trailing backslash": _repeat("echo", " abcdefghijklmnopqrstuvw", " \\"),
    "unclosed quote": _repeat("echo", " abcdefghijklmnopqrstuvw", " '"),
    # Errors only tree-sitter-bash sees (``@(a)`` outside a word) in constructs parsed whole
    # until 2026-12-04 evening: 250-480 ms for 64 KiB.
    "long [[ ]] with errors": _repeat("[[ ", "-n " + "a" * 80 + " && @(a) && ", "-n b ]]"),
    "long if condition with errors": _repeat(
        "if ", "echo " + "a" * 80 + " @(a); ", "true; then :; fi"
    ),
    "long back-quote with errors": _repeat("echo `", "echo " + "a" * 80 + " @(a); ", "`"),
}


def timing(repeat: int) -> dict[str, tuple[float, float, str]]:
    """Median wall and CPU milliseconds per large command, and what it is refused for (CPU
    time is what the check costs; on a machine busy with other work the wall time is
    longer)."""
    from knm.core.policy import check_command

    medians = {}
    for name, text in LARGE.items():
        rules = ", ".join(sorted({v.rule for v in check_command(text)})) or "allowed"
        walls, cpus = [], []
        for _ in range(repeat):
            wall, cpu = time.perf_counter(), time.process_time()
            check_command(text)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        medians[name] = (statistics.median(walls) * 1000, statistics.median(cpus) * 1000, rules)
    return medians


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=21, help="timing runs per large command")
    parser.add_argument("--smoke", action="store_true", help="3 timing runs")
    parser.add_argument("--verbose", action="store_true", help="list every miss")
    parser.add_argument("--timing", action="store_true", help="only the 64 KiB timings")
    args = parser.parse_args(argv)
    repeat = 3 if args.smoke else args.repeat
    if args.timing:
        return print_timing(repeat)
    classes = destructive()
    print("| class | total | hand-written | generated | refused % | hand % | generated % |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    total = hits = 0
    failed = False
    for name, cases in classes.items():
        results = [(case, bool(refused(case))) for case in cases]
        hand = [r for c, r in results if not c.generated]
        gen = [r for c, r in results if c.generated]
        share = sum(r for _, r in results) / len(results)
        total += len(results)
        hits += sum(r for _, r in results)
        failed |= share < TARGET_CLASS
        print(f"| {name} | {len(results)} | {len(hand)} | {len(gen)} | {share * 100:.1f} "
              f"| {sum(hand) / len(hand) * 100:.1f} | "
              f"{(sum(gen) / len(gen) * 100 if gen else 100):.1f} |")  # fmt: skip
        if args.verbose:
            for case, r in results:
                if not r:
                    print(f"  missed: {case.text!r}", file=sys.stderr)
    overall = hits / total
    failed |= overall < TARGET_OVERALL
    print(f"| **all** | {total} | | | {overall * 100:.1f} | | |")
    cases = everyday()
    bad = [(case, refused(case)) for case in cases]
    bad = [(case, why) for case, why in bad if why]
    builtin_bad = [case for case, _ in bad if case.builtin]
    share = len(bad) / len(cases)
    failed |= share > TARGET_EVERYDAY or bool(builtin_bad)
    print()
    print("| everyday | total | builtins | refused | refused % | builtins refused |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| admin commands | {len(cases)} | {sum(c.builtin for c in cases)} | {len(bad)} "
          f"| {share * 100:.2f} | {len(builtin_bad)} |")  # fmt: skip
    for case, why in bad:
        print(f"  refused ({case.source}): {case.text[:120]!r} -- {why[0]}", file=sys.stderr)
    print()
    print_timing(repeat)
    return 1 if failed else 0


def print_timing(repeat: int) -> int:
    before = os.getloadavg()
    medians = timing(repeat)
    after = os.getloadavg()
    print(f"| 64 KiB command | median wall ms ({repeat} runs) | median CPU ms | verdict |")
    print("|---|---:|---:|---|")
    for name, (wall, cpu, rules) in medians.items():
        mark = "" if cpu <= TARGET_MS else " (over target)"
        print(f"| {name} | {wall:.1f} | {cpu:.1f}{mark} | {rules} |")
    print(f"load average (1 min) {before[0]:.2f} before, {after[0]:.2f} after; "
          f"target ≤ {TARGET_MS:.0f} ms CPU")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
