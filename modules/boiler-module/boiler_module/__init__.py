"""Boiler (power-to-heat) module: drives electric hot-water boilers with a vendor register map over Modbus TCP."""
