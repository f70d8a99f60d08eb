"""Surface forms the label extractor reads (text/label_extraction.py), kept apart from the rules.

:data:`emoreason.labels.SYNONYMS` is corpus-oriented (codes, nouns, adjectives); free-text answers
also use inflections, idioms and behaviour words, listed here. Keys are lowercase tokens (or token
tuples for :data:`PHRASES`); values are canonical labels.
"""
from __future__ import annotations

# Corpus codes and words that are rarely emotions in running prose: used only in bare answers
# ("Neutral.", "hap") of at most a few words.
BARE_ONLY = {"ang", "hap", "neu", "dis", "fea", "sur", "fru", "exc", "oth", "xxx", "pos", "neg",
             "other", "content", "down", "unknown", "<unk>"}
# Extra free-text inflections that SYNONYMS (corpus-oriented) does not carry.
EXTRA_FORMS: dict[str, str] = {
    "angrier": "angry", "angriest": "angry", "infuriated": "angry", "outraged": "angry",
    "outrage": "angry", "livid": "angry", "irritation": "angry", "irritable": "angry",
    "agitated": "angry", "agitation": "angry", "resentful": "angry", "resentment": "angry",
    "indignant": "angry", "indignation": "angry", "aggressive": "angry", "aggression": "angry",
    "hostility": "angry", "furiously": "angry",
    "happier": "happy", "happiest": "happy", "happily": "happy", "joyfully": "happy",
    "cheerfully": "happy", "cheerfulness": "happy", "elated": "happy", "elation": "happy",
    "gleeful": "happy", "glee": "happy", "jubilant": "happy", "contented": "happy",
    "contentment": "happy", "delight": "happy", "pleasure": "happy", "satisfied": "happy",
    "satisfaction": "happy", "merry": "happy", "lighthearted": "happy", "playful": "happy",
    "sadder": "sad", "saddest": "sad", "sadly": "sad", "saddened": "sad", "sorrowfully": "sad",
    "melancholic": "sad", "heartbroken": "sad", "despair": "sad", "despondent": "sad",
    "dejected": "sad", "mournful": "sad", "grieving": "sad", "unhappiness": "sad",
    "hopeless": "sad", "hurt": "sad", "somber": "sad", "sombre": "sad", "crying": "sad",
    "tearful": "sad", "dissatisfied": "frustrated", "dissatisfaction": "frustrated", "regretful": "sad", "regret": "sad", "lonely": "sad", "loneliness": "sad",
    "neutrally": "neutral", "indifferent": "neutral", "indifference": "neutral",
    "unemotional": "neutral", "emotionless": "neutral", "impassive": "neutral",
    "composed": "neutral", "calmly": "neutral", "calmness": "neutral",
    "disgustedly": "disgusted", "repulsion": "disgusted", "repelled": "disgusted",
    "revolted": "disgusted", "grossed": "disgusted", "contempt": "disgusted", "disdain": "disgusted",
    "fearfully": "fearful", "fright": "fearful", "scary": "fearful", "panic": "fearful",
    "panicked": "fearful", "panicky": "fearful", "terror": "fearful", "dread": "fearful",
    "apprehensive": "fearful", "apprehension": "fearful", "nervousness": "fearful",
    "worry": "fearful", "anxiously": "fearful", "uneasy": "fearful", "alarmed": "fearful",
    "surprising": "surprised", "shock": "surprised", "astonishment": "surprised", "amazement": "surprised",
    "disbelief": "surprised", "stunned": "surprised", "astounded": "surprised",
    "frustrating": "frustrated", "exasperation": "frustrated", "exasperating": "frustrated",
    "frustratedly": "frustrated",
    "exciting": "excited", "excitedly": "excited", "enthusiasm": "excited",
    "enthusiastically": "excited", "thrill": "excited", "eagerness": "excited",
    "exhilarated": "excited", "animated": "excited", "energetic": "excited", "elevated": "excited",
    "positively": "positive", "positivity": "positive", "optimistic": "positive",
    "favorable": "positive", "favourable": "positive",
    "negatively": "negative", "negativity": "negative", "pessimistic": "negative",
    "unfavorable": "negative", "unfavourable": "negative",
}
# Multi-word surface forms (checked before single tokens).
PHRASES: dict[tuple[str, ...], str] = {
    ("no", "strong", "emotion"): "neutral", ("no", "strong", "emotions"): "neutral",
    ("no", "particular", "emotion"): "neutral", ("no", "emotion"): "neutral",
    ("matter", "of", "fact"): "neutral", ("matter-of-fact",): "neutral", ("flat", "tone"): "neutral",
    ("monotone",): "neutral", ("even", "tone"): "neutral", ("neither", "positive", "nor", "negative"): "neutral",
    ("fed", "up"): "frustrated", ("pissed", "off"): "angry", ("ticked", "off"): "angry",
    ("grossed", "out"): "disgusted", ("freaked", "out"): "fearful", ("taken", "aback"): "surprised",
    ("caught", "off", "guard"): "surprised", ("in", "awe"): "surprised",
    ("is", "flat"): "neutral", ("sounds", "flat"): "neutral", ("normal", "tone"): "neutral",
    ("normal", "voice"): "neutral", ("ordinary", "tone"): "neutral", ("regular", "tone"): "neutral",
}
# Behaviour words that point to a label but do not name it ("laughing", "about to cry"): used only
# when the answer names no label at all, so "excited, laughing as they speak" stays excited.
WEAK_CUES: dict[str, str] = {
    "laughing": "happy", "laughs": "happy", "laughter": "happy", "giggling": "happy", "smiling": "happy",
    "cry": "sad", "cries": "sad", "tears": "sad", "sobbing": "sad", "sighing": "sad", "sobs": "sad",
    "yelling": "angry", "shouting": "angry", "screaming": "angry", "yells": "angry", "shouts": "angry",
    "trembling": "fearful", "gasps": "surprised", "gasping": "surprised",
}

