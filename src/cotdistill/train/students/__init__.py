"""Student models: building and loading T5 (t5.py) and decoder-only (causal.py) students,
with the tokenizers (tokenizer.py) and weights (weights.py) both share, the switch between
the two (architectures.py), batches, training and one training run (job.py). The presets
that params name are plain data in catalog/students.py."""
