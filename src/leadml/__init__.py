"""leadml: lead scoring that marketing and sales both accept."""

__version__ = "0.1.0"
