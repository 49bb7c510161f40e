"""Model: the DANN network, from float32 images in ``[0, 1]`` to class and domain logits.

Owns the gradient reversal layer (``layers``), the in-graph input normalisation
(``normalization``) and the two architectures of the paper (``networks``). Whatever
normalisation the network wants lives here, inside the graph, so that the export
carries it and no client can drift from it.

May import: :mod:`dann_serve.config`, :mod:`dann_client.contract` (import-free: the
input shape and class and domain counts the served model promises), TensorFlow and
Keras. Nothing of data, training, export or serving.
"""
