"""scikit-learn's side of the t-SNE check.

  tsne_oracle.py features OUT.csv N       writes N digits (sklearn's bundled 8x8 digits, scaled) as CSV
  tsne_oracle.py reference IN.csv P       prints the trustworthiness of sklearn's exact TSNE embedding
  tsne_oracle.py trust IN.csv EMB.csv K   prints sklearn's trustworthiness of a given embedding
"""
import sys

import numpy as np
from sklearn.datasets import load_digits
from sklearn.manifold import TSNE, trustworthiness

cmd = sys.argv[1]
if cmd == "features":
    x, _ = load_digits(return_X_y=True)
    np.savetxt(sys.argv[2], x[: int(sys.argv[3])] / 16.0, delimiter=",", fmt="%.6f")
elif cmd == "reference":
    x = np.loadtxt(sys.argv[2], delimiter=",")
    y = TSNE(n_components=2, perplexity=float(sys.argv[3]), method="exact", init="pca", learning_rate="auto",
             random_state=0).fit_transform(x)
    print(f"{trustworthiness(x, y, n_neighbors=5):.6f}")
elif cmd == "trust":
    x = np.loadtxt(sys.argv[2], delimiter=",")
    y = np.loadtxt(sys.argv[3], delimiter=",")
    print(f"{trustworthiness(x, y, n_neighbors=int(sys.argv[4])):.9f}")
