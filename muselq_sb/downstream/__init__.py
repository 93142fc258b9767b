"""Frozen-encoder probes on MIR tasks (see docs/downstream.md).

Modules: ``embeddings`` (windowing, pooling, on-disk cache), ``targets``
(task.json + manifest rows -> tensors), ``probe`` (layer choice + MLP),
``brain`` (ProbeBrain), ``metrics``, ``experiment`` (one task),
``suite`` (every task, checkpoint and baselines), ``report`` (tables, plot),
``paper_results`` (the paper's Table 3).

Authors
 * muselq_sb team
"""
