"""The ``flatext`` command line: ``flatext reproduce``, ``study``, ``sweep``, ``plot``, ``info``.

Each subcommand lives in the module that implements it and registers itself
through ``add_parser(subparsers)``; this file only wires them together.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# (module, attribute) of each subcommand's add_parser(subparsers) function.
SUBCOMMANDS = [
    ("flatext.reproduce", "add_parser"),
    ("flatext.info", "add_parser"),
    ("flatext.sweeps", "add_parser"),
    ("flatext.sweeps.plot", "add_parser"),
    ("flatext.paths", "add_parser"),
    ("flatext.study", "add_parser"),
]


def build_parser():
    parser = argparse.ArgumentParser(prog="flatext", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for mod, attr in SUBCOMMANDS:
        getattr(importlib.import_module(mod), attr)(sub)
    return parser


def main(argv=None):
    if argv is None:  # the real command line: keep the thread pools from spinning (flatext.threads)
        from .threads import reexec_with_process_env

        reexec_with_process_env()
    args = build_parser().parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
