"""The benches: ``python -m study.bench {speed,quality,search,ratios,load}``. Each prints its
figures as tables and one JSON line; none is imported by the platform."""
