"""Solar inverter module: drives SunSpec PV inverters (models 1, 103, 120, 123) over Modbus TCP."""
