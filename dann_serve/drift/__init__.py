"""Drift: what the live monitor computes, from a model's softmax outputs alone.

Plain numpy and scipy, no TensorFlow and no server, so that an export can build the
reference and a server can run the rest off its request path. In data-flow order:
``probabilities`` (the one validated input and the scores read from it), ``reference``
(what an export records: outputs on a sample of the adapted-to target images, ATC's
threshold fitted on held-out labelled source images; its JSON file format),
``shift`` (is the traffic still the reference's? KS tests per class probability and a
chi-square test of predicted classes, on the window and its newer half,
Bonferroni-corrected), ``estimate`` (ATC's
accuracy estimate and the rule that declares it unreliable), ``window`` (the sliding
window of served answers and its snapshot, the monitor's JSON).

May import: the top-level ``files`` and :mod:`dann_client.contract` (the number of
classes); nothing of data, model, training, export or serving, so that both export
and serving can import it.
"""
