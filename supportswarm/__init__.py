"""SupportSwarm: a community-centric customer support forum with swarming."""

__version__ = "0.1.0"
