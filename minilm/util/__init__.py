"""What every layer uses: atomic writes and checked reads, input checks, optional extras, the progress line."""
