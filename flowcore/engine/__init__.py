"""The engine, the innermost layer: the restricted expression grammar and its C code generation,
the compile cache, the kernels (one C source for the host and CUDA, ``include/``) and the
Cython glue (losses, fields and the integrator and map loops). It imports nothing else of
flowcore."""
