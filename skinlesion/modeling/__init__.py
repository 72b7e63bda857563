"""The classifier graph, augmentation and training: the train and augment-preview stages."""
