"""Real datasets: official layouts, decoding, clip sampling and the paper's protocols."""
