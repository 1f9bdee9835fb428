"""What runs in one trial: data, models, losses, metrics, training and evaluation."""
