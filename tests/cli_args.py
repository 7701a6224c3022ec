"""Command lines shared by the CLI tests: a tiny, fast training run on shapes."""

TRAIN = [  # `explainaug train` in about a second, on CPU
    "train",
    "--dataset",
    "shapes",
    "--train-size",
    "16",
    "--image-size",
    "16",
    "--width",
    "4",
    "--epochs",
    "1",
    "--batch-size",
    "8",
    "--device",
    "cpu",
    "--no-progress",
    "--amp",
    "none",
]
