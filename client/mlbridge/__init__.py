"""mlbridge: TensorFlow predictions for MySQL users (the light package, no TensorFlow)."""

__version__ = "0.1.0"
