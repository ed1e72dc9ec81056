"""Which model versions are loaded, and keeping that in step with the disk.

Version policy, as TF Serving's "latest": the newest version of each model is
loaded as soon as a scan finds it, fully, before it replaces the version that
requests without a version get; requests already running keep the servable
they resolved. If the newest version fails to load, the next newest that loads
is served and the failure is reported (ListModels) until its files change.

Our extension: a request that names an older version still on disk gets it,
loaded on demand, and at most ``keep_older`` such versions per model stay
loaded (least recently used goes first). The bridge pins every request to a
version when it is queued, so a new version arriving must not fail requests
queued for the one before; TF Serving would answer NOT_FOUND for them.

With a model config (model_config.py: --model-config-file, or
HandleReloadConfigRequest), TF Serving's rules apply instead: only the
configured models are served, each from its base path, and exactly the
versions its version policy selects (latest n, all, specific); a version the
policy drops is unloaded and answers NOT_FOUND, and labels name versions.
Swapping configs loads the new versions before it unloads the old ones.

A version or model removed from disk is unloaded at the next scan. The
server's loader (loader.py) runs each version in a process of its own, so an
unloaded version's memory goes back to the system; one whose process dies is
loaded again at the next scan.

Loading is not serial: each scan hands every model to a pool of load threads
(``load_threads``), one task per model at a time, so a slow or hanging load
holds up only its own model. A scan from the poller does not wait for them; the
first scan, ``configure`` and an explicit ``scan()`` do.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from mlbridge.wire import get_model_metadata_pb2

from . import modelbase
from .errors import RequestError, failed_precondition, invalid, not_found, unavailable
from .model_config import ModelEntry
from .modelbase import VersionDir

log = logging.getLogger(__name__)

SignatureDefMap = get_model_metadata_pb2.SignatureDefMap


class ServableLike(Protocol):
    name: str
    version: int
    signature_defs: SignatureDefMap


Loader = Callable[[str, int, str], Any]
SignatureReader = Callable[[str], SignatureDefMap]


class LoadError(Exception):
    """A version failed to load; the message is the cause's first line."""


@dataclass
class VersionStatus:
    name: str
    version: int
    state: str  # LOADING, AVAILABLE, FAILED, UNLOADED
    error: str = ""
    latest: bool = False
    signature_defs: SignatureDefMap | None = None
    # False: on disk, but the model's version policy does not serve it.
    served: bool = True
    # Unloaded because the version policy dropped it.
    ended: bool = False


@dataclass
class _Model:
    name: str
    on_disk: dict[int, VersionDir] = field(default_factory=dict)
    # Loaded versions, least recently used first.
    loaded: OrderedDict[int, Any] = field(default_factory=OrderedDict)
    latest: int | None = None
    # version -> (fingerprint of its files when it failed, error)
    failed: dict[int, tuple[tuple, str]] = field(default_factory=dict)
    loading: set[int] = field(default_factory=set)
    # With a model config: the versions its policy serves (None: any on disk,
    # older ones loaded on demand).
    served: set[int] | None = None
    # Versions the policy dropped after they were loaded.
    ended: set[int] = field(default_factory=set)


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def _default_loader(name: str, version: int, path: str) -> Any:
    from .servable import load

    return load(name, version, path)


def _default_signature_reader(path: str) -> SignatureDefMap:
    from .signatures import read_signature_defs

    return read_signature_defs(path)


def _alive(servable: Any) -> bool:
    """False for a servable whose model process died (killed, out of memory):
    it stays in place, answering UNAVAILABLE, until its replacement is loaded."""
    return getattr(servable, "alive", True) is not False


def _close(servable: Any) -> None:
    """Let an unloaded servable go: a model process exits (loader.py) once the
    requests still running on it are done; an in-process one is left to gc."""
    close = getattr(servable, "close", None)
    if close is not None:
        close()


