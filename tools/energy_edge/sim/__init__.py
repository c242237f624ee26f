"""`energy-edge sim`: one physically coupled microgrid site whose devices are served as Modbus TCP servers."""
