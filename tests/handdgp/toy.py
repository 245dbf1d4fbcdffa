"""A toy mesh hierarchy, net and crop data set for fast training and evaluation tests."""

import itertools

import torch
from torch import nn
from torch.utils.data import Dataset

from handdgp.net import HandDGPNet, HandPrediction, NetConfig


def toy_hierarchy(sizes=(96, 48, 24), seed=0):
    gen = torch.Generator().manual_seed(seed)
    spirals = []
    for v in sizes:
        s = torch.randint(0, v, (v, 9), generator=gen)
        s[:, 0] = torch.arange(v)
        spirals.append(s)
    upsampling = []
    for fine, coarse in itertools.pairwise(sizes):
        up = torch.zeros(fine, coarse)
        idx = torch.randint(0, coarse, (fine, 3), generator=gen)
        w = torch.rand(fine, 3, generator=gen)
        up.scatter_(1, idx, w / w.sum(1, keepdim=True))
        upsampling.append(up)
    regressor = torch.rand(21, sizes[0], generator=gen)
    faces = torch.randint(0, sizes[0], (64, 3), generator=gen)
    return regressor / regressor.sum(1, keepdim=True), spirals, upsampling, faces


def toy_net(**overrides):
    regressor, spirals, upsampling, _ = toy_hierarchy()
    overrides.setdefault("decoder", "spiral")
    config = NetConfig(image_size=32, width=0.125, decoder_channels=(16, 8), **overrides)
    return HandDGPNet(config, regressor, spirals, upsampling)


def toy_model_factory(config):
    """A :data:`handdgp.loading.ModelFactory` building the toy net for ``config.net``
    (always the spiral decoder: the toy mesh has no skeleton)."""
    regressor, spirals, upsampling, faces = toy_hierarchy()
    config.net.decoder = "spiral"
    return HandDGPNet(config.net, regressor, spirals, upsampling), faces


def canonical_k(size=32, focal=40.0):
    c = (size - 1) / 2
    return torch.tensor([[focal, 0.0, c], [0.0, focal, c], [0.0, 0.0, 1.0]])


class ToyCrops(Dataset):
    """Consistent geometry (vertices, keypoints, projections) with noise images.

    Items are addressed by ``(index, epoch)``; the image noise depends on both, as
    a real augmentation would, and is reproducible.
    """

    def __init__(self, size=24, image_size=32):
        self.size, self.image_size = size, image_size
        self.regressor = toy_hierarchy()[0]

    def __len__(self):
        return self.size

    def __getitem__(self, key):
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        gen = torch.Generator().manual_seed(index)
        vertices = (torch.rand(96, 3, generator=gen) - 0.5) * 0.1
        root = torch.tensor([0.0, 0.0, 0.5]) + (torch.rand(3, generator=gen) - 0.5) * 0.1
        keypoints = self.regressor @ vertices
        vertices = vertices - keypoints[:1] + root
        keypoints = keypoints - keypoints[:1] + root
        K = canonical_k(self.image_size)
        uvw = keypoints @ K.T
        image_gen = torch.Generator().manual_seed(1000 * epoch + index)
        return {
            "image": torch.rand(3, self.image_size, self.image_size, generator=image_gen),
            "intrinsics": K,
            "keypoints2d": uvw[:, :2] / uvw[:, 2:],
            "keypoints3d": keypoints,
            "vertices": vertices,
        }


class IndexedCrops(Dataset):
    """``ToyCrops`` whose images carry their index (pixel (0, 0) of channel 0 is
    ``index / 1000``), with the extra keys of the rectified data sets (identity
    rotation and pixel map, the original intrinsics), for :class:`OracleNet`."""

    def __init__(self, size=24, image_size=32):
        self.base = ToyCrops(size, image_size)

    def __len__(self):
        return len(self.base)

    def __getitem__(self, key):
        item = dict(self.base[key])
        index = key[0] if isinstance(key, tuple) else key
        item["image"] = item["image"].clone()
        item["image"][0, 0, 0] = index / 1000.0
        item["rotation"] = torch.eye(3)
        item["to_original"] = torch.eye(3)
        item["original_intrinsics"] = item["intrinsics"]
        return item


class OracleNet(nn.Module):
    """Returns the ground truth of an :class:`IndexedCrops` item as a ``HandPrediction``,
    with the translation moved by ``offset`` metres (zero: a perfect model)."""

    def __init__(self, dataset, offset=(0.0, 0.0, 0.0), positioning="dgp"):
        super().__init__()
        self.config = NetConfig(image_size=dataset.base.image_size, positioning=positioning)
        items = [dataset[i] for i in range(len(dataset))]
        for key in ("keypoints2d", "keypoints3d", "vertices"):
            self.register_buffer(key, torch.stack([item[key] for item in items]))
        self.register_buffer("offset", torch.tensor(offset))

    def forward(self, images, intrinsics):
        index = torch.round(images[:, 0, 0, 0] * 1000.0).long()
        kp, verts = self.keypoints3d[index], self.vertices[index]
        root = kp[:, :1]
        translation = root[:, 0] + self.offset
        rel_kp, rel_verts = kp - root, verts - root
        return HandPrediction(
            self.keypoints2d[index],
            rel_verts,
            rel_kp,
            torch.ones_like(kp[..., 0]),
            translation,
            rel_verts + translation[:, None],
            rel_kp + translation[:, None],
            torch.ones_like(index, dtype=torch.bool),
        )
