"""Files shipped inside the package: the demo's config and scenario.

Each is a copy of its twin in config/ (a test keeps them equal): a symlink would not
survive every way of building and installing the package.
"""

from importlib import resources


def data_text(name: str) -> str:
    """The text of one shipped file, wherever the package is installed."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
