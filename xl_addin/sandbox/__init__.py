"""The sandbox: a local stand-in for the Lixinger service, for demos, tests and benchmarks."""

from .data import Dataset, NAMES, WELL_KNOWN, universe
from .server import FAULT_KINDS, Sandbox, parse_fault

__all__ = ["Sandbox", "Dataset", "FAULT_KINDS", "parse_fault", "NAMES", "WELL_KNOWN", "universe"]
