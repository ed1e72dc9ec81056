"""mlbridge: TensorFlow predictions for MySQL users (the light package, no TensorFlow)."""

# Load mysql-connector's C extension before anything imports Python's ssl module: once the
# system OpenSSL is loaded, the extension (built on the newer OpenSSL its wheel bundles) fails to
# load without a word, and every fetch becomes 2-3x slower. tests/e2e/test_cext.py checks it.
try:  # pragma: no cover - depends on the installed wheel
    import _mysql_connector  # noqa: F401
except ImportError:  # pragma: no cover
    pass

__version__ = "0.1.0"
