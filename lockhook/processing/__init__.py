"""Processing: typed events, applying them to commands and lock state, and reading lock state back."""
