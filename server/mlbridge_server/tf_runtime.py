"""TensorFlow, imported once and quietly.

TensorFlow 2.21 writes its C++ start-up lines (oneDNN, CUDA drivers, absl's "All log messages
before absl::InitializeLog()") to the process's stderr before it reads TF_CPP_MIN_LOG_LEVEL,
so the variable alone does not silence them. `import_quietly` points file descriptor 2 at
/dev/null while TensorFlow, tf_keras and ydf_tf load, unless TF_CPP_MIN_LOG_LEVEL is 0 (what
`mlbridge -v` sets). An import that fails is tried again with stderr in place, so its error
is never hidden.
"""

from __future__ import annotations

import importlib
import os
import sys

MODULES = ("tensorflow", "tf_keras", "ydf_tf")


def import_quietly(modules=MODULES) -> None:
    # mysql-connector's C extension fails to load once TensorFlow is in the process, and the
    # connector then falls back to pure Python without a word (3x slower reads): load it first.
    import mlbridge.db  # noqa: F401

    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "") == "0" or all(m in sys.modules for m in modules):
        for name in modules:
            importlib.import_module(name)
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                for name in modules:
                    importlib.import_module(name)
                # The first op would probe for CUDA and log "failed call to cuInit" on a machine
                # without a GPU: probe now, while stderr is away.
                sys.modules["tensorflow"].config.list_physical_devices()
            except Exception:  # noqa: BLE001 - retried below with stderr back
                pass
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    for name in modules:
        importlib.import_module(name)
