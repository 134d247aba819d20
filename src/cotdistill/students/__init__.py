"""Student models: building and loading T5 (model.py) and decoder-only (causal.py) students,
the switch between the two (architectures.py), batches, training and one training run
(job.py). The presets that params name are plain data in catalog/students.py."""
