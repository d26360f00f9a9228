"""detectron2's input side: dataset registration, the dataset mapper, the augmentations."""
