"""Where remote commands find their server and token, and how they end.

The server and token come from, first to last:

1. ``--url`` and ``KNM_URL``/``KNM_TOKEN`` (automation);
2. the context named by ``--context NAME``;
3. the context named by ``KNM_CONTEXT``;
4. the current context (``knm config use-context``, or the last ``knm login``).

Contexts are what ``knm login`` stored in ``<user config dir>/knm/credentials.json`` (mode 0600;
server, user and token, never the password): see ``knm.cli.remote.contexts``. A context's
token is used only for its own server, so ``KNM_URL`` naming another server sends no token. A
context named by ``--context`` or ``KNM_CONTEXT`` that does not exist is an error even when
``KNM_URL`` and ``KNM_TOKEN`` make it unneeded: a misspelt name is never ignored.

A URL with a path (``https://host/knm``) means knm is mounted there: the API is then under
``/knm/api/v1``.

Exit codes (``EXIT_CODES``, shown by ``knm --help`` and the README): 0 done (a task: every
node succeeded), 1 the task failed or some node failed, 2 usage error (bad arguments, not logged
in), 3 the task was cancelled, 4 an API or network error (any error answer: 401, 403, 404, 409,
422, 429, 5xx — or no answer), 5 detached: the task is still running (``--detach``, or Ctrl-C
answered with detach), 130 interrupted by Ctrl-C. A script that detaches tells "started, not
finished" from "every node succeeded" by the code alone.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msgspec

from knm.cli.entry import INTERRUPTED
from knm.cli.remote import contexts
from knm.client import KnmError, NotFound, RateLimited, TransportError

if TYPE_CHECKING:
    from knm.client.sync import Client

OK, FAILED, USAGE, CANCELLED, API_ERROR, DETACHED = 0, 1, 2, 3, 4, 5
#: Every exit code of a remote command and what it means, in order.
EXIT_CODES = {
    OK: "done (a task: every node succeeded)",
    FAILED: "the task failed or some node failed",
    USAGE: "usage error (bad arguments, not logged in)",
    CANCELLED: "the task was cancelled",
    API_ERROR: "API or network error (any error answer, or no answer)",
    DETACHED: "detached: the task is still running (--detach, or Ctrl-C then detach)",
    INTERRUPTED: "interrupted by Ctrl-C (where no question is asked)",
}
#: A stored JWT closer than this to expiring is exchanged for a fresh one before use.
REFRESH_BEFORE = timedelta(minutes=10)


class UsageError(Exception):
    """A command used wrongly (exit code 2)."""


def split_url(url: str) -> tuple[str, str]:
    """``(server, api prefix)`` of a URL that may carry the mount path."""
    parts = urlsplit(url.rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"not an http(s) URL: {url!r}")
    path = parts.path.rstrip("/")
    prefix = path if path.endswith("/api/v1") else f"{path}/api/v1"
    return f"{parts.scheme}://{parts.netloc}", prefix


def chosen_context(
    args: argparse.Namespace, saved: contexts.Contexts
) -> tuple[str, contexts.Context | None]:
    """The name and context this invocation uses: ``--context``, else ``KNM_CONTEXT``, else the
    current context (``("", None)`` when there is none)."""
    named = getattr(args, "context", None) or os.environ.get("KNM_CONTEXT")
    if named:
        if named not in saved.contexts:
            raise UsageError(saved.unknown(named))
        return named, saved.contexts[named]
    current = saved.current_context
    return current, saved.contexts.get(current)


def client_for(args: argparse.Namespace, *, timeout: float = 30) -> Client:
    """A client for the server and token of this invocation (see the module docstring);
    ``timeout`` bounds the connection and each answer (seconds)."""
    saved = contexts.load()
    name, context = chosen_context(args, saved)
    url = (
        getattr(args, "url", None)
        or os.environ.get("KNM_URL")
        or (context.server if context else None)
    )
    if not url and saved.contexts:
        known = ", ".join(sorted(saved.contexts))
        raise UsageError(f"no current context: pick one with `knm config use-context NAME` "
                         f"({known}), or log in with `knm login URL`")  # fmt: skip
    if not url:
        raise UsageError("no server: run `knm login URL --user NAME`, or set KNM_URL")
    token = os.environ.get("KNM_TOKEN")
    refreshable = False
    if not token and context is not None and contexts.same_server(context.server, url):
        if not context.token:
            raise UsageError(f"not logged in to {context.server} (context {name}): run "
                             f"`knm login --context {name}`")  # fmt: skip
        token = context.token
        refreshable = True
    server, prefix = split_url(url)
    from knm.client.sync import Client

    client = Client(server, token, prefix=prefix, timeout=timeout)
    if refreshable and context is not None and context.expires_at is not None:
        left = context.expires_at - datetime.now(UTC)
        if timedelta(0) < left < REFRESH_BEFORE:
            try:
                fresh = client.refresh()
                _keep_refreshed(name, context.token, fresh.token, fresh.expires_at)
            except KnmError:
                pass  # the old token still works for a while; the command says so if not
    return client


def _keep_refreshed(name: str, old: str, token: str, expires_at: datetime) -> None:
    # Read again: another knm may have changed the file since this one read it; a context
    # renamed, deleted or logged into again meanwhile is left as it now is.
    saved = contexts.load()
    context = saved.contexts.get(name)
    if context is not None and context.token == old:
        context.token, context.expires_at = token, expires_at
        contexts.save(saved)


def as_sent(value: Any) -> Any:
    """``value`` with each struct's ``extra`` (the fields an executor or a cluster provider adds,
    gathered by the SDK) back beside the struct's own fields, as the API sent them."""
    if isinstance(value, msgspec.Struct):
        fields = {
            name: as_sent(getattr(value, name))
            for name in value.__struct_fields__
            if getattr(value, name) is not msgspec.UNSET
        }
        extra = fields.pop("extra", None) if "extra" in value.__struct_fields__ else None
        return {**fields, **extra} if isinstance(extra, dict) else fields
    if isinstance(value, dict):
        return {key: as_sent(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [as_sent(item) for item in value]
    return value


def emit_json(value: Any) -> None:
    """One JSON document on stdout, shaped as the API answered."""
    sys.stdout.write(msgspec.json.encode(msgspec.to_builtins(as_sent(value))).decode() + "\n")
    sys.stdout.flush()


def done(args: argparse.Namespace, document: Any, line: str) -> int:
    """What a command that did one thing answers: ``document`` on stdout with ``--json``, else
    ``line`` for a reader; exit code ``OK``."""
    if args.json:
        emit_json(document)
    else:
        print(line)
    return OK


def delete_asked(
    args: argparse.Namespace, what: str, ref: str, key: Any, remove: Callable[[], None]
) -> int:
    """Delete the ``what`` the user named ``ref`` (its id or name: ``key``) with ``remove``,
    after asking on a terminal unless ``--yes``; answers as :func:`done` does, or says "not
    deleted"."""
    asked = not args.yes and sys.stdin.isatty()
    if asked and input(f"delete {what} {ref}? [y/N] ").strip().lower() not in ("y", "yes"):
        print("not deleted")
        return OK
    remove()
    return done(args, {"deleted": key}, f"deleted {what} {key}")


def error(text: str) -> None:
    print(f"knm: {text}", file=sys.stderr)


#: Request fields the run commands set, by the option that sets each (its ``dest`` and how the
#: user typed it): an error about ``credential_id`` is about ``--credential``.
OPTION_OF = {
    "credential_id": ("credential", "--credential"),
    "cluster_name": ("cluster", "--cluster (-c)"),
    "target_nodes": ("nodes", "--nodes (-n)"),
    "target_selector": ("selector", "--selector"),
    "timeout": ("timeout", "--timeout"),
    "deadline": ("deadline", "--deadline"),
    "batch_size": ("batch_size", "--batch-size"),
    "max_failures": ("max_failures", "--max-failures"),
    "parameters": ("param", "--param (-p)"),
    "params": ("param", "--param (-p)"),
    "extra_vars": ("extra_var", "--extra-var (-e)"),
    "extra_args": ("extra_args", "--extra-args"),
    "cron": ("cron", "--cron"),
    "timezone": ("timezone", "--timezone"),
    "duration": ("duration", "--duration"),
    "clusters": ("cluster", "--cluster"),
    "interval_seconds": ("interval_seconds", "--interval-seconds"),
    "start_at": ("start_at", "--start-at"),
    "end_at": ("end_at", "--end-at"),
}


def in_options(
    text: str, args: argparse.Namespace | None, fields: Mapping[str, str] | None = None
) -> str:
    """An error's "field: problem" parts with each request field this command has an option
    for named as that option (``params.grace: …`` → ``--param (-p) grace: …``). ``fields`` is
    a command's own table, by field path (``target.host`` → ``--host``), tried first and
    longest first, so ``target.to entries`` is not read as ``target.to``."""
    if args is None and not fields:
        return text
    own = sorted(fields or {}, key=len, reverse=True)
    parts = []
    for part in text.split("; "):
        for name in own:
            if part.startswith(name) and part[len(name) : len(name) + 1] in (":", " "):
                part = fields[name] + part[len(name) :]  # type: ignore[index]
                break
        else:
            field, sep, rest = part.partition(":")
            name, dot, key = field.partition(".")
            found = OPTION_OF.get(name) if sep and " " not in field else None
            if found is not None and hasattr(args, found[0]):
                part = f"{found[1]}{' ' + key if dot else ''}:{rest}"
        parts.append(part)
    return "; ".join(parts)


def describe(exc: KnmError, args: argparse.Namespace | None = None) -> str:
    text = exc.message
    if exc.error and exc.error != exc.message:
        text = f"{exc.message}: {in_options(exc.error, args)}"
    if isinstance(exc, RateLimited) and exc.retry_after:
        text += f" (retry in {exc.retry_after} s)"
    return text


Handler = Callable[[argparse.Namespace, "Client"], int]


def command(fn: Handler) -> Callable[[argparse.Namespace], int]:
    """Wrap a remote command: make its client, and turn errors into messages and exit codes."""

    @functools.wraps(fn)
    def run(args: argparse.Namespace) -> int:
        try:
            with client_for(args) as client:
                return fn(args, client)
        except UsageError as exc:
            error(str(exc))
            return USAGE
        except KnmError as exc:
            if getattr(args, "json", False):
                emit_json({"code": exc.code, "message": exc.message, "error": exc.error})
            error(describe(exc, args))
            if exc.code == 401:
                error("log in again with `knm login`")
            elif isinstance(exc, TransportError):
                error(
                    "is the server running at that URL? it comes from --url, KNM_URL or the "
                    "context (knm config get-contexts)"
                )
            return API_ERROR
        except KeyboardInterrupt:
            error("interrupted")
            return INTERRUPTED
        except OSError as exc:
            if exc.filename is None:
                raise
            # A file named in the arguments (-f, --password-file) that cannot be read.
            error(f"{exc.filename}: {exc.strerror}")
            return USAGE

    return run


def key_values(pairs: list[str] | None, *, typed: bool = False) -> dict[str, Any]:
    """``KEY=VALUE`` arguments as a dict; ``typed`` reads JSON values (``true``, ``3``)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"expected KEY=VALUE, got {pair!r}")
        if typed:
            try:
                out[key] = json.loads(value)
                continue
            except ValueError:
                pass
        out[key] = value
    return out


class Parser(argparse.ArgumentParser):
    """A parser that takes options only by their full names: with abbreviations, a mistyped
    ``--password SECRET`` would be taken for ``--password-file`` and the secret for a path.

    ``words``: the destination of a ``nargs="*"`` positional that may also follow options
    (``knm k8s label w1 -c C env=prod``). argparse fills such a positional once, from its first
    run of words, and leaves later words unrecognized; here they join it, in order."""

    def __init__(self, *args: Any, words: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.words = words

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if self.words is None:
            return parsed, extras
        loose = [arg for arg in extras if not arg.startswith("-")]
        setattr(parsed, self.words, [*(getattr(parsed, self.words, None) or []), *loose])
        return parsed, [arg for arg in extras if arg.startswith("-")]


def common_parent(*, knm_context: bool = True) -> argparse.ArgumentParser:
    """Options every remote command takes; without ``knm_context`` for a command whose own
    ``--context`` means something else (a kubeconfig's), where KNM_CONTEXT picks the context."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parent.add_argument(
        "--url", default=None, help="server URL (default: KNM_URL, or the context's server)"
    )
    if knm_context:
        parent.add_argument(
            "--context",
            default=None,
            metavar="NAME",
            help="the context to use (default: KNM_CONTEXT, or the current one; see `knm config`)",
        )
    return parent


#: What ``-o``/``--output`` may ask of a command that prints a list or an object.
FORMATS = ("json", "yaml", "wide", "name")


class _OutputFormat(argparse.Action):
    """``-o json`` is ``--json`` (error answers are JSON too); the last of the two given wins."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        namespace.output = values
        namespace.json = values == "json"


@functools.cache
def output_parent() -> argparse.ArgumentParser:
    """``-o``/``--output``, beside the common options, for every command that prints a list or
    an object (``render.print_list``, ``render.print_object``)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "-o",
        "--output",
        choices=FORMATS,
        action=_OutputFormat,
        metavar="FORMAT",
        help=f"{'|'.join(FORMATS)}: as JSON (--json), as YAML, a table with more columns, "
        "or one kind/name per line (default: a table)",
    )
    return parent


def reference(kind: str) -> Callable[[str], str]:
    """The ``type`` of a positional naming one ``kind``: it takes the ``kind/KEY`` lines of
    ``-o name`` as well as a bare KEY, so ``knm task list -o name | xargs -n1 knm task show``
    works as it does with kubectl."""
    prefix = f"{kind}/"

    def key(text: str) -> str:
        found = text.removeprefix(prefix)
        if not found.strip():
            # An empty id (a shell variable that was never set) would reach the server as a
            # path or a subscription it cannot make sense of.
            raise argparse.ArgumentTypeError(f"{text!r}: an empty {kind} name or id")
        return found

    key.__name__ = kind  # argparse names the type in its errors
    return key


def id_by_name(ref: str, listing: Callable[..., Any], label: str, *, key: str = "name") -> int:
    """The id of what ``ref`` names: an id (digits), or an exact ``key`` looked for through
    every page of ``listing`` (a client method taking ``page`` and ``page_size``)."""
    if ref.isdigit():
        return int(ref)
    page = 1
    while True:
        found = listing(page=page, page_size=100)
        for item in found.items:
            if getattr(item, key) == ref:
                return int(item.id)
        if page * 100 >= found.total:
            raise NotFound(f"{label} {ref!r} not found")
        page += 1


def output_format(args: argparse.Namespace) -> str | None:
    """The format asked for (``--json`` is ``json``), or None for the command's own view."""
    if getattr(args, "json", False):
        return "json"
    return getattr(args, "output", None)
