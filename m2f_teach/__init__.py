"""m2f-teach: Mask2Former taught tensor by tensor."""
import importlib

__all__ = ["M2FConfig", "PRESETS", "Mask2Former"]
__version__ = "0.1.0"


def __getattr__(name):
    """`M2FConfig`, `PRESETS`, `Mask2Former` and the subpackages, imported on first use: torch
    loads inside the command line's `main`, where Ctrl-C during start-up is one line, not a traceback."""
    if name in __all__:
        from . import model
        return getattr(model, name)
    try:
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as err:
        if err.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
