"""The bridge: claims chunks of predict_queue, scores them on the model server, writes results."""

from .worker import Bridge, BridgeConfig

__all__ = ["Bridge", "BridgeConfig"]
