"""What params.yaml may name, as plain data: datasets (datasets.py), student presets
(students.py), teacher presets (teachers.py), the student variants, and the exemplar
formats of the prompt files (prompts.py).

Validating params reads these tables and nothing else, so that a stage loads only the
code it runs: the loaders, models and backends stay behind the names.
"""

# What a student learns to write (targets.py builds each variant's targets); multitask is
# distilling step-by-step (Hsieh et al., 2023): a label and a rationale task in one model.
VARIANTS = ("answer", "cot", "gold", "multitask")
# Student architectures (catalog/students.py; students/architectures.py builds each).
ARCHITECTURES = ("t5", "causal")
# bitsandbytes formats of base weights (quantization.py), for the teacher and the students.
QUANTIZATIONS = ("none", "8bit", "4bit")
