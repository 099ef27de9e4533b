"""``minilm sweep``: loss configurations x seeds on one base recipe, paired, resumable, reported with intervals."""
