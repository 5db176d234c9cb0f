"""``knm task list|show|watch|cancel|rerun|output|start``, and following a task to its end
(the live view, Ctrl-C handling, the exit code) for every command that starts one."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from knm.cli.completion.names import live
from knm.cli.remote import render
from knm.cli.remote.session import (
    CANCELLED,
    DETACHED,
    FAILED,
    OK,
    UsageError,
    command,
    done,
    emit_json,
    error,
    key_values,
    output_parent,
    reference,
)
from knm.client import Conflict
from knm.client.models import TaskStarted, TaskStatus
from knm.wire import TASK_STATES

if TYPE_CHECKING:
    from knm.client.models import Event
    from knm.client.sync import Client
    from knm.client.watches import Watches


TASK = render.Kind(
    "task",
    "task_id",
    columns=(
        *("task_id", "status", "cluster_name", "success_count", "failed_count"),
        *("start_time", "duration", "username"),
    ),
    wide=("kind", "created_at", "end_time", "parent_task_id", "target_nodes"),
)


def exit_code(status: TaskStatus) -> int:
    if status.status == "cancelled":
        return CANCELLED
    if status.status == "failed" or status.failed_count:
        return FAILED
    return OK


def _interrupt_choice(args: argparse.Namespace) -> str:
    choice = getattr(args, "on_interrupt", None) or "ask"
    if choice != "ask":
        return choice
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return "detach"
    while True:
        try:
            answer = input("\nInterrupted. [c]ancel the task, [d]etach, or keep [w]atching? ")
        except (EOFError, KeyboardInterrupt):
            return "detach"
        picked = {"c": "cancel", "d": "detach", "w": "watch"}.get(answer.strip().lower()[:1])
        if picked:
            return picked


def follow(args: argparse.Namespace, client: Client, task_id: str) -> int:
    """Watch ``task_id`` to its end and answer with the exit code its outcome means. A
    workflow's step tasks are followed on the same connection as its ``step`` events name
    them, so their node output shows as ``[step/node] line`` (unless ``--quiet``)."""
    from knm.cli.remote.live import LiveView  # only a command that follows a task draws one

    show_output = not getattr(args, "quiet", False)
    steps: dict[str, str] = {}
    with client.watch_many([task_id]) as watches:
        while True:
            try:
                if args.json:
                    status = client.wait(task_id)
                else:
                    with LiveView(task_id, show_output, steps) as view:
                        for event in watches:
                            view.update(event)
                            if show_output:
                                _follow_steps(client, watches, task_id, event)
                    status = client.task(task_id)
                break
            except KeyboardInterrupt:
                # Not left open behind the prompt: "keep watching" reconnects where it was.
                watches.close()
                choice = _interrupt_choice(args)
                if choice == "watch":
                    continue
                if choice == "detach":
                    error(
                        f"detached; {task_id} keeps running (follow it: knm task watch {task_id})"
                    )
                    if args.json:
                        emit_json(client.task(task_id))
                    return DETACHED
                try:
                    client.cancel(task_id)
                    error(f"cancelling {task_id}")
                except Conflict:
                    pass  # it finished meanwhile
                status = client.wait(task_id, timeout=120)
                break
    if args.json:
        emit_json(status)
    else:
        render.print_task(status)
    return exit_code(status)


def _follow_steps(client: Client, watches: Watches, task_id: str, event: Event) -> None:
    """Follow the child task a step of ``task_id`` runs, from its first event. A step ends
    after its task, so the watch, which ends once every task it follows has, reads all their
    output; once the workflow has ended, a step task not ended yet (it never should be) is let
    go rather than waited for."""
    if event.task_id != task_id:
        return
    child = event.data.get("task_id") if event.type == "step" else None
    if child:
        watches.add(str(child))
    elif event.type == "complete":
        for other in watches.following():
            if not client.task(other).finished:
                watches.discard(other)


def started(args: argparse.Namespace, client: Client, task: TaskStarted) -> int:
    """After a start: print the task id, then follow it unless told to detach."""
    if args.detach:
        if args.json:
            emit_json(task)
        else:
            print(task.task_id)
        return DETACHED
    if not args.json:
        render.err().print(f"started {task.task_id} ({task.status})", highlight=False)
    return follow(args, client, task.task_id)


def add_follow_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="do not print node output as it comes"
    )
    # Node output streams by default now; ``--follow`` stays accepted for scripts that say it.
    parser.add_argument("--follow", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--on-interrupt",
        choices=["ask", "cancel", "detach"],
        default="ask",
        help="what Ctrl-C does (default: ask on a terminal, else detach)",
    )


@command
def list_tasks(args: argparse.Namespace, client: Client) -> int:
    found = client.tasks(
        kind=args.kind,
        cluster_name=args.cluster,
        status=args.status,
        include_children=args.all or None,
        page=args.page,
        page_size=args.page_size,
    )
    document = {"total": found.total, "executions": found.items}
    render.print_list(args, TASK, found.items, document, found.total)
    return OK


@command
def show(args: argparse.Namespace, client: Client) -> int:
    status = client.task(args.task_id)

    def view(wide: bool) -> None:
        render.print_task(status, with_output=args.with_output, wide=wide)

    render.print_object(args, TASK, status, view)
    return OK


@command
def watch(args: argparse.Namespace, client: Client) -> int:
    return follow(args, client, args.task_id)


@command
def cancel(args: argparse.Namespace, client: Client) -> int:
    result = client.cancel(args.task_id)
    return done(args, result, f"{result.task_id}: cancel requested ({result.status})")


@command
def rerun(args: argparse.Namespace, client: Client) -> int:
    task = client.rerun(args.task_id, only_failed=not args.all_nodes)
    return started(args, client, task)


@command
def output(args: argparse.Namespace, client: Client) -> int:
    nodes = [args.node] if args.node else client.task(args.task_id).target_nodes
    sink = sys.stdout.buffer
    if args.output_file:
        written = client.download_output(args.task_id, nodes[0], args.output_file, args.stream)
        print(f"{written} bytes written to {args.output_file}", file=sys.stderr)
        return OK
    for node in nodes:
        if len(nodes) > 1:
            sink.write(f"==> {node} <==\n".encode())
        for chunk in client.stream_output(args.task_id, node, args.stream):
            sink.write(chunk)
        sink.flush()
    return OK


@command
def start(args: argparse.Namespace, client: Client) -> int:
    payload: dict[str, Any] = {"cluster_name": args.cluster}
    payload.update(targets(args))
    payload.update(key_values(args.field, typed=True))
    task = client.executor(args.route, args.start_path).start(
        payload, idempotency_key=args.idempotency_key
    )
    return started(args, client, task)


def targets(args: argparse.Namespace) -> dict[str, Any]:
    """The target and limit options of a run command, as request fields."""
    nodes = [n for part in args.nodes or [] for n in part.split(",") if n]
    if not nodes and not args.selector:
        raise UsageError("give the target nodes (-n node1,node2) or a selector (--selector)")
    fields: dict[str, Any] = {"target_nodes": nodes} if nodes else {}
    if args.selector:
        fields["target_selector"] = args.selector
    for name in ("timeout", "deadline", "batch_size", "max_failures"):
        value = getattr(args, name, None)
        if value is not None:
            fields[name] = value
    return fields


#: Seconds per unit of a duration (``90s``, ``10m``, ``2h``, ``1d``).
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def duration(text: str) -> int:
    """Seconds, from a number of seconds (``600``) or a duration as kubectl writes it (``10m``)."""
    number, unit = (text[:-1], text[-1]) if text[-1:] in UNITS else (text, "s")
    if not number.isdigit():
        raise argparse.ArgumentTypeError(
            f"expected seconds or a duration such as 90s, 10m, 2h, 1d; got {text!r}"
        )
    return int(number) * UNITS[unit]


def add_start_options(parser: argparse.ArgumentParser) -> None:
    """A command that starts a task: ``--detach``, or how to follow it (``add_follow_options``)."""
    parser.add_argument(
        "--detach",
        action="store_true",
        help="print the task id and return at once (exit code 5: still running)",
    )
    add_follow_options(parser)


def add_target_options(
    parser: argparse.ArgumentParser, *, credential: bool = True, cluster_required: bool = True
) -> None:
    live(
        parser.add_argument(
            "-c", "--cluster", required=cluster_required, help="the cluster's name"
        ),
        "cluster",
    )
    parser.add_argument(
        "-n", "--nodes", action="append", metavar="NODES", help="node names, comma-separated"
    )
    parser.add_argument("--selector", help="a label selector instead of names (role=worker)")
    if credential:
        live(parser.add_argument("--credential", help="credential id or name"), "credential")
    parser.add_argument("--timeout", type=duration, help="per node: seconds, or 90s, 10m, 2h")
    parser.add_argument("--deadline", type=duration, help="for the whole task: seconds, or 30m")
    parser.add_argument("--batch-size", type=int, help="nodes in flight at once")
    parser.add_argument("--max-failures", type=int, help="stop starting nodes after this many fail")
    parser.add_argument("--idempotency-key", help="a repeated key returns the first task")
    add_start_options(parser)


def register(nouns: dict[str, Any], parent: argparse.ArgumentParser) -> None:
    sub = nouns["task"]
    listing = [parent, output_parent()]
    p = sub.add_parser("list", parents=listing, help="tasks of every kind, newest first")
    p.add_argument("--kind")
    live(p.add_argument("--cluster"), "cluster")
    p.add_argument("--status", choices=TASK_STATES)
    p.add_argument("--all", action="store_true", help="include workflow steps' child tasks")
    p.add_argument("--page", type=int, default=1)
    p.add_argument("--page-size", type=int, default=20)
    p.set_defaults(func=list_tasks)

    p = sub.add_parser("show", parents=listing, help="a task's status and per-node results")
    live(p.add_argument("task_id", type=reference("task")), "task")
    p.add_argument("--with-output", action="store_true", help="also print each node's output")
    p.set_defaults(func=show)

    p = sub.add_parser("watch", parents=[parent], help="follow a task live until it ends")
    live(p.add_argument("task_id", type=reference("task")), "task")
    add_follow_options(p)
    p.set_defaults(func=watch, on_interrupt="detach")

    p = sub.add_parser("cancel", parents=[parent], help="cancel a pending or running task")
    live(p.add_argument("task_id", type=reference("task")), "task")
    p.set_defaults(func=cancel)

    p = sub.add_parser("rerun", parents=[parent], help="run a finished task's failed nodes again")
    live(p.add_argument("task_id", type=reference("task")), "task")
    p.add_argument("--all-nodes", action="store_true", help="every node, not only failed ones")
    add_start_options(p)
    p.set_defaults(func=rerun)

    p = sub.add_parser("output", parents=[parent], help="download a node's stored output")
    live(p.add_argument("task_id", type=reference("task")), "task")
    p.add_argument("--node", help="the node (default: every node, one after another)")
    p.add_argument("--stream", choices=["stdout", "stderr"], default="stdout")
    p.add_argument("-o", "--output-file", help="save to this file (continues a partial download)")
    p.set_defaults(func=output)

    p = sub.add_parser(
        "start", parents=[parent], help="start a task of any executor (plugins' too) by route"
    )
    p.add_argument("route", help="the executor's route (ssh, test, ...)")
    p.add_argument("--start-path", default="execute", help="execute (ansible: run)")
    p.add_argument("-f", "--field", action="append", metavar="KEY=VALUE", help="request field")
    add_target_options(p, credential=False)
    p.set_defaults(func=start)
