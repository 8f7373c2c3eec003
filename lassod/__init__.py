"""lassod: the Lasso API server and its webhook delivery daemon."""

__version__ = "0.1.0"
