"""Datasets: the loaders behind the dataset names of catalog/datasets.py.

Each returns the common record: {"id", "question", "answer", "answer_type", optional
"choices", optional "gold_rationale"}. A generated dataset draws its named splits itself
(synthetic.py); a loaded one (Hub, packaged file, local file: real.py, sources.py,
packaged.py) yields raw rows that records.py maps to the record and splitting.py splits.
prepare.py runs the whole of the prepare stage: load, split, decontaminate.
"""
