"""emoreason: speech emotion reasoning with multi-task audio LLMs."""

__version__ = "0.1.0"
