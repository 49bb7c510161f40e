"""``dann-serve serve``: a local server speaking TensorFlow Serving's gRPC and REST APIs.

``registry`` loads and polls the model tree, ``service`` answers the calls in TF
Serving's messages, ``grpc_service`` and ``rest`` carry them, ``app`` runs the lot.
"""
