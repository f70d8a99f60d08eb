"""Text utilities of the core layer: quote extraction and grounding (``quotes``), and reading an
emotion / sentiment label out of free text (``label_extraction``). Used by the teacher's checks,
the inference engine and the evaluation, so they live below all three."""
