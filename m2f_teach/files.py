"""Writing a file whole: every file the package writes goes through `atomic_write`.

    atomic_write(Path("table.html"), lambda tmp: tmp.write_text(html))

`write(tmp)` fills a temporary file beside the target, which is then renamed onto it: a reader
never sees half a file, and an interrupted write (Ctrl-C, a full disk) leaves the previous file
as it was. The file gets the mode a plain `open()` would give it, 0666 less the umask (0644
under the usual umask 022), so a table or diagram copied to a web server stays readable;
`tempfile.mkstemp` alone would leave it at 0600.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def current_umask() -> int:
    """The process's umask (reading it means setting it: set it straight back)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call `write(tmp)` with a temporary `Path` beside `path` (same suffix, so writers that pick
    a format by suffix pick the right one), then rename it onto `path`; return `path`.

    Missing folders are made. On any error the temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
