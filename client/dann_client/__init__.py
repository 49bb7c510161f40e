"""dann-client: send digit images to a dann-serve model over TensorFlow Serving's APIs."""

from __future__ import annotations

# The version lives once, in client/pyproject.toml; the installed metadata carries it.
# Read on first use (PEP 562), so that `import dann_client` stays cheap for --help.


def __getattr__(name: str) -> str:
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("dann-client")
    except PackageNotFoundError:  # imported from a checkout that was never installed
        found = "0+unknown"
    globals()["__version__"] = found
    return found
