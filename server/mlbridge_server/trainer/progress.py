"""The training progress bar: batches across epochs, with the latest losses."""

from __future__ import annotations

import sys
from collections.abc import Callable

import tf_keras
from tqdm import tqdm


class EpochProgress(tf_keras.callbacks.Callback):
    """One tqdm bar over all batches of all epochs. The batches per epoch are a guess from the
    row count until the first epoch has run; early stopping ends the bar short of its total.

    `before_validation` runs when an epoch's training pass is over and the hold-out pass is
    about to start: the trainer checks there that the hold-out is not empty.
    """

    def __init__(
        self,
        desc: str,
        epochs: int,
        steps_guess: int,
        *,
        enabled: bool = True,
        before_validation: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.epochs = epochs
        self.steps = steps_guess
        self.steps_known = False
        self.desc = desc
        self.before_validation = before_validation
        self.bar = tqdm(
            total=epochs * steps_guess,
            desc=desc,
            unit="batch",
            disable=not enabled,
            file=sys.stderr,
            dynamic_ncols=True,
        )
        self.epoch_steps = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_steps = 0
        self.bar.set_description(f"{self.desc} (epoch {epoch + 1}/{self.epochs})")

    def on_train_batch_end(self, batch, logs=None):
        self.epoch_steps += 1
        self.bar.update(1)

    def on_test_begin(self, logs=None):
        if self.before_validation is not None:
            self.before_validation()

    def on_epoch_end(self, epoch, logs=None):
        if not self.steps_known:
            self.steps_known = True
            self.steps = self.epoch_steps
            self.bar.total = max(self.bar.n, self.epochs * self.steps)
        logs = logs or {}
        shown = {k: f"{v:.4g}" for k, v in logs.items() if k in ("loss", "val_loss")}
        self.bar.set_postfix(shown, refresh=True)

    def on_train_end(self, logs=None):
        self.bar.total = self.bar.n
        self.bar.refresh()
        self.close()

    def close(self) -> None:
        """Close the bar; safe to call again (training that fails never reaches on_train_end)."""
        self.bar.close()