class ModelRegistry:
    """The loaded models of one model base. Thread-safe: the poller thread
    scans while gRPC threads resolve requests."""

    def __init__(
        self,
        base: str,
        *,
        keep_older: int = 2,
        loader: Loader | None = None,
        signature_reader: SignatureReader | None = None,
        models: list[ModelEntry] | None = None,
        load_threads: int = 2,
    ):
        self.base = base
        # None: every model folder of the base (today's behaviour); else the
        # configured models by name.
        self._config: dict[str, ModelEntry] | None = (
            None if models is None else {m.name: m for m in models}
        )
        self._scan_lock = threading.Lock()
        self.keep_older = keep_older
        self._loader = loader or _default_loader
        self._read_signatures = signature_reader or _default_signature_reader
        self._lock = threading.RLock()
        self._models: dict[str, _Model] = {}
        self._load_locks: dict[tuple[str, int], threading.Lock] = {}
        self._signature_cache: dict[str, tuple[tuple, SignatureDefMap | None]] = {}
        self.first_scan_done = threading.Event()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        # Models are brought in line with the disk by these threads, each
        # model by one task at a time: a slow load holds up only its model.
        self._pool = ThreadPoolExecutor(max(1, load_threads), thread_name_prefix="model-load")
        self._tasks: dict[str, Future] = {}
        self._listeners: list[Callable[[], None]] = []

    # -- listeners ------------------------------------------------------------

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after a scan and after each load (or failed load), from the
        thread that did it; it reads what changed with statuses(). Health and metrics keep in
        step this way. A listener that raises is logged and the others still run."""
        self._listeners.append(callback)

    def _changed(self) -> None:
        for callback in list(self._listeners):
            try:
                callback()
            except Exception:
                log.exception("a model registry listener failed")

    # -- scanning -------------------------------------------------------------

    @property
    def configured(self) -> bool:
        """Whether a model config decides what is served."""
        return self._config is not None

    def configure(self, models: list[ModelEntry]) -> None:
        """Serve these models from now on (a model config; checked by
        model_config.entries), and apply it before returning: new versions
        are loaded, then versions the config drops are unloaded."""
        with self._scan_lock:
            with self._lock:
                new = {m.name: m for m in models}
                old = self._config or {}
                for name in list(self._models):
                    before, after = old.get(name), new.get(name)
                    if after is not None and before is not None and before.base_path != after.base_path:
                        # Other files under the same name: load them afresh.
                        for servable in self._models.pop(name).loaded.values():
                            _close(servable)
                self._config = new
            self._scan_locked()

    def _disk(self) -> dict[str, dict[int, VersionDir]]:
        config = self._config
        if config is None:
            return modelbase.scan(self.base)
        disk = {}
        for name, entry in config.items():
            versions = modelbase.versions_at(entry.base_path, name)
            if versions:
                disk[name] = versions
        return disk

    def scan(self, wait: bool = True) -> None:
        """Bring the loaded versions in line with the disk (one poll). With
        ``wait``, return once every model is; else the loads go on in the
        background (a model still busy from the last scan is left to it)."""
        with self._scan_lock:
            self._scan_locked(wait)

    def _scan_locked(self, wait: bool = True) -> None:
        config = self._config
        disk = self._disk()
        dropped = False
        with self._lock:
            for name in list(self._models):
                if name not in disk:
                    model = self._models.pop(name)
                    if model.loaded:
                        log.info("model %s removed from disk: unloaded", name)
                        dropped = True
                    for servable in model.loaded.values():
                        _close(servable)
            for name, versions in disk.items():
                model = self._models.setdefault(name, _Model(name))
                model.on_disk = dict(versions)
                for version in list(model.loaded):
                    if version not in versions:
                        _close(model.loaded.pop(version))
                        log.info("model %s version %d removed from disk: unloaded", name, version)
                        dropped = True
                for version in list(model.failed):
                    if version not in versions:
                        del model.failed[version]
                if model.latest not in model.loaded:
                    model.latest = None
            live = {v.path for versions in disk.values() for v in versions.values()}
            for path in list(self._signature_cache):
                if path not in live:
                    self._signature_cache.pop(path, None)

        waiting = []
        for name in sorted(disk):
            entry = config.get(name) if config is not None else None
            with self._lock:
                busy = self._tasks.get(name)
            if busy is not None and not busy.done():
                if not wait:
                    continue
                busy.result()
            task = self._pool.submit(self._update_model, name, entry, disk[name])
            with self._lock:
                self._tasks[name] = task
            waiting.append(task)
        if wait:
            for task in waiting:
                if task.result():
                    dropped = True
        if dropped:
            gc.collect()
        if wait:
            self.first_scan_done.set()
        self._changed()

    def _update_model(
        self, name: str, entry: ModelEntry | None, versions: dict[int, VersionDir]
    ) -> bool:
        """One model brought in line with its versions on disk; True when
        something was unloaded."""
        try:
            if entry is None:
                self._update_latest(name, versions)
                return False
            return self._apply_policy(entry, versions)
        except Exception:  # keep the others going; the next scan tries again
            log.exception("updating model %s failed", name)
            return False
        finally:
            # Unloads in a background task reach health and metrics now, not at the next poll.
            self._changed()

    def _update_latest(self, name: str, versions: dict[int, VersionDir]) -> None:
        chosen = None
        for version in sorted(versions, reverse=True):
            with self._lock:
                model = self._models.get(name)
                if model is None:
                    return
                if version in model.loaded and _alive(model.loaded[version]):
                    chosen = version
                    break
                if self._failed_unchanged(model, versions[version]):
                    continue
            try:
                self._ensure_loaded(name, versions[version])
            except LoadError:
                continue
            chosen = version
            break
        with self._lock:
            model = self._models.get(name)
            if model is None:
                return
            previous = model.latest
            if chosen is not None and chosen in model.loaded:
                model.latest = chosen
                if previous is not None and previous != chosen and previous in model.loaded:
                    # The version requests got until now counts as just used:
                    # requests pinned to it are likely still queued.
                    model.loaded.move_to_end(previous)
                if previous != chosen:
                    log.info("model %s: serving version %d", name, chosen)
            else:
                model.latest = None
            self._trim(model)

    def _apply_policy(self, entry: ModelEntry, versions: dict[int, VersionDir]) -> bool:
        """Load the versions the model's policy selects, newest first, then
        unload the others; True when something was unloaded."""
        name = entry.name
        wanted = entry.policy.select(list(versions))
        for version in sorted(wanted, reverse=True):
            with self._lock:
                model = self._models.get(name)
                if model is None:
                    return False
                if version in model.loaded and _alive(model.loaded[version]):
                    continue
                if self._failed_unchanged(model, versions[version]):
                    continue
            try:
                self._ensure_loaded(name, versions[version])
            except LoadError:
                continue
        dropped = False
        with self._lock:
            model = self._models.get(name)
            if model is None:
                return False
            model.served = wanted
            for version in list(model.loaded):
                if version not in wanted:
                    _close(model.loaded.pop(version))
                    model.ended.add(version)
                    dropped = True
                    log.info(
                        "model %s version %d unloaded: not in its version policy %s",
                        name, version, entry.policy.describe(),
                    )
            model.ended.difference_update(model.loaded)
            available = [v for v in model.loaded if v in wanted]
            latest = max(available) if available else None
            if latest is not None and latest != model.latest:
                log.info("model %s: serving version %d", name, latest)
            model.latest = latest
        return dropped

    def _failed_unchanged(self, model: _Model, vdir: VersionDir) -> bool:
        failure = model.failed.get(vdir.version)
        return failure is not None and failure[0] == modelbase.fingerprint(vdir.path)

    def _trim(self, model: _Model) -> None:
        """Unload the least recently used older versions beyond keep_older."""
        older = [v for v in model.loaded if v != model.latest]
        for version in older[: max(0, len(older) - self.keep_older)]:
            _close(model.loaded.pop(version))
            log.info("model %s version %d unloaded (least recently used)", model.name, version)

    # -- loading --------------------------------------------------------------

    def _ensure_loaded(self, name: str, vdir: VersionDir) -> Any:
        """The servable for a version, loading it if needed (once, even when
        several threads ask at the same time). Raises LoadError."""
        loaded_before = vdir.version in getattr(self._models.get(name), "loaded", ())
        try:
            return self._load_once(name, vdir)
        finally:
            if not loaded_before:
                self._changed()

    def _load_once(self, name: str, vdir: VersionDir) -> Any:
        key = (name, vdir.version)
        with self._lock:
            lock = self._load_locks.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                model = self._models.setdefault(name, _Model(name))
                model.on_disk.setdefault(vdir.version, vdir)
                dead = model.loaded.get(vdir.version)
                if dead is not None and _alive(dead):
                    return dead
                if dead is not None:
                    log.error(
                        "model %s version %d: its model process ended unexpectedly; loading it again",
                        name, vdir.version,
                    )
                files = modelbase.fingerprint(vdir.path)
                failure = model.failed.get(vdir.version)
                if failure is not None and failure[0] == files:
                    raise LoadError(failure[1])
                model.loading.add(vdir.version)
            started = time.monotonic()
            try:
                servable = self._loader(name, vdir.version, vdir.path)
            except Exception as e:  # any failure to load: report it, keep serving
                error = _first_line(e)
                log.error("model %s version %d failed to load: %s", name, vdir.version, error)
                with self._lock:
                    model.loading.discard(vdir.version)
                    model.failed[vdir.version] = (files, error)
                raise LoadError(error) from e
            describe = getattr(servable, "describe", None)
            log.info(
                "model %s version %d loaded in %.2fs%s",
                name,
                vdir.version,
                time.monotonic() - started,
                f" ({describe()})" if callable(describe) else "",
            )
            with self._lock:
                model.loading.discard(vdir.version)
                model.failed.pop(vdir.version, None)
                replaced = model.loaded.get(vdir.version)
                if replaced is not None:
                    _close(replaced)
                model.loaded[vdir.version] = servable
                if self._models.get(name) is not model:
                    # Removed from disk while it loaded: it stays usable for
                    # this request, and is not kept.
                    _close(model.loaded.pop(vdir.version))
            return servable

    # -- requests -------------------------------------------------------------

    def resolve(self, name: str, version: int | None) -> Any:
        """The servable answering a request for ``name`` (``version``, or the
        latest when None). Raises RequestError with TF Serving's codes."""
        if not name:
            raise invalid("model_spec.name is required")
        if not modelbase.is_model_name(name):
            raise not_found(f'model "{name}" not found')
        with self._lock:
            config = self._config
            if config is not None and name not in config:
                raise not_found(f'model "{name}" not found (not in the model config)')
            model = self._models.get(name)
            if version is None:
                if model is not None and model.latest is not None:
                    model.loaded.move_to_end(model.latest)
                    return model.loaded[model.latest]
                raise self._no_latest(name, model)
            if model is not None and version in model.loaded:
                model.loaded.move_to_end(version)
                return model.loaded[version]
            if config is not None and (model is None or version not in (model.served or ())):
                raise self._not_served(config[name], version, model)
            vdir = model.on_disk.get(version) if model is not None else None
        if vdir is None and config is not None:
            raise self._version_not_found(name, version, model)
        if vdir is None:
            # Possibly written since the last scan: the catalog can learn of
            # a version (from the trainer) before this server polls.
            vdir = modelbase.find_version(self.base, name, version)
        if vdir is None:
            raise self._version_not_found(name, version, model)
        try:
            servable = self._ensure_loaded(name, vdir)
        except LoadError as e:
            raise failed_precondition(
                f'model "{name}" version {version} failed to load: {e}'
            ) from None
        with self._lock:
            model = self._models.get(name)
            if model is not None and config is None:
                self._trim(model)
        return servable

    def version_for_label(self, name: str, label: str) -> int:
        """The version a label of the model config names (ModelSpec.version_label)."""
        with self._lock:
            config = self._config
        entry = config.get(name) if config is not None else None
        if config is not None and entry is None:
            raise not_found(f'model "{name}" not found (not in the model config)')
        labels = entry.labels if entry is not None else {}
        if label not in labels:
            known = ", ".join(f'"{k}"' for k in sorted(labels)) or "none"
            hint = "" if config is not None else "; labels are set with --model-config-file"
            raise not_found(
                f'model "{name}" has no version label "{label}" (labels: {known}){hint}'
            )
        return labels[label]

    def _not_served(self, entry: ModelEntry, version: int, model: _Model | None) -> RequestError:
        served = ", ".join(str(v) for v in sorted(model.served or ())) if model else ""
        return not_found(
            f'model "{entry.name}" version {version} is not served: its version policy '
            f"{entry.policy.describe()} serves {served or 'no version yet'}"
        )

    def _no_latest(self, name: str, model: _Model | None) -> RequestError:
        if model is None:
            if not self.first_scan_done.is_set():
                return unavailable("the model server is starting: models are still loading")
            return not_found(f'model "{name}" not found')
        if model.loading:
            return unavailable(f'model "{name}" is loading')
        if model.failed:
            version = max(model.failed)
            return failed_precondition(
                f'model "{name}" has no version that loads: '
                f"version {version} failed: {model.failed[version][1]}"
            )
        if not self.first_scan_done.is_set():
            return unavailable(f'model "{name}" is loading')
        return not_found(f'model "{name}" not found')

    def _version_not_found(self, name: str, version: int, model: _Model | None) -> RequestError:
        if model is None or not model.on_disk:
            return not_found(f'model "{name}" not found (asked for version {version})')
        versions = ", ".join(str(v) for v in sorted(model.on_disk))
        return not_found(f'model "{name}" has no version {version} (versions: {versions})')

    # -- status ---------------------------------------------------------------

    def statuses(self, name: str = "") -> list[VersionStatus]:
        """Every version of every model (only ``name``'s when given), ordered
        by name and version."""
        with self._lock:
            snapshot = []
            for model_name in sorted(self._models):
                if name and model_name != name:
                    continue
                model = self._models[model_name]
                for version in sorted(set(model.on_disk) | set(model.loaded) | model.ended):
                    servable = model.loaded.get(version)
                    if servable is not None:
                        state, error = "AVAILABLE", ""
                    elif version in model.loading:
                        state, error = "LOADING", ""
                    elif version in model.failed:
                        state, error = "FAILED", model.failed[version][1]
                    else:
                        state, error = "UNLOADED", ""
                    served = model.served is None or version in model.served
                    snapshot.append(
                        (model_name, version, state, error, version == model.latest, servable,
                         model.on_disk.get(version), served, version in model.ended)
                    )
        out = []
        for model_name, version, state, error, latest, servable, vdir, served, ended in snapshot:
            if servable is not None:
                signatures = servable.signature_defs
            else:
                signatures = self._cached_signatures(vdir) if vdir is not None else None
            out.append(
                VersionStatus(model_name, version, state, error, latest, signatures, served, ended)
            )
        return out

    def _cached_signatures(self, vdir: VersionDir) -> SignatureDefMap | None:
        saved_model = modelbase.saved_model_file(vdir.path)
        if saved_model is None:
            return None
        try:
            st = os.stat(saved_model)
        except OSError:
            return None
        key = (saved_model, st.st_size, st.st_mtime_ns)
        cached = self._signature_cache.get(vdir.path)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            signatures: SignatureDefMap | None = self._read_signatures(vdir.path)
        except Exception as e:  # a broken file: the version is listed without signatures
            log.debug("cannot read the signatures of %s: %s", vdir.path, e)
            signatures = None
        self._signature_cache[vdir.path] = (key, signatures)
        return signatures

    # -- polling --------------------------------------------------------------

    def start(self, poll_interval: float) -> None:
        """Scan every ``poll_interval`` seconds in a daemon thread."""
        if self._poller is not None:
            return
        self._stop.clear()
        self._poller = threading.Thread(
            target=self._poll, args=(poll_interval,), name="model-base-poller", daemon=True
        )
        self._poller.start()

    def stop(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=30)
            self._poller = None
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _poll(self, poll_interval: float) -> None:
        while not self._stop.wait(poll_interval):
            try:
                self.scan(wait=False)
            except Exception:  # keep polling: the next scan may succeed
                log.exception("scanning %s failed", self.base)
