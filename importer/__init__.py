"""importer: load customer payment sources into Commerce Layer from spreadsheets."""

__version__ = "0.1.0"

__all__ = ["__version__"]
