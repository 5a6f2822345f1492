"""`python -m pipelines COMMAND`: helpers beside the Luigi command line.

  plugins                     installed plugins with distribution and version
  explain TASK [params]       what a run would do, and why, without running it
  prune --keep N | --older-than DATE   remove old results, say what was freed
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from plugins import registry
from tasks.errors import TfpipeError


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("plugins", help="list installed plugins").set_defaults(func=list_plugins)
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
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except TfpipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
