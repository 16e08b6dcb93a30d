"""Clouds sweepherd can stand a burstable Slurm cluster up on (only AWS so far: :mod:`.aws`)."""
