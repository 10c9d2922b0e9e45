"""Training stages: ``cam`` (CAM net + DEAL), ``pseudo`` (CAM -> pseudo labels), ``seg``
(second-stage segmenter on pseudo labels, optional self-training rounds)."""
