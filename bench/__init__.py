"""bench: a benchmark suite comparing initialisations for few-shot next-course recommendation."""

__version__ = "0.1.0"
