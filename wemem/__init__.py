"""wemem: a reproducible companion to WeMem (Shang et al., NDSS 2025).

Defending against membership inference attacks on iteratively pruned deep neural networks.
"""

from wemem.errors import DatasetMissingError, ParamsError, WememError

__version__ = "0.1.0"

__all__ = ["DatasetMissingError", "ParamsError", "WememError", "__version__"]
