"""The numbers the report compares ours with, and where they come from. They are not results of
ours: test log-likelihoods in nats from the VampPrior reproduction we follow (the reference
report: 1000 epochs, S=500) and the paper's own numbers (S=5000)."""
from __future__ import annotations

REFERENCE_SAMPLES = 500  # the importance samples behind the reference report's numbers
REFERENCE_SOURCE = ("the reference report (a reproduction of Tomczak & Welling 2018): 1000 epochs, "
                    f"S={REFERENCE_SAMPLES}")
REFERENCE = {  # dataset -> prior -> test LL (nats), one-level VAE
    "static_mnist": {"standard": -93.08, "vampprior": -88.72, "vampprior_data": -90.85},
    "fashion_mnist": {"standard": -235.32, "vampprior": -231.94, "vampprior_data": -232.79},
    "frey_faces": {"standard": -2281.16, "vampprior": -2257.76, "vampprior_data": -2286.52},
    "caltech101_silhouettes": {"standard": -137.32, "vampprior": -135.15, "vampprior_data": -142.02},
}
PAPER_SOURCE = "Tomczak & Welling (2018), S=5000"
PAPER = {  # (dataset, model, prior) -> test LL (nats)
    ("static_mnist", "vae", "vampprior"): -85.57,
    ("static_mnist", "hvae", "vampprior"): -83.19,
    ("dynamic_mnist", "hvae", "vampprior"): -81.24,
}
