"""Training progress: a bar on a terminal, one line per epoch anywhere else (a log, CI, a pipe),
nothing when asked to be quiet."""

from __future__ import annotations

import sys
import time

import tf_keras
from tqdm import tqdm

BAR, LINES, OFF = "bar", "lines", "off"


def progress_mode(enabled: bool, stream=None) -> str:
    stream = stream or sys.stderr
    if not enabled:
        return OFF
    return BAR if getattr(stream, "isatty", lambda: False)() else LINES


def say(mode: str, text: str, stream=None) -> None:
    """A line of progress outside the epochs (which model is being fitted, what was chosen)."""
    if mode != OFF:
        print(text, file=stream or sys.stderr, flush=True)


class EpochProgress(tf_keras.callbacks.Callback):
    """Batches across epochs as one tqdm bar (BAR), or a line at the end of each epoch (LINES).
    The batches per epoch are a guess from the row count until the first epoch has run; early
    stopping ends the bar short of its total."""

    def __init__(self, desc: str, epochs: int, steps_guess: int, *, mode: str = BAR, stream=None) -> None:
        super().__init__()
        self.desc, self.epochs, self.mode = desc, epochs, mode
        self.stream = stream or sys.stderr
        self.steps = max(1, steps_guess)
        self.steps_known = False
        self.epoch_steps = 0
        self.started = time.monotonic()
        self.bar = None
        if mode == BAR:
            self.bar = tqdm(total=epochs * self.steps, desc=desc, unit="batch", file=self.stream, dynamic_ncols=True)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_steps = 0
        self.started = time.monotonic()
        if self.bar is not None:
            self.bar.set_description(f"{self.desc} (epoch {epoch + 1}/{self.epochs})")

    def on_train_batch_end(self, batch, logs=None):
        self.epoch_steps += 1
        if self.bar is not None:
            self.bar.update(1)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        shown = {k: f"{v:.4g}" for k, v in logs.items() if k in ("loss", "val_loss")}
        if self.bar is not None:
            if not self.steps_known:
                self.steps_known = True
                self.steps = self.epoch_steps
                self.bar.total = max(self.bar.n, self.epochs * self.steps)
            self.bar.set_postfix(shown, refresh=True)
        elif self.mode == LINES:
            losses = " ".join(f"{k} {v}" for k, v in shown.items())
            print(f"{self.desc}: epoch {epoch + 1}/{self.epochs} {losses} ({time.monotonic() - self.started:.1f} s, "
                  f"{self.epoch_steps} batches)", file=self.stream, flush=True)

    def on_train_end(self, logs=None):
        self.close()

    def close(self) -> None:
        """Close the bar; safe to call again (training that fails never reaches on_train_end)."""
        if self.bar is not None:
            self.bar.total = self.bar.n
            self.bar.refresh()
            self.bar.close()
            self.bar = None


class Cancelled(Exception):
    """The job was cancelled (request_cancel) or its claim was lost: stop, export nothing."""


class Hooks:
    """What a caller of train() learns and decides while it runs: `report` receives progress
    (phase, model_type, epoch, epochs, loss, val_loss, ...), and `cancelled()` is asked at each
    epoch's end and between the steps, a True stopping the training with Cancelled. The base
    class does nothing (the CLI); the trainer worker's reports reach request_status."""

    def report(self, **progress) -> None:
        pass

    def cancelled(self) -> bool:
        return False

    def check(self) -> None:
        if self.cancelled():
            raise Cancelled("mlbridge: the job was cancelled")


class HookCallback(tf_keras.callbacks.Callback):
    """Reports each epoch's losses to the hooks, and stops the fit when they say cancelled."""

    def __init__(self, hooks: Hooks, model_type: str, epochs: int) -> None:
        super().__init__()
        self.hooks, self.model_type, self.epochs = hooks, model_type, epochs

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.hooks.report(phase="fitting", model_type=self.model_type, epoch=epoch + 1, epochs=self.epochs,
                          **{k: round(float(v), 6) for k, v in logs.items() if k in ("loss", "val_loss")})
        if self.hooks.cancelled():
            self.model.stop_training = True
