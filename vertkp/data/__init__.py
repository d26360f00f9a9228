"""Datasets, from the archive as downloaded to detectron2's input (torch-free but ``loading``):

    raw         archives, their safe extraction, the download, source folders, provenance
    conversion  what every converter shares: COCO records, the builder, the report, bad input
    datasets    one folder per dataset (layout, labels, converter, phantom writer, its spec)
    imaging     the one image decoder (DICOM too) and pixel spacing
    loading     detectron2: registration, the mapper, augmentations
"""
