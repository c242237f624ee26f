"""Base package every energy-edge IoT Edge module stands on."""

__version__ = "0.1.0"
