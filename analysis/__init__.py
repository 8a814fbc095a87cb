"""flowcore.analysis: the symbolic and analysis layer (imported as ``flowcore.analysis``).

It calls the numeric engine in ``flowcore`` and never re-implements its numerics.
"""
