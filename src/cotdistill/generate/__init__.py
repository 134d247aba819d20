"""The generate stage: the few-shot prompts (prompts.py, prompts/*.yaml) and the teachers
(teachers/: backends, request cache, generation loop) that write the CoTs."""
