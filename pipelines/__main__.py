"""`python -m pipelines COMMAND`: helpers beside the Luigi command line."""
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("plugins", help="list installed plugins").set_defaults(func=list_plugins)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
