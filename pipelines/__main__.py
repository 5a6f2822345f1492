"""`tfpipe COMMAND` (or `python -m pipelines COMMAND`): helpers beside the Luigi command line.

  run TASK [params]           luigi with exit codes and a one-line reason, for timers/monitoring
  explain TASK [params]       what a run would do, and why, without running it
  defaults                    every setting with its default, as a commented YAML config
  plugins                     installed plugins with distribution and version
  prune --keep N | --older-than DATE   remove old results, say what was freed
  verify [--fix]              check every finished folder against its manifest; --fix moves
                              damaged ones to <workspace>/.quarantine/ (exit 1: damage left)
  scheduler                   start luigid on 127.0.0.1 with its state and log in a folder
  scheduled [--date D]        ScheduledRun for today (or a date / --hour)
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from plugins import registry
from plugins.errors import TfpipeError


def list_plugins(_: argparse.Namespace) -> int:
    """Every installed plugin with its KIND, distribution and version (metadata and source only:
    nothing is imported). A name two distributions register is marked: using it is an error."""
    for plugin_kind in registry.KINDS.values():
        plugins = plugin_kind.find()
        clashes = plugin_kind.clashes()
        print(f"{plugin_kind.kind} ({plugin_kind.group}):")
        if not plugins:
            print("  (none installed)")
        rows = [(info.name, info.declared_kind() or "-", f"{info.distribution} {info.version}", info.value)
                for info in plugins]
        widths = [max((len(row[i]) for row in rows), default=0) for i in range(3)]
        for row, info in zip(rows, plugins):
            line = "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + f"  ({row[3]})"
            if info.name in clashes:
                others = ", ".join(f"{other.distribution} {other.version}" for other in clashes[info.name][1:])
                line += f"  CLASH: also registered by {others}"
            print(line.rstrip())
    return 0


def explain_command(args: argparse.Namespace) -> int:
    import pipelines  # noqa: F401  registers the run tasks with Luigi
    from pipelines.explain import explain_command_line, render

    verdicts = explain_command_line([args.task, *args.params])
    print(render(verdicts))
    pending = sum(1 for verdict in verdicts if verdict.state != "complete")
    print(f"\n{pending} of {len(verdicts)} tasks would run.")
    return 0


def prune_command(args: argparse.Namespace) -> int:
    from pipelines.config import workspace_root
    from pipelines.prune import parse_date, prune

    if args.keep is None and args.older_than is None and not args.unfinished:
        raise TfpipeError("say what to remove: --keep N (newest N per stage and name), --older-than "
                          "YYYY-MM-DD, and/or --unfinished")
    root = Path(args.workspace or workspace_root())
    if not root.is_dir():
        raise TfpipeError(f"workspace {root} does not exist; set TFPIPE_WORKSPACE or --workspace")
    older = parse_date(args.older_than) if args.older_than else None
    removed, total = prune(root, args.keep, older, args.unfinished, args.dry_run)
    verb = "would free" if args.dry_run else "freed"
    for result, size in removed:
        print(f"{'would remove' if args.dry_run else 'removed'} {result.folder}  ({size / 1e6:.1f} MB)")
    print(f"{verb} {total / 1e6:.1f} MB in {len(removed)} folders of {root}")
    return 0


def verify_command(args: argparse.Namespace) -> int:
    from pipelines.config import workspace_root
    from pipelines.verify import verify_workspace

    root = Path(args.workspace or workspace_root())
    if not root.is_dir():
        raise TfpipeError(f"workspace {root} does not exist; set TFPIPE_WORKSPACE or --workspace")
    return 1 if verify_workspace(root, args.fix) else 0


def start_scheduler(args: argparse.Namespace) -> int:
    """Run luigid in the foreground, loopback only by default, state and log in --state-dir."""
    from pipelines import server

    state_dir = args.state_dir or server.default_state_dir()
    print(" ".join(server.luigid_command(state_dir, args.address, args.port)), file=sys.stderr)
    server.start_scheduler(state_dir, args.address, args.port)
    return 0  # not reached: luigid replaced this process


def _run_and_show_report(luigi_args: list[str]) -> int:
    """Run luigi; on success end with the path of the run's report (the line a user wants)."""
    from pipelines import launch

    code = launch.run(luigi_args)
    report = launch.report_path(luigi_args) if code == 0 else None
    if report is not None:
        sys.stderr.flush()
        print(f"report: {report}", flush=True)
    return code


