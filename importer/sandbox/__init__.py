"""A faithful local Commerce Layer Core API for the importer's tests, demo and benchmarks.

It imports nothing from the rest of `importer` except `importer.models.PAYMENT_SOURCE_TYPES`,
and nothing in the pipeline imports it (only the CLI, tests and benchmarks do). See
docs/sandbox.md.
"""

from importer.sandbox.app import create_app
from importer.sandbox.sample import SampleInfo, write_sample
from importer.sandbox.settings import DEMO_CUSTOMERS, DEMO_SEED, SandboxSettings
from importer.sandbox.testing import SandboxHandle, SandboxThread, fast_settings, running_sandbox

__all__ = [
    "DEMO_CUSTOMERS",
    "DEMO_SEED",
    "SampleInfo",
    "SandboxHandle",
    "SandboxSettings",
    "SandboxThread",
    "create_app",
    "fast_settings",
    "running_sandbox",
    "write_sample",
]
