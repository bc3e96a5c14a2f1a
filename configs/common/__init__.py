"""Builders that several experiment files in configs/ share."""
