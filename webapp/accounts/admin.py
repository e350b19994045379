"""Roles are managed as groups in the stock user admin; nothing extra to register."""
