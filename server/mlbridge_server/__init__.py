"""mlbridge-server: the model server and the trainer, on TensorFlow."""

__version__ = "0.1.0"
