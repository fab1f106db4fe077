"""Class labels of the hit classifiers (seed 000 §3): the number of particles a pattern shows.

Label ``k`` is ``k`` particles for 0–3 and four or more for 4. These names appear in CXI extras, dataset
counts, evaluation reports, ``labels.txt`` of exported models and TF Serving's Classify answers.
"""

from __future__ import annotations

CLASS_NAMES = ("none", "single", "double", "triple", "4+")
"""Names of the five classes of the particle-count classifier, by label."""
NUM_CLASSES = len(CLASS_NAMES)
SINGLE = 1
"""The label of a single hit, the only pattern usable for 3D reconstruction."""
BINARY_NAMES = ("other", "single")
"""Names of the two classes of a single-hit detector (VGG16 + logistic regression, seed 000 §4.2)."""
UNLABELLED = -1
"""The label of an experiment frame without a label."""


def names_for(n_classes: int) -> tuple[str, ...]:
    """The class names of a classifier with ``n_classes`` outputs (2: single hit or not; 5: particle count).

    Raises:
        ValueError: for any other number of classes.
    """
    for names in (CLASS_NAMES, BINARY_NAMES):
        if len(names) == n_classes:
            return names
    raise ValueError(f"no class names for a classifier of {n_classes} classes (spizoo has 2 and 5)")
