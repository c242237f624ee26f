"""The edge emulator: a local IoT Hub + edgeHub that the real Azure IoT SDKs connect to unchanged."""
