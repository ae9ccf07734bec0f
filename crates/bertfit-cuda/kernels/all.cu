// The one translation unit nvcc compiles into kernels.fatbin: every kernel file of this folder.
#include "rng.cu"
#include "convert.cu"
#include "engine.cu"
