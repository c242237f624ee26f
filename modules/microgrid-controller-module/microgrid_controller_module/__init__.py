"""Microgrid-controller module: the site's external controller / meter at the point of common coupling,
read over Modbus TCP (vendor map) or MQTT (topic map)."""
