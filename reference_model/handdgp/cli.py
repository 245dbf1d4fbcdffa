"""The ``handdgp`` command line.

Each subcommand is one ``_cmd_<name>(args)`` function registered in ``_COMMANDS`` by
``_add_<name>(subparsers)``; heavy modules are imported inside the command, so
``handdgp --help`` stays fast. To add a subcommand, write both functions and append
the adder to ``_PARSERS``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["build_parser", "main"]


def _default_template_path() -> Path:
    from handdgp.hand.template import DEFAULT_TEMPLATE

    return Path(__file__).resolve().parent / "hand" / "assets" / DEFAULT_TEMPLATE


# ----------------------------------------------------------------------------- export-template


def _add_export_template(subparsers) -> None:
    p = subparsers.add_parser(
        "export-template",
        help="export the hand template from the anny body model (needs handdgp[export])",
        description=(
            "Build the anny hand, fit the shape basis and the keypoint regressor, build the "
            "mesh hierarchy, and write the template .npz the model needs at run time."
        ),
    )
    p.add_argument("--out", type=Path, default=None, help="output .npz (default: the packaged asset)")
    p.add_argument("--side", choices=("right", "left"), default="right")
    p.add_argument("--cache-dir", type=Path, default=Path(".cache") / "anny",
                   help="anny's asset cache, about 0.6 GB (default: .cache/anny)")
    p.add_argument("--num-shape", type=int, default=10, help="shape components")
    p.add_argument("--num-phenotypes", type=int, default=2000)
    p.add_argument("--num-train-poses", type=int, default=4000)
    p.add_argument("--num-test-poses", type=int, default=1000)
    p.add_argument("--num-levels", type=int, default=6, help="mesh hierarchy levels")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_export_template)


def _cmd_export_template(args: argparse.Namespace) -> int:

    from handdgp.hand.export import export_anny_template

    out = args.out or _default_template_path()
    report = export_anny_template(
        out,
        side=args.side,
        num_shape=args.num_shape,
        num_phenotypes=args.num_phenotypes,
        num_train_poses=args.num_train_poses,
        num_test_poses=args.num_test_poses,
        num_levels=args.num_levels,
        seed=args.seed,
        cache_dir=args.cache_dir,
        log=lambda msg: print(msg, file=sys.stderr),
    )
    print(f"wrote {out}")
    for line in report.lines():
        print(line)
    return 0


# ----------------------------------------------------------------------------- entry point

_PARSERS: list[Callable] = [_add_export_template]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand.

    Example:
        >>> args = build_parser().parse_args(["export-template", "--out", "t.npz"])
        >>> args.out.name, args.side
        ('t.npz', 'right')
    """
    parser = argparse.ArgumentParser(prog="handdgp", description="HandDGP reference model tools")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _PARSERS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``handdgp`` command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
