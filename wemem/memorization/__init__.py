"""memorization"""
