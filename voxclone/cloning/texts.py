"""Texts a voice is fitted and judged on. Three disjoint pools, so a fit is never graded on its own texts.

FIT: what the optimiser listens to (a few per step, rotating, so no single text is over-fitted).
SELECT: decides which candidate to keep (early stopping); never optimised directly.
EVAL: only for `voxclone eval` and the benchmark.
"""

from pathlib import Path

FIT = [
    "I'll meet you by the station at half past nine.",
    "Could you bring the blue folder when you come?",
    "That was the best soup I have ever tasted!",
    "The weather turned cold and windy overnight.",
    "We watched the boats coming back into the harbour.",
    "Honestly, I think we should wait until Monday.",
    "My brother fixed the old bicycle in the garage.",
    "Please remember to water the plants on Friday.",
    "She laughed so hard that she nearly dropped her cup.",
    "How far is it from here to the nearest pharmacy?",
    "The museum opens early on the first Sunday of the month.",
    "Thank you, that is very kind of you to offer.",
]
SELECT = [
    "The train was late again, so I walked home through the park.",
    "Would you like me to read the next chapter out loud?",
    "Every summer we rent a little cottage near the lake.",
    "I can't find my glasses; have you seen them anywhere?",
]
EVAL = [
    "The children built a snowman in the garden this morning.",
    "Could you tell me when the next bus to the city centre leaves?",
    "I have always wanted to learn how to play the piano.",
    "After dinner we sat outside and watched the stars come out.",
    "Please call me back when you get this message.",
    "The bakery on the corner sells the best bread in town.",
    "We should probably leave now if we want to catch the film.",
    "My favourite season is autumn, when the leaves change colour.",
]


def prompts(language: str = "en") -> list[str]:
    """Phonetically rich sentences to read aloud when recording a voice (voice banking)."""
    code = {"en-us": "en", "en-gb": "en", "pt": "pt-br"}.get(language, language)
    path = Path(__file__).with_name("data") / f"prompts_{code}.txt"
    if not path.is_file():
        have = sorted(p.stem.removeprefix("prompts_") for p in path.parent.glob("prompts_*.txt"))
        raise ValueError(f"no prompts for language {language!r}; available: {', '.join(have)}")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
