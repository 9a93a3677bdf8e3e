"""Statistics over seeds, learning curves, figures, reports, experiments and the SB3 comparison."""
