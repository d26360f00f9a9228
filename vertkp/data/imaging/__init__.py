"""Reading images: the one decoder (``images``; DICOM in ``dicom`` and ``dicom_header``) and
pixel spacing (``spacing``)."""
