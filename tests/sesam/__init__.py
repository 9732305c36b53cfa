"""The bundled Sesam config against the code, and pipes syncing through the emulator."""
