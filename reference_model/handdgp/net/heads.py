"""Prediction heads: 2D keypoints, keypoint weights, and a root-depth baseline."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional

from handdgp.net.sampling import sample_at_points

__all__ = ["KeypointHead", "RootDepthHead", "TopDownContext", "WeightHead", "soft_argmax"]


class KeypointHead(nn.Module):
    """2D keypoints in crop pixels from stride-8 (and optionally stride-4) features.

    ``mode="heatmap"`` (default): a per-keypoint heat map and its soft-argmax
    (integral regression, Sun et al. 2018). ``mode="regression"``: MobRecon's
    direct regression (a 21-channel map, flattened, an MLP per keypoint).

    With ``early_channels`` (heat-map mode only) the heat maps are refined to
    stride 4: the stride-8 logits are up-sampled ×2 and a correction computed
    from the up-sampled stride-8 features and the stride-4 features is added.
    The correction's last layer starts at zero, so a stride-4 head warm-started
    from a stride-8 one begins with the same keypoints.

    Args:
        in_channels: channels of the stride-8 feature map.
        num_keypoints: number of keypoints.
        image_size: crop size in pixels (the input is ``image_size`` square).
        feature_size: side of the stride-8 feature map (``image_size / 8``).
        mode: ``"heatmap"`` or ``"regression"``.
        early_channels: channels of the stride-4 feature map, or None for
            stride-8 heat maps.
    """

    def __init__(
        self,
        in_channels: int,
        num_keypoints: int,
        image_size: int,
        feature_size: int,
        mode: str = "heatmap",
        early_channels: int | None = None,
    ) -> None:
        super().__init__()
        if mode not in ("heatmap", "regression"):
            raise ValueError(f"mode: expected 'heatmap' or 'regression', got {mode!r}")
        if early_channels is not None and mode != "heatmap":
            raise ValueError(f"early_channels: stride-4 maps need mode 'heatmap', got {mode!r}")
        self.mode, self.image_size, self.feature_size = mode, image_size, feature_size
        self.maps = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, 3, 1, 1),
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, num_keypoints, 1),
        )
        self.refine: nn.Sequential | None = None
        if early_channels is not None:
            hidden = early_channels
            self.refine = nn.Sequential(
                nn.Conv2d(in_channels + early_channels, hidden, 3, 1, 1, bias=False),
                nn.BatchNorm2d(hidden),
                nn.ReLU(inplace=True),
                nn.Conv2d(hidden, hidden, 3, 1, 1, bias=False),
                nn.BatchNorm2d(hidden),
                nn.ReLU(inplace=True),
                nn.Conv2d(hidden, num_keypoints, 1),
            )
            nn.init.zeros_(self.refine[-1].weight)
            nn.init.zeros_(self.refine[-1].bias)
        if mode == "regression":
            self.mlp = nn.Sequential(
                nn.Linear(feature_size * feature_size, 128),
                nn.ReLU(inplace=True),
                nn.Linear(128, 64),
                nn.ReLU(inplace=True),
                nn.Linear(64, 2),
                nn.Sigmoid(),
            )
        # Centre of each heat-map cell in crop pixels (integer pixel centres).
        map_size = feature_size * (2 if early_channels is not None else 1)
        stride = image_size / map_size
        centres = (torch.arange(map_size, dtype=torch.float32) + 0.5) * stride - 0.5
        self.register_buffer("centres", centres, persistent=False)

    def forward(self, features: Tensor, early: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Stride-8 features `(B, C, h, w)` (and stride-4 `(B, C_early, 2h, 2w)`) -> keypoints.

        Returns the keypoints `(B, N, 2)` in crop pixels and the heat maps:
        `(B, N, h, w)` log-probabilities over the cells (`(B, N, 2h, 2w)` with a
        stride-4 head; their soft-argmax is the keypoint), or None in
        ``"regression"`` mode.
        """
        maps = self.maps(features)  # (B, N, h, w)
        if self.mode == "regression":
            return self.mlp(maps.flatten(2)) * (self.image_size - 1), None
        if self.refine is not None:
            if early is None:
                raise ValueError("early: this head refines to stride 4 and needs the stride-4 features")
            up = functional.interpolate(features, scale_factor=2.0, mode="bilinear")
            maps = functional.interpolate(maps, scale_factor=2.0, mode="bilinear")
            maps = maps + self.refine(torch.cat((up, early), dim=1))
        log_prob = maps.flatten(2).log_softmax(-1).unflatten(-1, maps.shape[-2:])
        return soft_argmax(log_prob.exp(), self.centres), log_prob


