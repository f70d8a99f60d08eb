"""Versioned prompt templates: every style x task renders, sentiment is the paper's variant."""
import pytest

from emoreason.errors import UserError
from emoreason.teacher.templates import render, template_name


@pytest.mark.parametrize("style", ["summary", "detailed"])
@pytest.mark.parametrize("task", ["emotion", "sentiment"])
def test_templates_render_transcript_label_and_cues(style, task):
    name = template_name(style, task)
    assert name == f"v1/{style}" + ("_sentiment" if task == "sentiment" else "")
    plain = render(name, "I lost my keys again.", "sad")
    assert 'Transcript: "I lost my keys again."' in plain and "sad" in plain and "$" not in plain
    assert "Measured delivery" not in plain
    assert ("sentiment (positive, negative, neutral)" in plain) == (task == "sentiment")
    assert ("quote the exact words" in plain) == (style == "detailed")
    with_cues = render(name, "I lost my keys again.", "sad", ["quieter than usual", "slower speech than usual"])
    assert "Measured delivery (acoustic cues): quieter than usual; slower speech than usual." in with_cues
    assert "citing the measured delivery" in with_cues


def test_label_style_and_unknown_styles_have_no_template():
    with pytest.raises(UserError, match="label_sentence"):
        template_name("label", "emotion")
    with pytest.raises(UserError, match="unknown teacher style"):
        template_name("poem", "emotion")
