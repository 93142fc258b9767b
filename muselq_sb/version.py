"""Version of the muselq_sb package."""
__version__ = "0.1.0"
