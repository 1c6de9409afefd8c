"""m2f-teach: Mask2Former taught tensor by tensor."""
from .model import PRESETS, M2FConfig, Mask2Former

__all__ = ["M2FConfig", "PRESETS", "Mask2Former"]
__version__ = "0.1.0"
