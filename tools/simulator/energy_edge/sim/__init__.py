"""`energy-edge sim`: one physically coupled microgrid site whose devices are served as Modbus TCP servers."""

__version__ = "0.1.0"  # the SunSpec common model's version register (1.Vr); the distribution energy-edge-simulator
