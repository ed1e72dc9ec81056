"""Re-reading the model config file while the server runs (TF Serving's
--model_config_file_poll_wait_seconds).

Every ``interval`` seconds the file's size, modification time and content are
compared with what was last applied; a changed file is parsed and applied as
HandleReloadConfigRequest would (new versions load before the dropped ones
unload). A file that no longer parses, or names what is not there, is
reported in the log and the config in force stays: a typo never unloads a
model. A config sent by HandleReloadConfigRequest stays in force until the
file changes again.
"""

from __future__ import annotations

import hashlib
import logging
import threading

from . import model_config
from .registry import ModelRegistry

log = logging.getLogger(__name__)


def _digest(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


class ConfigWatcher:
    def __init__(self, path: str, model_base: str, registry: ModelRegistry, interval: float):
        self.path = path
        self.model_base = model_base
        self.registry = registry
        self.interval = interval
        self._applied = _digest(path)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="model-config-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def check(self) -> bool:
        """Apply the file if it changed since it was last applied; True when it was."""
        digest = _digest(self.path)
        if digest is None or digest == self._applied:
            if digest is None and self._applied is not None:
                log.error("model config file %s cannot be read: the config in force stays", self.path)
                self._applied = None
            return False
        try:
            models = model_config.load_file(self.path, self.model_base)
        except model_config.ConfigError as e:
            log.error("model config file %s changed but is not applied: %s", self.path, e)
            self._applied = digest  # reported once, until the file changes again
            return False
        self._applied = digest
        self.registry.configure(models)
        log.info("model config file %s applied: %s", self.path, ", ".join(m.name for m in models) or "no models")
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # keep watching: the next change may apply
                log.exception("applying model config file %s failed", self.path)