# Words that imply a polarity without naming an emotion ("expresses love", "accepts the offer",
# "complains about the service"). An LLM judge reads them as positive / negative sentiment; they are
# read only for the sentiment task and only under the reference-compatible reading
# (``BinaryReading.implied_sentiment``): for emotion labels they say nothing.
IMPLIED_SENTIMENT: dict[str, str] = {
    **dict.fromkeys((
        "love", "loves", "loving", "loved", "lovely", "adore", "adores", "adoration", "affection",
        "affectionate", "fond", "fondness", "acceptance", "accepting", "accepts", "accepted", "gratitude",
        "grateful", "thankful", "thanking", "appreciation", "appreciative", "appreciates", "admiration",
        "admires", "admiring", "approval", "approves", "approving", "agreement", "agrees", "agreeing",
        "praise", "praises", "praising", "compliment", "compliments", "complimenting", "supportive",
        "encouragement", "encouraging", "reassurance", "reassuring", "warmth", "warm", "hope", "hopeful",
        "relief", "relieved", "proud", "pride", "confident", "enjoy", "enjoys", "enjoying", "enjoyment",
        "pleasant", "friendly", "kindness", "caring", "welcoming"), "positive"),
    **dict.fromkeys((
        "disappointing", "complaint", "complaints", "complaining", "complains", "criticism", "criticizing",
        "criticising", "criticizes", "criticises", "criticized", "criticised", "critical", "blame", "blames", "blaming", "rejection", "rejecting", "rejects",
        "dislike", "dislikes", "hate", "hates", "hatred", "bitter", "bitterness", "sarcasm", "sarcastic",
        "disapproval", "disapproving", "disapproves", "jealous", "jealousy", "guilt", "guilty", "shame",
        "ashamed", "embarrassed", "embarrassment", "pain", "painful", "suffering", "distress",
        "distressed", "concern", "concerned", "skeptical", "sceptical", "distrust", "mistrust",
        "accusation", "accusing", "accusatory", "defensive", "dismissive", "annoying", "insult",
        "insulting", "threat", "threatening", "mocking", "arguing", "argument", "betrayal", "betrayed",
        "grudge", "unpleasant", "hurtful", "regretting"), "negative"),
}

# Words for general distress that name no class of their own: "clearly upset and raising their voice
# in anger" is an angry verdict, not "sad or angry". Under ``hedged_is_wrong`` they only count when
# the sentence names no other label.
VAGUE_WORDS = {"upset"}
