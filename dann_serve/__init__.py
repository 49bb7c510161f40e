"""dann-serve: Domain-Adversarial Neural Networks for digits, from training to serving."""

__version__ = "0.1.0"
