"""deal_ros: weakly supervised segmentation for robots with the Depth Edge Alignment Loss.

The interfaces generated from msg/ and srv/ (``deal_ros.msg``, ``deal_ros.srv``) may live in
another folder of the same name (a venv's site-packages in a development checkout, the
colcon install space otherwise): extend the package path so both halves import as one.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
__version__ = "0.1.0"
