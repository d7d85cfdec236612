"""The lecture's worked example of self-attention: three tokens, worked out by hand.

Lecture 1 ("The worked example" in ``lectures/01_self_attention.ipynb``) and question 2 of problem
set 1 compute self-attention on these numbers: three inputs ``x1, x2, x3`` of 4 features, the rows of
``X``, and the slides' learned matrices ``W_q, W_k, W_v`` of shape (4, 3), so d_k = d_v = 3. The
rest is what the slides work out from them: the queries, keys and values (one row per input), the
raw scores (row i: query i against every key) and input 1's new representation with the slides'
rounded softmax weights.

They are written here once; the notebooks, the attention explorer (:mod:`vitkit.widgets`) and the
checks of problem set 1 (:mod:`vitkit.grading.ps1`) import them. Plain tuples of floats, no torch:
nothing can change them in place, and ``torch.tensor(W_Q)`` is the (4, 3) float32 matrix of the slides.
"""

from __future__ import annotations

X1 = (1.0, 0.0, 1.0, 0.0)
X2 = (0.0, 2.0, 0.0, 2.0)
X3 = (1.0, 1.0, 1.0, 1.0)
X = (X1, X2, X3)  # (3 inputs, 4 features)

W_K = ((0.0, 0.0, 1.0), (1.0, 1.0, 0.0), (0.0, 1.0, 0.0), (1.0, 1.0, 0.0))  # (4, 3)
W_Q = ((1.0, 0.0, 1.0), (1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, 1.0, 1.0))  # (4, 3)
W_V = ((0.0, 2.0, 0.0), (0.0, 3.0, 0.0), (1.0, 0.0, 3.0), (1.0, 1.0, 0.0))  # (4, 3)

# What the slides compute from them: X @ W_k, X @ W_q, X @ W_v and queries @ keys.T, each (3, 3).
KEYS = ((0.0, 1.0, 1.0), (4.0, 4.0, 0.0), (2.0, 3.0, 1.0))
QUERIES = ((1.0, 0.0, 2.0), (2.0, 2.0, 2.0), (2.0, 1.0, 3.0))
VALUES = ((1.0, 2.0, 3.0), (2.0, 8.0, 0.0), (2.0, 6.0, 3.0))
SCORES = ((2.0, 4.0, 4.0), (4.0, 16.0, 12.0), (4.0, 12.0, 10.0))  # row i: query i against every key
SLIDE_WEIGHTS_1 = (0.0, 0.5, 0.5)  # the slides' rounded softmax of input 1's scores
SLIDE_OUTPUT_1 = (2.0, 7.0, 1.5)  # input 1's new representation: SLIDE_WEIGHTS_1 @ VALUES
