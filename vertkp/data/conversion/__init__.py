"""What every converter shares: COCO records (``coco``), source vertebrae to checked COCO files
(``builder``), bad-input errors and the conversion report (``report``)."""
