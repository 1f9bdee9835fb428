"""``python -m trainables.data --dataset NAME --root DIR``: check a dataset folder before a study reads it."""

from trainables.data.datasets.check import main

if __name__ == "__main__":
    raise SystemExit(main())
