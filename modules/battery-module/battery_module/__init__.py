"""Battery storage module: drives SunSpec storage inverters (models 1, 103, 120, 124, 713) over Modbus TCP."""
