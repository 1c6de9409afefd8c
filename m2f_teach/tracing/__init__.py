"""Tools that look at the network without changing it: the tracer, shape-only runs on `meta`,
the annotated shape tables and the torchinfo summary.

    from m2f_teach.tracing import trace, trace_shapes
"""
from .shape_only import meta_model, trace_shapes
from .trace import Record, SymbolicShapeError, Trace, trace

__all__ = ["trace", "trace_shapes", "meta_model", "Trace", "Record", "SymbolicShapeError"]
