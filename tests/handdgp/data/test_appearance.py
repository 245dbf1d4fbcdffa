"""Tests for handdgp.data.appearance: skin, objects, light, backgrounds, camera effects."""

from __future__ import annotations

import numpy as np
import pytest

from handdgp.data.appearance import (
    SKIN_TONES,
    composite,
    finish_image,
    object_colors,
    procedural_background,
    shade,
    skin_colors,
)
from handdgp.hand import load_template


@pytest.fixture(scope="module")
def template():
    return load_template()


def _rng(seed=0):
    return np.random.default_rng(seed)


class TestSkinColors:
    def test_range_and_determinism(self, template):
        a = skin_colors(_rng(3), template)
        assert a.shape == (template.num_vertices, 3) and a.dtype == np.float32
        assert a.min() >= 0 and a.max() <= 1
        np.testing.assert_array_equal(a, skin_colors(_rng(3), template))
        assert not np.array_equal(a, skin_colors(_rng(4), template))

    def test_tones_span_the_palette(self, template):
        means = np.array([skin_colors(_rng(s), template).mean() for s in range(200)])
        assert means.min() < SKIN_TONES[-2].mean() and means.max() > SKIN_TONES[1].mean()

    def test_texture_and_palm(self, template):
        colors = skin_colors(_rng(5), template)
        assert colors.std(axis=0).max() > 0.01  # per-vertex detail
        back = template.vertices[:, 0].numpy() > 0.01  # template +x: the back of the hand
        palm = template.vertices[:, 0].numpy() < -0.02
        assert colors[palm].mean() > colors[back].mean()  # palms are lighter


class TestObjectColors:
    def test_pattern(self):
        u = np.linspace(-np.pi, np.pi, 200)
        v = np.linspace(0, 3, 200)
        spread = [object_colors(_rng(s), u, v).std(axis=0).max() for s in range(20)]
        assert min(spread) < 0.05 < max(spread)  # plain objects and patterned ones
        c = object_colors(_rng(0), u, v)
        assert c.dtype == np.float32 and c.min() >= 0 and c.max() <= 1


class TestShade:
    def test_two_sided_and_lit(self):
        normals = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
        albedo = np.full((3, 3), 0.5)
        colors = shade(_rng(1), normals, albedo)
        np.testing.assert_allclose(colors[0], colors[1])
        assert colors.dtype == np.float32 and (colors > 0).all() and (colors <= 1).all()
        np.testing.assert_array_equal(colors, shade(_rng(1), normals, albedo))


class TestBackground:
    @pytest.mark.parametrize("size", [(48, 64), (224, 224), (481, 333)])
    def test_shapes(self, size):
        bg = procedural_background(_rng(2), *size)
        assert bg.shape == (*size, 3) and bg.dtype == np.uint8

    def test_varied_and_deterministic(self):
        images = [procedural_background(_rng(s), 64, 64) for s in range(12)]
        np.testing.assert_array_equal(images[0], procedural_background(_rng(0), 64, 64))
        means = np.array([im.reshape(-1, 3).mean(axis=0) for im in images])
        assert means.std(axis=0).min() > 10  # colours vary between images
        assert min(im.std() for im in images) > 2  # and within them


class TestComposite:
    def test_foreground_kept(self):
        fg = np.zeros((64, 64, 3), np.uint8)
        fg[..., 0] = 200
        covered = np.zeros((64, 64), bool)
        covered[16:48, 16:48] = True
        out = composite(_rng(0), fg, covered)
        assert out.shape == (64, 64, 3) and out.dtype == np.uint8
        inner = out[24:40, 24:40].reshape(-1, 3).mean(axis=0)
        assert inner[0] > 150 and inner[1] < 40 and inner[2] < 40  # through blur, gain, noise
        np.testing.assert_array_equal(out, composite(_rng(0), fg, covered))

    def test_finish_image(self):
        image = np.full((32, 32, 3), 100, np.uint8)
        out = finish_image(_rng(1), image)
        assert out.dtype == np.uint8 and abs(float(out.mean()) - 100) < 20
        assert out.std() > 0  # noise
        np.testing.assert_array_equal(out, finish_image(_rng(1), image))
