"""What a run leaves for people: progress in the terminal, CSV histories, plots."""
