"""The train stage: the variants a student learns from (variants.py) and the students
(students/: T5 and decoder-only) that learn them."""
