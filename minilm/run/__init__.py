"""A recipe made into a run: the TOML recipe, the loss registry, the output directory, preflight checks, plots."""
