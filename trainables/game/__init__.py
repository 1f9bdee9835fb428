"""The minimax game: its losses (the pixel penalty among them), the device and seeding, the cache
of anonymized pixels, the training loops, and the keys under which stages are shared."""
