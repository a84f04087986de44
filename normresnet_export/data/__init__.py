"""Data sets that ship with the package's dependencies, so training and checks run without a download.

``digits`` (``normresnet_export.data.digits``) is scikit-learn's bundled handwritten digits as
32×32 RGB images with the fixed train/test split every digits run uses; ``normexport train
--dataset digits`` trains on it and ``normexport check --data digits`` evaluates on its test
split.
"""