class TopDownContext(nn.Module):
    """Stride-8 features with the encoder's deeper stages added back (a top-down path).

    The stride-8 features the 2D head reads come from the encoder's first two
    stages: each cell has seen about 100 px of a 128 px crop, and nothing the
    deeper stages worked out, so a heat map cannot tell well which finger a tip
    belongs to and spreads over both. As in a feature pyramid (Lin et al. 2017),
    the stride-16 and stride-32 features are projected to the stride-8 width by
    1×1 convolutions, up-sampled bilinearly and summed, and a 3×3 convolution of
    the sum is added to the stride-8 features. That convolution starts at zero,
    so a keypoint head warm-started from one without context begins with the
    same keypoints.

    Args:
        fine_channels, middle_channels, coarse_channels: channels of the
            stride-8, stride-16 and stride-32 feature maps.
    """

    def __init__(self, fine_channels: int, middle_channels: int, coarse_channels: int) -> None:
        super().__init__()
        self.lateral_middle = nn.Conv2d(middle_channels, fine_channels, 1)
        self.lateral_coarse = nn.Conv2d(coarse_channels, fine_channels, 1)
        self.fuse = nn.Sequential(
            nn.BatchNorm2d(fine_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(fine_channels, fine_channels, 3, 1, 1),
        )
        nn.init.zeros_(self.fuse[-1].weight)
        nn.init.zeros_(self.fuse[-1].bias)

    def forward(self, fine: Tensor, middle: Tensor, coarse: Tensor) -> Tensor:
        """`(B, C, h, w)`, `(B, C_m, h/2, w/2)`, `(B, C_c, h/4, w/4)` -> `(B, C, h, w)`."""
        top = functional.interpolate(self.lateral_coarse(coarse), scale_factor=4.0, mode="bilinear")
        top = top + functional.interpolate(
            self.lateral_middle(middle), scale_factor=2.0, mode="bilinear"
        )
        return fine + self.fuse(top)


def soft_argmax(prob: Tensor, centres: Tensor) -> Tensor:
    """Expected `(x, y)` of `(B, N, h, w)` cell probabilities (summing to one) -> `(B, N, 2)`.

    ``centres``: `(w,)` pixel coordinate of each cell centre (the map is square).
    """
    x = (prob.sum(-2) * centres).sum(-1)
    y = (prob.sum(-1) * centres).sum(-1)
    return torch.stack((x, y), dim=-1)


class WeightHead(nn.Module):
    """Per-keypoint confidence weights in (0, 1) (HandDGP Fig. 3).

    1×1 convolutions over the features, features bilinearly sampled at the
    predicted keypoints, then dense layers with leaky ReLU over all keypoints
    together (so a keypoint's weight can depend on its neighbours), and a sigmoid.
    The sampling locations are detached: the weights learn *which* keypoints to
    trust, not where the keypoints are.

    Args:
        in_channels: channels of the feature map.
        num_keypoints: number of keypoints.
        image_size: crop size in pixels.
        hidden: width of the 1×1 convolutions.
    """

    def __init__(
        self, in_channels: int, num_keypoints: int, image_size: int, hidden: int = 64
    ) -> None:
        super().__init__()
        self.image_size = image_size
        self.project = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(hidden, hidden, 1),
            nn.LeakyReLU(0.1, inplace=True),
        )
        self.dense = nn.Sequential(
            nn.Linear(num_keypoints * hidden, 256),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Linear(256, num_keypoints),
        )

    def forward(self, features: Tensor, keypoints2d: Tensor) -> Tensor:
        """Features `(B, C, h, w)` and keypoints `(B, N, 2)` crop pixels -> `(B, N)`."""
        sampled = sample_at_points(self.project(features), keypoints2d.detach(), self.image_size)
        return torch.sigmoid(self.dense(sampled.flatten(1)))


class RootDepthHead(nn.Module):
    """Baseline B5: regress the root depth instead of solving for it.

    Predicts ``log z`` of the root (metres) from globally pooled features; the
    root's x and y then follow from its predicted 2D position and the intrinsics.

    Args:
        in_channels: channels of the coarse feature map.
        prior_depth: metres, the depth the head predicts at initialisation.
    """

    def __init__(self, in_channels: int, prior_depth: float = 0.6) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_channels, 128), nn.ReLU(inplace=True), nn.Linear(128, 1)
        )
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.constant_(self.mlp[-1].bias, float(torch.log(torch.tensor(prior_depth))))

    def forward(self, features: Tensor) -> Tensor:
        """`(B, C, h, w)` -> `(B,)` root depth in metres."""
        return self.mlp(features.mean((-2, -1))).squeeze(-1).exp()
