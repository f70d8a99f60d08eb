"""Training: schedules as data, one accelerate loop, atomic checkpoints, exact resume.

- ``schedule``: joint / alternating ("Alt x") schedules as lists of phases
- ``sampler``: task-group batches, sharded over processes, resumable mid-epoch
- ``optim``: AdamW over named parameter groups, warmup + decay
- ``loop``: :class:`~emoreason.train.loop.Trainer`
- ``checkpoint``: ``RUN_DIR/checkpoints/step-N`` I/O
- ``metrics``: ``metrics.jsonl``, ``train.log``, TensorBoard
- ``cli``: ``emoreason train``

See docs/training.md.
"""
