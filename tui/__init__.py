"""hailuo-tui: a terminal dashboard for MiniMax Hailuo video jobs on the gptproto API."""

__version__ = "0.1.0"
