"""`python -m pipelines COMMAND`: helpers beside the Luigi command line (plugins, scheduler, run, scheduled)."""
from __future__ import annotations

import argparse
import sys

from plugins import registry


def list_plugins(_: argparse.Namespace) -> int:
    """Print every installed plugin with its distribution and version (metadata only)."""
    for kind in sorted(registry.GROUPS):
        plugins = registry.find(kind)
        print(f"{kind} ({registry.GROUPS[kind]}):")
        if not plugins:
            print("  (none installed)")
        width = max((len(info.name) for info in plugins), default=0)
        for info in plugins:
            print(f"  {info.name:<{width}}  {info.distribution} {info.version}  ({info.value})")
    return 0


def start_scheduler(args: argparse.Namespace) -> int:
    """Run luigid in the foreground, loopback only by default, state and log in --state-dir."""
    from pipelines import server

    state_dir = args.state_dir or server.default_state_dir()
    print(" ".join(server.luigid_command(state_dir, args.address, args.port)), file=sys.stderr)
    server.start_scheduler(state_dir, args.address, args.port)
    return 0  # not reached: luigid replaced this process


def run_task(args: argparse.Namespace) -> int:
    from pipelines import launch

    return launch.run(args.luigi_args)


def run_scheduled(args: argparse.Namespace) -> int:
    from pipelines import launch

    slot = ["ScheduledHourlyRun", "--date-hour", args.hour] if args.hour else ["ScheduledRun"]
    if args.date:
        slot += ["--date", args.date]
    return launch.run([*slot, *args.luigi_args])


def main(argv: list[str] | None = None) -> int:
    from pipelines import server

    parser = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("plugins", help="list installed plugins").set_defaults(func=list_plugins)
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
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
