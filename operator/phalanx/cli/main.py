"""The command line of ``kubectl phalanx`` (console script ``kubectl-phalanx``; kubectl finds it on
the PATH and hands it every argument after ``phalanx``).

Exit status: 0 done, 1 failed (the message says what and why), 2 usage (a flag, a manifest). Every
failure is one sentence on stderr; a trace would tell a person less.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import kubernetes.config
import urllib3
import yaml

from phalanx import dryrun, names
from phalanx.cli import ask, bundle, preview
from phalanx.cli import status as show
from phalanx.cli.client import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Connection,
    RefusedRequestError,
    connect,
    explain,
    get_store,
    list_stores,
)
from phalanx.kube import ApiError
from phalanx.units import Duration

PROG: Final = "kubectl phalanx"
Connector = Callable[[str | None, str | None, str | None], Connection]
Clock = Callable[[], datetime]


def _duration(text: str) -> float:
    try:
        return Duration.parse(text).total_seconds()
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _connection_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    """The flags kubectl users expect, before or after the command (``default``: None on the root,
    SUPPRESS on a command, so that a flag given before the command is not reset after it)."""
    parser.add_argument("--kubeconfig", default=default, help="the kubeconfig (default: $KUBECONFIG, ~/.kube/config)")
    parser.add_argument("--context", default=default, help="the kubeconfig context (default: the current one)")
    parser.add_argument("-n", "--namespace", default=default, help="default: the context's, else default")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog=PROG,
        description="See and steer Phalanx ReplicatedStores: status, a dry run, rollouts, snapshots, "
        "replacements, a support bundle. Writes nothing but the store annotations Phalanx answers.",
    )
    _connection_flags(root, None)
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=summary)
        _connection_flags(sub, argparse.SUPPRESS)
        return sub

    status = command("status", "a store at a glance; with no STORE, every store of the namespace in a line")
    status.add_argument("store", nargs="?", metavar="STORE")
    status.add_argument("-A", "--all-namespaces", action="store_true", help="list the stores of every namespace")
    status.add_argument("-o", "--output", choices=("text", "json", "yaml"), default="text")

    plan = command("plan", "what Phalanx would do now, or once a manifest is applied (a dry run: writes nothing)")
    plan.add_argument("store", metavar="STORE")
    plan.add_argument("-f", "--filename", help="the manifest to preview (- for stdin); default: the live spec")
    plan.add_argument("-o", "--output", choices=("text", "json", "yaml"), default="text")

    command("pause", "hold rollouts (the step in flight completes)").add_argument("store", metavar="STORE")

    resume = command("resume", "let rollouts go on")
    resume.add_argument("store", metavar="STORE")
    _wait_flags(resume, "until the rollout is done and the store Ready", "10m")

    snapshot = command("snapshot", "take a snapshot now")
    snapshot.add_argument("store", metavar="STORE")
    _wait_flags(snapshot, "until the snapshot is ready to use", "5m")

    replace = command("replace", "replace a member, a zone's members or every member (rollout's Replace path)")
    replace.add_argument("store", metavar="STORE")
    replace.add_argument("member", nargs="?", metavar="MEMBER")
    replace.add_argument("--zone", help="every member of this zone")
    replace.add_argument("--all", action="store_true", help="every member")
    _wait_flags(replace, "until the members are replaced and the store Ready", "30m")

    report = command("report", "write a support bundle (.tar.gz): the store, its children, events, logs, a plan")
    report.add_argument("store", metavar="STORE")
    report.add_argument("-o", "--output", type=Path, help="default: ./phalanx-report-<ns>-<store>-<time>.tar.gz")
    return root


def _wait_flags(parser: argparse.ArgumentParser, what: str, timeout: str) -> None:
    parser.add_argument("--wait", action="store_true", help=f"follow {what}")
    parser.add_argument(
        "--timeout", type=_duration, default=_duration(timeout), help=f"with --wait (default {timeout})"
    )


def style() -> show.Style:
    """Tree lines on a terminal that can draw them (UTF-8), colour too unless NO_COLOR or a dumb
    terminal says otherwise; plain text when piped."""
    if not sys.stdout.isatty():
        return show.PLAIN
    utf8 = (sys.stdout.encoding or "").lower().replace("-", "") == "utf8"
    return show.Style(tree=utf8, colour=not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb")


def emit(data: Any, output: str) -> None:
    if output == "json":
        print(json.dumps(data, indent=2, default=str))
    else:
        print(yaml.safe_dump(data, sort_keys=False, default_flow_style=False), end="")


# ------------------------------------------------------------------------------------------------
# The commands


def cmd_status(args: argparse.Namespace, conn: Connection, now: datetime) -> int:
    if args.store is None:
        namespace = None if args.all_namespaces else conn.namespace
        stores = list_stores(conn.kube, namespace)
        if args.output != "text":
            emit({"items": [show.document(s) for s in stores]}, args.output)
        elif not stores:
            print(f"no ReplicatedStores {'in any namespace' if namespace is None else f'in namespace {namespace}'}")
        else:
            print(show.render_list(stores, now, args.all_namespaces, style()))
        return EXIT_OK
    if args.all_namespaces:
        raise CliError("-A lists stores: give no STORE with it", EXIT_USAGE)
    store = get_store(conn.kube, args.store, conn.namespace)
    if args.output == "text":
        print(show.render(store, now, style()))
        return EXIT_OK
    silence = show.operator_silence(store, now)
    if silence:
        print(f"warning: {silence}", file=sys.stderr)
    emit(show.document(store), args.output)
    return EXIT_OK


def cmd_plan(args: argparse.Namespace, conn: Connection, now: datetime) -> int:
    if args.filename:
        manifest, namespace = preview.from_file(args.store, args.filename, args.namespace, conn.namespace)
        outcome = preview.run(conn.kube, manifest, namespace, now)
    else:
        outcome = preview.live(conn.kube, args.store, conn.namespace, now)
    if outcome.report is None:
        # the dry run's own refusal; for -o yaml its JSON, which YAML readers read as well
        return dryrun.invalid_spec(str(outcome.invalid), "json" if args.output != "text" else "text")
    if args.output == "text":
        print(preview.text(outcome))
    else:
        emit(outcome.report, args.output)
    return EXIT_OK


def cmd_pause(args: argparse.Namespace, conn: Connection, now: datetime) -> int:
    print(ask.pause(conn.kube, get_store(conn.kube, args.store, conn.namespace)).said)
    return EXIT_OK


def cmd_resume(args: argparse.Namespace, conn: Connection, now: datetime) -> int:
    store = get_store(conn.kube, args.store, conn.namespace)
    print(ask.resume(conn.kube, store).said)
    if args.wait:
        print(ask.follow(ask.rolled_out(conn.kube, store), args.timeout, print))
    return EXIT_OK


def cmd_snapshot(args: argparse.Namespace, conn: Connection, now: datetime) -> int:
    store = get_store(conn.kube, args.store, conn.namespace)
    value = ask.token(now)
    print(ask.snapshot(conn.kube, store, value).said)
    if args.wait:
        print(ask.follow(ask.snapshot_taken(conn.kube, store, value), args.timeout, print))
    return EXIT_OK


def cmd_replace(args: argparse.Namespace, conn: Connection, now: datetime) -> int:
    chosen = [t for t in (args.member and "member", args.zone and "zone", args.all and "all") if t]
    if len(chosen) != 1:
        raise CliError("replace takes one of: MEMBER, --zone ZONE, --all", EXIT_USAGE)
    if args.all:
        target = "all"
    elif args.zone:
        target = f"zone/{args.zone}"
    else:
        target = f"member/{str(args.member).removeprefix('member/')}"
    store = get_store(conn.kube, args.store, conn.namespace)
    asked = ask.replace(conn.kube, store, target, ask.token(now))
    print(asked.said)
    if args.wait:
        request = str(asked.annotations[names.REPLACE_ANNOTATION])
        print(ask.follow(ask.members_replaced(conn.kube, store, request, asked.members), args.timeout, print))
    return EXIT_OK


def cmd_report(args: argparse.Namespace, conn: Connection, now: datetime) -> int:
    gathered = bundle.gather(conn.kube, args.store, conn.namespace, now, conn.server)
    path = bundle.write(gathered, args.output or bundle.default_path(gathered), now)
    print(f"wrote {path} ({len(gathered.files)} files)")
    for note in gathered.notes:
        print(f"  note: {note}")
    return EXIT_OK


COMMANDS: Final[dict[str, Callable[[argparse.Namespace, Connection, datetime], int]]] = {
    "status": cmd_status,
    "plan": cmd_plan,
    "pause": cmd_pause,
    "resume": cmd_resume,
    "snapshot": cmd_snapshot,
    "replace": cmd_replace,
    "report": cmd_report,
}


def main(
    argv: Sequence[str] | None = None, *, connector: Connector = connect, clock: Clock = lambda: datetime.now(UTC)
) -> int:
    """Run one command; the exit status (``connector`` and ``clock``: the tests' fakes)."""
    args = parser().parse_args(argv)
    server = ""
    try:
        conn = connector(args.kubeconfig, args.context, args.namespace)
        server = conn.server
        return COMMANDS[args.command](args, conn, clock())
    except CliError as error:
        failure = error
    except RefusedRequestError as error:  # a bug: say so plainly
        failure = CliError(f"refused before sending (a bug of kubectl-phalanx): {error}")
    except (ApiError, urllib3.exceptions.HTTPError, kubernetes.config.ConfigException) as error:
        failure = explain(error, server)
    except KeyboardInterrupt:
        return EXIT_FAILURE
    print(f"{PROG}: {failure.message}", file=sys.stderr)
    return failure.code


if __name__ == "__main__":
    sys.exit(main())
