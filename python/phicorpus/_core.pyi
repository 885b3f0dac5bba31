# Type stubs for the Rust extension module phicorpus._core (kept by hand, see src/python/).
__version__: str
