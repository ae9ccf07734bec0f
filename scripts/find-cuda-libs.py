"""Prints the folder holding libcublasLt.so.* in this Python's packages (PyTorch's CUDA libraries), for
BERTFIT_CUDA_LIB_DIR and LD_LIBRARY_PATH on a GPU machine. Exits 1 when there is none."""
import glob
import os
import site
import sys

roots = site.getsitepackages() + [site.getusersitepackages()] + sys.path
for root in dict.fromkeys(r for r in roots if r and os.path.isdir(r)):
    hits = sorted(glob.glob(os.path.join(root, "nvidia", "**", "libcublasLt.so.*"), recursive=True))
    if hits:
        print(os.path.dirname(hits[-1]))
        sys.exit(0)
print("libcublasLt.so.* not found under " + ", ".join(roots), file=sys.stderr)
sys.exit(1)
