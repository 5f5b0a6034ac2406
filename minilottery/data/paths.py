"""Where minilottery keeps its data sets.

``data_dir()`` answers, in order of precedence:

1. the folder passed explicitly (the command-line tools' ``--data-dir``);
2. the environment variable ``MINILOTTERY_DATA`` (how tests and CI point at a shared, read-only copy);
3. the repository's ``data/`` folder, when minilottery runs from a source checkout (the folder above the
   package holds both ``pyproject.toml`` and ``data/``), so a learner who cloned the repo finds the files
   beside the code;
4. otherwise a per-user cache folder: ``$XDG_CACHE_HOME/minilottery``, or ``~/.cache/minilottery``.

Nothing here creates a folder: only a download does, and only when it has something to write.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "MINILOTTERY_DATA"

# minilottery/data/paths.py -> minilottery/data -> minilottery -> the checkout's root
_SOURCE_ROOT = Path(__file__).resolve().parent.parent.parent


def user_cache_dir() -> Path:
    """The per-user cache folder: ``$XDG_CACHE_HOME/minilottery``, else ``~/.cache/minilottery``."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "minilottery"


def source_data_dir() -> Path | None:
    """The checkout's ``data/`` folder when running from a source checkout, else ``None``.

    An installed wheel has no ``pyproject.toml`` beside the package, so it falls through to the user cache.
    """
    if (_SOURCE_ROOT / "pyproject.toml").is_file() and (_SOURCE_ROOT / "data").is_dir():
        return _SOURCE_ROOT / "data"
    return None


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The folder that holds (or will hold) the data-set files; see the module docstring for the order."""
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    source = source_data_dir()
    if source is not None:
        return source
    return user_cache_dir()
