"""Frozen-encoder probes on MIR tasks (see docs/downstream.md).

Modules: ``embeddings`` (windowing, pooling, on-disk cache), ``targets``
(task.json + manifest rows -> tensors), ``probe`` (layer choice + MLP),
``brain`` (ProbeBrain), ``metrics``, ``experiment`` (one task),
``suite`` (every task, checkpoint and baselines), ``report`` (tables, plot),
``paper_results`` (the paper's Table 3); frame-level tasks (beats, chords,
docs/frame_level.md): ``frame_targets`` (annotation cells -> per-frame
classes), ``frame_brain`` (whole-track FrameDataset, FrameProbeBrain),
``frame_metrics`` (beat decoder, mir_eval beat and chord scores).

Authors
 * muselq_sb team
"""
