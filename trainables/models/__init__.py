"""The models a trial builds: the anonymizers (UNet++ f_A, the paper's baselines, tubelet pruning,
minimize), the action models f_T and privacy models f_B behind their registries, and local weights."""