def run_task(args: argparse.Namespace) -> int:
    return _run_and_show_report(args.luigi_args)


def run_scheduled(args: argparse.Namespace) -> int:
    slot = ["ScheduledHourlyRun", "--date-hour", args.hour] if args.hour else ["ScheduledRun"]
    if args.date:
        slot += ["--date", args.date]
    return _run_and_show_report([*slot, *args.luigi_args])


def print_defaults(_: argparse.Namespace) -> int:
    from pipelines.config import render_defaults

    print(render_defaults(), end="")
    return 0


def prog_name() -> str:
    """How the user called us: `tfpipe` (console script) or `python -m pipelines`."""
    return "python -m pipelines" if Path(sys.argv[0]).name == "__main__.py" else "tfpipe"


def main(argv: list[str] | None = None) -> int:
    from pipelines import server

    parser = argparse.ArgumentParser(prog=prog_name(), description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("plugins", help="list installed plugins").set_defaults(func=list_plugins)
    commands.add_parser("defaults", help="print every setting with its default and meaning, as "
                                         "YAML (a valid --config file)").set_defaults(func=print_defaults)
    explain = commands.add_parser("explain", help="what a run would do and why (runs nothing)")
    explain.add_argument("task", help="a run task, e.g. FullRun or ImageRun")
    explain.add_argument("params", nargs=argparse.REMAINDER, help="its Luigi parameters, e.g. --model cnn")
    explain.set_defaults(func=explain_command)
    prune = commands.add_parser("prune", help="remove old results from the workspace")
    prune.add_argument("--keep", type=int, help="keep the newest N results of each stage and name")
    prune.add_argument("--older-than", help="remove results finished before this date (YYYY-MM-DD)")
    prune.add_argument("--unfinished", action="store_true", help="also remove unfinished folders")
    prune.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    prune.add_argument("--workspace", help="workspace root (default: $TFPIPE_WORKSPACE or ./workspace)")
    prune.set_defaults(func=prune_command)
    verify = commands.add_parser("verify", help="check every finished folder of the workspace against its "
                                                "manifest (sizes, sha256, seal)")
    verify.add_argument("--fix", action="store_true",
                        help="move each damaged folder to <workspace>/.quarantine/ (never deletes); "
                             "the next run redoes it")
    verify.add_argument("--workspace", help="workspace root (default: $TFPIPE_WORKSPACE or ./workspace)")
    verify.set_defaults(func=verify_command)
    scheduler = commands.add_parser("scheduler", help="start luigid (127.0.0.1 unless --address says otherwise)")
    scheduler.add_argument("--address", default=server.DEFAULT_ADDRESS,
                           help="listen address (default 127.0.0.1; luigid has no authentication)")
    scheduler.add_argument("--port", type=int, default=server.DEFAULT_PORT)
    scheduler.add_argument("--state-dir", help="folder for state.pickle and luigi-server.log "
                                               "(default $TFPIPE_WORKSPACE/luigid or workspace/luigid)")
    scheduler.set_defaults(func=start_scheduler)
    run = commands.add_parser("run", help="luigi --module pipelines TASK ..., exit codes and a one-line "
                                          "reason for timers and monitoring")
    run.add_argument("luigi_args", nargs=argparse.REMAINDER, help="TASK and luigi options")
    run.set_defaults(func=run_task)
    scheduled = commands.add_parser("scheduled", help="run ScheduledRun for today (or --date / --hour); "
                                                      "other options go to luigi")
    slot = scheduled.add_mutually_exclusive_group()
    slot.add_argument("--date", help="YYYY-MM-DD (default: today)")
    slot.add_argument("--hour", help="YYYY-MM-DDTHH: run ScheduledHourlyRun for that hour")
    scheduled.set_defaults(func=run_scheduled)
    args, rest = parser.parse_known_args(argv)
    if args.command == "scheduled":
        args.luigi_args = rest  # luigi options: --config, --scheduler-host, --workers, ...
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return args.func(args)
    except TfpipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`tfpipe plugins | head -1`): stop quietly, like any Unix tool.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
