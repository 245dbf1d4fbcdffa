"""Data for the HandDGP reference model: a mesh renderer and data-set readers."""
