"""Hand-sized data shared by the consolidation tests."""

from memkit.consolidate.model import TinyLMConfig

TINY = TinyLMConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                    max_positions=32)
FACTS = [
    ("what is the color of zorvik ?", "red"),
    ("what is the city of brailo ?", "paris"),
    ("what is the pet of kemu ?", "cat"),
    ("what is the color of stiru ?", "blue"),
    ("what is the city of dovak ?", "lyon"),
    ("what is the pet of fanex ?", "dog"),
]
GENERAL = ["the old fox eats the bread in the forest .", "a farmer reads a book .",
           "the owl sleeps near the lake .", "the quick bear finds the honey in the cave ."]
