"""The foundation every other package may import: config primitives, class labels, CXI mask bits, random
stream keys, task descriptions and the workarounds of upstream defects. It imports no other spizoo package
and, at import time, neither TensorFlow, Keras nor Beam (docs/ARCHITECTURE.md, "Layers")."""
