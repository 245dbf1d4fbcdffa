"""handdgp: the HandDGP reference model, a client of dgpgeom.

Subpackages: :mod:`handdgp.hand` (the open hand model). The command line is
``handdgp`` (:mod:`handdgp.cli`).
"""

__version__ = "0.1.0.dev0"
