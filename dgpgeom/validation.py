"""Argument checks at the public boundary: tensor shapes, dtypes, devices and options.

Every public function of dgpgeom validates its arguments here, before doing any
work, with a message that names the argument, the expected value and the actual
one. The kinds of error are kept apart:

- :class:`ShapeError` (a :class:`ValueError`): a tensor of the wrong shape, dtype
  or device (:class:`ShapeChecker`, :func:`broadcast_batch_shapes`);
- :class:`TypeError`: an argument that should be a tensor is not one;
- :class:`ValueError`: a bad option, such as a negative ``damping`` or an unknown
  ``robust`` kernel (:func:`check_option`).

Tensor checks look only at metadata (shapes, dtypes, devices), never at values,
so they cost no host synchronisation and work on ``device="meta"`` tensors. They
are public so that code built on dgpgeom can validate its own arguments the same way.

Shape patterns are strings of space-separated tokens:

- ``"..."`` any number of leading batch dimensions (only as the first token);
- an integer, e.g. ``"3"``: that exact size;
- a name, e.g. ``"N"``: any size, but the same size wherever the name recurs
  within one :class:`ShapeChecker`;
- ``"_"``: any size.

Example:
    >>> import torch
    >>> check = ShapeChecker()
    >>> check(torch.zeros(4, 21, 2), "points2d", "... N 2")
    (4,)
    >>> check(torch.zeros(4, 20, 3), "points3d", "... N 3")
    Traceback (most recent call last):
    ...
    dgpgeom.validation.ShapeError: points3d: expected shape (..., N=21, 3), got (4, 20, 3); N was set to 21 by points2d
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = [
    "ShapeChecker",
    "ShapeError",
    "broadcast_batch_shapes",
    "check_option",
    "check_size",
    "compute_dtype",
]


class ShapeError(ValueError):
    """Raised when a tensor argument has the wrong shape, dtype or device."""


def _describe(pattern: Sequence[str], bound: dict[str, int]) -> str:
    parts = []
    for token in pattern:
        parts.append(f"{token}={bound[token]}" if token in bound else token)
    return "(" + ", ".join(parts) + ")"


class ShapeChecker:
    """Checks several tensors against shape patterns that share named sizes.

    The first tensor that mentions a name binds it; later tensors must agree.
    """

    def __init__(self) -> None:
        self.sizes: dict[str, int] = {}
        self._bound_by: dict[str, str] = {}
        self.device: torch.device | None = None
        self._device_of: str = ""

    def __call__(
        self,
        tensor: object,
        name: str,
        pattern: str,
        *,
        floating: bool = True,
    ) -> tuple[int, ...]:
        """Validate ``tensor`` and return its leading batch shape (the ``...`` part).

        Args:
            tensor: the argument to check.
            name: the argument's name, used in the error message.
            pattern: the expected shape, e.g. ``"... N 2"``.
            floating: require a floating-point dtype.

        Raises:
            TypeError: if the argument is not a tensor.
            ShapeError: if the tensor has the wrong shape, a non-floating dtype
                (when ``floating``), or lives on another device than the tensors
                checked before it.
        """
        tokens = pattern.split()
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(
                f"{name}: expected a torch.Tensor of shape ({', '.join(tokens)}), "
                f"got {type(tensor).__name__}"
            )
        if floating and not tensor.is_floating_point():
            raise ShapeError(f"{name}: expected a floating-point dtype, got {tensor.dtype}")
        self._check_device(tensor, name)

        has_batch = bool(tokens) and tokens[0] == "..."
        core = tokens[1:] if has_batch else tokens
        shape = tuple(tensor.shape)
        if len(shape) < len(core) or (not has_batch and len(shape) != len(core)):
            raise ShapeError(f"{name}: expected shape {_describe(tokens, self.sizes)}, got {shape}")
        batch, tail = shape[: len(shape) - len(core)], shape[len(shape) - len(core) :]
        # Fixed sizes first, so a wrong trailing size is reported as such rather
        # than after binding a name to a size taken from a misplaced dimension.
        for token, size in zip(core, tail, strict=True):
            if token.isdigit() and size != int(token):
                raise ShapeError(
                    f"{name}: expected shape {_describe(tokens, self.sizes)}, got {shape}"
                )
        for token, size in zip(core, tail, strict=True):
            if token == "_" or token.isdigit():
                continue
            if token in self.sizes and self.sizes[token] != size:
                raise ShapeError(
                    f"{name}: expected shape {_describe(tokens, self.sizes)}, got {shape}; "
                    f"{token} was set to {self.sizes[token]} by {self._bound_by[token]}"
                )
            if token not in self.sizes:
                self.sizes[token] = size
                self._bound_by[token] = name
        return batch

    def _check_device(self, tensor: torch.Tensor, name: str) -> None:
        if self.device is None:
            self.device, self._device_of = tensor.device, name
        elif tensor.device != self.device:
            raise ShapeError(
                f"{name}: expected a tensor on {self.device} (the device of "
                f"{self._device_of}), got one on {tensor.device}"
            )


def check_option(
    value: object,
    name: str,
    *,
    choices: Sequence[object] | None = None,
    minimum: float | None = None,
    strict: bool = False,
    integer: bool = False,
) -> object:
    """Validate a non-tensor option and return it (a number as ``float`` or ``int``).

    With ``choices``, the value must be one of them. Otherwise it must be a Python
    number (not a bool, not a tensor: options never cause a host synchronisation),
    an ``int`` when ``integer``, and at least ``minimum`` (above it when ``strict``).
    NaN fails every bound.

    Args:
        value: the option.
        name: the argument's name, used in the error message.
        choices: the allowed values, or ``None`` for a number.
        minimum: the lower bound of a number, or ``None``.
        strict: the bound excludes ``minimum``.
        integer: require an ``int``.

    Returns:
        ``value``; a number as ``float`` (or ``int`` when ``integer``).

    Raises:
        ValueError: naming the option, what was expected and what was given.

    Example:
        >>> check_option(0.1, "damping", minimum=0.0)
        0.1
        >>> check_option("huber", "robust", choices=(None, "huber", "cauchy"))
        'huber'
        >>> check_option(-1.0, "damping", minimum=0.0)
        Traceback (most recent call last):
        ...
        ValueError: damping: expected a non-negative Python number, got -1.0
    """
    if choices is not None:
        if value not in choices:
            raise ValueError(f"{name}: expected one of {tuple(choices)}, got {value!r}")
        return value
    kind = "int" if integer else "number"
    if minimum is not None:
        sign = "positive" if strict and minimum == 0 else "non-negative" if minimum == 0 else ""
        bound = f"{sign} " if sign else ""
        if not sign:
            kind = f"{kind} {'>' if strict else '>='} {minimum}"
    else:
        bound = ""
    number = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, number):
        raise ValueError(f"{name}: expected a {bound}Python {kind}, got {value!r}")
    if minimum is not None and not (value > minimum if strict else value >= minimum):
        raise ValueError(f"{name}: expected a {bound}Python {kind}, got {value!r}")
    return int(value) if integer else float(value)


def check_size(
    value: object, name: str, *, integer: bool = False, square: bool = False
) -> tuple[float, float] | tuple[int, int]:
    """Validate an image size ``(height, width)`` and return it as a pair.

    Args:
        value: two positive Python numbers ``(height, width)`` in pixels, or one
            positive ``int`` for a square size when ``square``.
        name: the argument's name, used in the error message.
        integer: require ``int`` entries and return ints (otherwise floats).
        square: accept one ``int`` for ``(value, value)``.

    Returns:
        ``(height, width)``.

    Raises:
        ValueError: naming the argument, what was expected and what was given.

    Example:
        >>> check_size((480, 640), "image_size")
        (480.0, 640.0)
        >>> check_size(224, "size", integer=True, square=True)
        (224, 224)
        >>> check_size((0, 640), "image_size")
        Traceback (most recent call last):
        ...
        ValueError: image_size: expected (height, width) as two positive numbers, got (0, 640)
    """
    if square and isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    number = (int,) if integer else (int, float)
    if (
        not isinstance(value, Sequence)
        or len(value) != 2
        or not all(isinstance(v, number) and not isinstance(v, bool) for v in value)
        or not all(v > 0 for v in value)
    ):
        kind = "ints" if integer else "numbers"
        single = "a positive int or " if square else ""
        raise ValueError(
            f"{name}: expected {single}(height, width) as two positive {kind}, got {value!r}"
        )
    cast = int if integer else float
    return cast(value[0]), cast(value[1])


def broadcast_batch_shapes(**batch_shapes: tuple[int, ...]) -> torch.Size:
    """Broadcast the leading batch shapes of several arguments, naming them on failure.

    Example:
        >>> broadcast_batch_shapes(points2d=(8, 1), intrinsics=(5,))
        torch.Size([8, 5])
        >>> broadcast_batch_shapes(points2d=(0,), weights=(1,), intrinsics=())
        torch.Size([0])
    """
    # A plain loop: torch.broadcast_shapes costs ~80 µs per call, most of a B=1 solve.
    ndim = 0
    for shape in batch_shapes.values():  # (no generator: torch.compile must trace this)
        ndim = max(ndim, len(shape))
    out = [1] * ndim
    for shape in batch_shapes.values():
        for axis, size in enumerate(shape, ndim - len(shape)):
            if size == 1:
                continue
            if out[axis] != 1 and out[axis] != size:
                described = ", ".join(f"{k} {tuple(v)}" for k, v in batch_shapes.items())
                raise ShapeError(f"batch dimensions do not broadcast: {described}")
            out[axis] = size
    return torch.Size(out)


def compute_dtype(*tensors: torch.Tensor) -> tuple[torch.dtype, torch.dtype]:
    """Return ``(compute, output)`` dtypes for a set of floating-point inputs.

    The output dtype is the promoted dtype of the inputs. float16 and bfloat16
    are computed in float32 (their range and precision cannot hold the normal
    equations) and cast back on return.

    Example:
        >>> compute_dtype(torch.zeros(1, dtype=torch.float16))
        (torch.float32, torch.float16)
    """
    out = tensors[0].dtype
    for t in tensors[1:]:
        if t.dtype != out:
            out = torch.promote_types(out, t.dtype)
    compute = torch.float32 if out in (torch.float16, torch.bfloat16) else out
    return compute, out
