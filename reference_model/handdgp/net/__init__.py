"""The HandDGP reference network."""

from handdgp.net.model import HandDGPNet, HandPrediction, NetConfig

__all__ = ["HandDGPNet", "HandPrediction", "NetConfig"]
