"""Where minilottery keeps its data sets: a data root with one folder per data set.

    <data root>/mnist/           the four MNIST IDX files
    <data root>/fashion-mnist/   the four Fashion-MNIST IDX files (MNIST's names)
    <data root>/cifar-10/        cifar-10-python.tar.gz

``data_dir()`` is the data root; it answers, in order of precedence:

1. the folder passed explicitly (the command-line tools' ``--data-dir``);
2. the environment variable ``MINILOTTERY_DATA`` (how tests and CI point at a shared, read-only copy);
3. the repository's ``data/`` folder, when minilottery runs from a source checkout (the folder above the
   package holds both ``pyproject.toml`` and ``data/``), so a learner who cloned the repo finds the files
   beside the code;
4. otherwise a per-user cache folder: ``$XDG_CACHE_HOME/minilottery``, or ``~/.cache/minilottery``.

``dataset_dir(name)`` is where one data set lives: ``<data root>/<FOLDERS[name]>``. Two older layouts keep
working: a folder given explicitly (``--data-dir``, a loader's ``data_dir``) may be the data set's own folder,
and a data root that holds MNIST's (or CIFAR-10's) files directly, as ``MINILOTTERY_DATA`` used to, is read as
that data set's folder. Fashion-MNIST always has its own folder: its files have MNIST's names.

Nothing here creates a folder: only a download does, and only when it has something to write.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "MINILOTTERY_DATA"

# data set -> its folder under the data root (the names ../shared/data uses)
FOLDERS = {"mnist": "mnist", "fashion-mnist": "fashion-mnist", "cifar10": "cifar-10"}

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


def dataset_dir(dataset: str, explicit: str | os.PathLike[str] | None = None, flat_names: tuple[str, ...] = ()) -> Path:
    """The folder that holds (or will hold) the files of ``dataset`` (a key of ``FOLDERS``).

    Args:
        explicit: a folder the user named: the data root (if it has the data set's folder) or the data set's
            own folder.
        flat_names: the data set's file names, when an older data root may hold them directly (MNIST,
            CIFAR-10); empty for Fashion-MNIST, whose names are MNIST's.
    """
    folder = FOLDERS[dataset]
    root = data_dir(explicit)
    if (root / folder).is_dir():
        return root / folder
    if explicit is not None and str(explicit) != "":
        return root  # the data set's own folder, as --data-dir always meant
    if root.name == folder or any((root / name).exists() for name in flat_names):
        return root  # MINILOTTERY_DATA pointing straight at the data set's files
    return root / folder
