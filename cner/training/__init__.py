"""The one training loop shared by every task.

`steps.train_steps` is a generator of optimizer steps and evaluations; around it stand small
parts: `evaluation` (best model, early stopping), `checkpoints` (atomic, resumable),
`reporting` (metrics.jsonl, progress bar), `schedule` (learning rate, time budget, cadence).
`loop.train_loop` composes them; `runs` prepares the run directory and the seeded encoder.
"""
