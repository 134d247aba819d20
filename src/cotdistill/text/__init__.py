"""What a chain of thought says, read the same way by every stage: the answer extractors
(answers/), sentences, rationales, and the calculator that finds and checks equations."""
