"""Tests for dgpgeom.validation."""

from __future__ import annotations

import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dgpgeom import ShapeError
from dgpgeom.validation import ShapeChecker, broadcast_batch_shapes, check_size, compute_dtype


class TestShapeChecker:
    def test_returns_batch_shape_and_binds_names(self):
        check = ShapeChecker()
        assert check(torch.zeros(4, 5, 21, 2), "points2d", "... N 2") == (4, 5)
        assert check(torch.zeros(21, 3), "points3d", "... N 3") == ()
        assert check(torch.zeros(3, 3), "intrinsics", "3 3") == ()
        assert check.sizes == {"N": 21}
        assert check.device == torch.device("cpu")

    def test_wildcard_and_exact_rank(self):
        check = ShapeChecker()
        assert check(torch.zeros(7, 2), "a", "_ 2") == ()
        with pytest.raises(ShapeError, match=re.escape("b: expected shape (_, 2), got (1, 7, 2)")):
            check(torch.zeros(1, 7, 2), "b", "_ 2")

    def test_message_names_expected_actual_and_binder(self):
        check = ShapeChecker()
        check(torch.zeros(4, 21, 2), "points2d", "... N 2")
        expected = (
            "points3d: expected shape (..., N=21, 3), got (4, 20, 3); N was set to 21 by points2d"
        )
        with pytest.raises(ShapeError, match=re.escape(expected)):
            check(torch.zeros(4, 20, 3), "points3d", "... N 3")

    def test_message_for_a_fixed_size(self):
        check = ShapeChecker()
        check(torch.zeros(4, 21, 2), "points2d", "... N 2")
        with pytest.raises(
            ShapeError, match=re.escape("points3d: expected shape (..., N=21, 3), got (4, 21, 2)")
        ):
            check(torch.zeros(4, 21, 2), "points3d", "... N 3")

    def test_message_for_too_few_dimensions(self):
        with pytest.raises(
            ShapeError, match=re.escape("intrinsics: expected shape (..., 3, 3), got (3,)")
        ):
            ShapeChecker()(torch.zeros(3), "intrinsics", "... 3 3")

    def test_non_tensor(self):
        with pytest.raises(
            TypeError,
            match=re.escape("weights: expected a torch.Tensor of shape (..., N), got list"),
        ):
            ShapeChecker()([1.0, 2.0], "weights", "... N")

    def test_floating_requirement(self):
        check = ShapeChecker()
        with pytest.raises(
            ShapeError,
            match=re.escape("points2d: expected a floating-point dtype, got torch.int64"),
        ):
            check(torch.zeros(3, 2, dtype=torch.int64), "points2d", "... N 2")
        assert check(torch.zeros(3, 2, dtype=torch.int64), "index", "N 2", floating=False) == ()

    def test_device_mismatch_names_both_arguments(self):
        check = ShapeChecker()
        check(torch.zeros(3, 2), "points2d", "N 2")
        expected = "points3d: expected a tensor on cpu (the device of points2d), got one on meta"
        with pytest.raises(ShapeError, match=re.escape(expected)):
            check(torch.zeros(3, 3, device="meta"), "points3d", "N 3")

    def test_works_on_meta_tensors(self):
        check = ShapeChecker()
        assert check(torch.empty(8, 21, 2, device="meta"), "points2d", "... N 2") == (8,)

    def test_shape_error_is_a_value_error(self):
        assert issubclass(ShapeError, ValueError)


class TestBroadcastBatchShapes:
    def test_broadcasts(self):
        assert broadcast_batch_shapes(points2d=(8, 1), intrinsics=(5,)) == torch.Size([8, 5])
        assert broadcast_batch_shapes(a=(), b=(3,), c=(2, 1)) == torch.Size([2, 3])
        assert broadcast_batch_shapes(a=()) == torch.Size([])

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.lists(st.sampled_from([0, 1, 2, 3]), max_size=4), min_size=1, max_size=4))
    def test_agrees_with_torch_broadcast_shapes(self, shapes):
        named = {f"arg{i}": tuple(shape) for i, shape in enumerate(shapes)}
        try:
            expected = torch.broadcast_shapes(*named.values())
        except RuntimeError:
            with pytest.raises(ShapeError, match="do not broadcast"):
                broadcast_batch_shapes(**named)
        else:
            assert broadcast_batch_shapes(**named) == expected

    def test_error_names_every_argument_and_shape(self):
        expected = "batch dimensions do not broadcast: points2d (4,), points3d (3,), intrinsics ()"
        with pytest.raises(ShapeError, match=re.escape(expected)):
            broadcast_batch_shapes(points2d=(4,), points3d=(3,), intrinsics=())


class TestComputeDtype:
    @pytest.mark.parametrize(
        ("dtypes", "expected"),
        [
            ((torch.float64,), (torch.float64, torch.float64)),
            ((torch.float32,), (torch.float32, torch.float32)),
            ((torch.float16,), (torch.float32, torch.float16)),
            ((torch.bfloat16,), (torch.float32, torch.bfloat16)),
            ((torch.float32, torch.float64), (torch.float64, torch.float64)),
            ((torch.float16, torch.float32), (torch.float32, torch.float32)),
            ((torch.float16, torch.bfloat16), (torch.float32, torch.float32)),
            ((torch.float16, torch.float16, torch.float64), (torch.float64, torch.float64)),
        ],
    )
    def test_compute_and_output_dtypes(self, dtypes, expected):
        assert compute_dtype(*(torch.zeros(1, dtype=d) for d in dtypes)) == expected

    def test_reads_metadata_only(self):
        assert compute_dtype(torch.empty(2, device="meta", dtype=torch.float16)) == (
            torch.float32,
            torch.float16,
        )


class TestCheckSize:
    def test_pairs(self):
        assert check_size((480, 640), "image_size") == (480.0, 640.0)
        assert check_size([2.5, 3], "size") == (2.5, 3.0)
        assert check_size(224, "size", integer=True, square=True) == (224, 224)
        assert check_size((96, 128), "size", integer=True) == (96, 128)

    @pytest.mark.parametrize(
        "value, options",
        [
            ((0, 640), {}),
            ((480,), {}),
            (224, {}),  # one number only with square=True
            ((True, 2), {}),
            ((2.5, 3), {"integer": True}),
            ("ab", {}),
            (torch.tensor([2, 3]), {}),
        ],
    )
    def test_bad_values_raise_value_error_naming_the_argument(self, value, options):
        with pytest.raises(ValueError, match=r"^image_size: expected"):
            check_size(value, "image_size", **options)
