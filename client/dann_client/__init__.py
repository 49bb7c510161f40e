"""dann-client: send digit images to a dann-serve model over TensorFlow Serving's gRPC API."""

__version__ = "0.1.0"
