"""dann-serve: Domain-Adversarial Neural Networks for digits, from training to serving."""

from importlib.metadata import PackageNotFoundError, version

# The version lives once, in pyproject.toml; the installed metadata carries it.
try:
    __version__ = version("dann-serve")
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"

del PackageNotFoundError, version
