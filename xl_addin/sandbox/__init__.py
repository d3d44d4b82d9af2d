"""The sandbox: a local stand-in for the Lixinger service, for demos, tests and benchmarks."""

from .data import Dataset, NAMES, WELL_KNOWN, universe
from .server import FAULT_KINDS, Sandbox

__all__ = ["Sandbox", "Dataset", "FAULT_KINDS", "NAMES", "WELL_KNOWN", "universe"]
