"""The loopback simulator of the gptproto Hailuo API (demo, tests, benchmarks)."""

from tui.simulator.server import Faults, RequestRecord, Simulator

__all__ = ["Faults", "RequestRecord", "Simulator"]
