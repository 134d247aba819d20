"""cotdistill: teach small language models to reason by distilling chain-of-thought.

An implementation of Magister et al. (2022), "Teaching Small Language Models to Reason",
as a DVC pipeline (prepare -> generate -> filter -> train -> evaluate -> report) whose
student runs are tracked in MLflow.
"""

__version__ = "0.1.0"
