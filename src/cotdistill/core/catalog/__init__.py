"""What params.yaml may name, as plain data: datasets (datasets.py), student presets
(students.py), teacher presets (teachers.py), the names of the student variants, and the
exemplar formats of the prompt files (prompts.py).

Validating params reads these tables and nothing else, so that a stage loads only the
code it runs: the loaders, models and backends stay behind the names.
"""

# The names of the student variants; variants.py registers what each one is and does
# (test_catalog holds the two equal).
VARIANTS = ("answer", "cot", "gold", "multitask")
# bitsandbytes formats of base weights (quantization.py), for the teacher and the students.
QUANTIZATIONS = ("none", "8bit", "4bit")
