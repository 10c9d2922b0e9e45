"""Moved: point-cloud cleaning and 3-D summaries are :mod:`deal_ros.core.cloud_cleaner` (numpy
geometry, not inference); the grid parts are ``core.neighbour_grid``, ``core.voxels``,
``core.knn_outliers``, ``core.grid_clusters`` and ``core.objects3d``."""

from deal_ros._moved import alias

alias(__name__, "deal_ros.core.cloud_cleaner")
