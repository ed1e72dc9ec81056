"""The environment the server's TensorFlow runs in, set before TensorFlow is imported.

oneDNN. TensorFlow's x86 builds run oneDNN's kernels by default (TF_ENABLE_ONEDNN_OPTS), and
with them oneDNN's CPU allocator: a pool (TensorFlow's BFC allocator) that grows to the most
memory ever in use at once and gives nothing back to the system. A server that swaps versions
holds two versions of a model during each swap, so the pool keeps a whole version's worth once
the old one is gone. Measured here with versions in the server process: 20 load and unload cycles
of a model with 62 MB of weights left the server 62 MB bigger with oneDNN on, and 1 MB smaller
with it off, TensorFlow's plain allocator handing freed memory back to the C library.
The bench model's 1,024-row call ran as fast either way (BENCHMARKS.md).

So the server turns oneDNN off unless the environment already says otherwise: a model that gains
from oneDNN's kernels (large convolutions, say) gets them back with TF_ENABLE_ONEDNN_OPTS=1 in the
server's environment, at the cost of that memory under --model-isolation none (a model process's
memory goes back with the process either way).

Model processes are forked from a loader process started after this runs, so they inherit it.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping

log = logging.getLogger(__name__)

ONEDNN = "TF_ENABLE_ONEDNN_OPTS"


def prepare(environ: MutableMapping[str, str] | None = None) -> None:
    """Set the server's TensorFlow variables in ``environ`` (the process's own by default)
    where they are not set already."""
    env = os.environ if environ is None else environ
    if ONEDNN not in env:
        env[ONEDNN] = "0"
        if environ is None and "tensorflow" in sys.modules:
            # TensorFlow reads the variable when it first decides which kernels to use; a
            # process that imported it before the server started may have decided already.
            log.warning(
                "TensorFlow was imported before the model server started: %s=0 may come too late "
                "for this process (set it in the environment instead)", ONEDNN,
            )


def onednn(environ: MutableMapping[str, str] | None = None) -> bool:
    """Whether TensorFlow in this process runs oneDNN's kernels (TensorFlow's default: on)."""
    value = (os.environ if environ is None else environ).get(ONEDNN, "1").strip().lower()
    return value not in ("0", "false", "no", "off")
