"""Face detection, alignment, quality and embedding: the one implementation that detect, embed,
match (enrolment) and the evaluation harness all run."""
